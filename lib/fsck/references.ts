import { parseDigest, tryParseDigest } from '../oci/digest.ts';
import { parseManifest } from '../oci/manifest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';
import { keys, meta } from '../registry/keys.ts';
import { referrerDescriptor } from '../registry/manifests.ts';
import type { FsckContext } from './context.ts';
import { finding, type Finding } from './findings.ts';
import { entryMayBeBlob, requiredBlobs, type ManifestNode, type RepoView } from './repository.ts';

/*
 * What each manifest of a repository references, as garbage collection reads it (referencesOf):
 * config and layers linked in the repository (foreign layers excepted, as a manifest PUT excepts
 * them); an index's entries manifests of the repository or, for entries whose media type is not a
 * manifest's, blobs linked there (index-entries.ts mayNameBlob); and a manifest with a subject has
 * its entry in the subject's referrers list. Whether the linked blobs' data is there is checked with
 * the links (links.ts) and blobs (blobs.ts).
 */

export function checkReferences(ctx: FsckContext, view: RepoView): void {
  const unlinked = new Map<string, string[]>();
  for (const [digest, node] of view.graph) {
    for (const blob of requiredBlobs(node.refs)) {
      if (!view.links.has(blob)) unlinked.set(blob, [...(unlinked.get(blob) ?? []), digest]);
    }
    for (const entry of node.refs.children) {
      if (view.holds(entry) || (entryMayBeBlob(node.refs, entry) && view.links.has(entry))) continue;
      addIndexEntryMissing(ctx, view, digest, node, entry);
    }
    const subject = node.refs.subject && tryParseDigest(node.refs.subject);
    if (node.source.kind === 'manifest' && subject && !view.referrers.has(`${subject.digest} ${digest}`)) {
      addReferrerMissing(ctx, view, digest, subject.digest);
    }
  }
  for (const [blob, manifests] of unlinked) addReferenceMissing(ctx, view, blob, manifests);
}

/** Whether the manifest (or the tag copy standing in for it) is still there. */
async function stillThere(ctx: FsckContext, repo: RepositoryName, digest: string, node: ManifestNode) {
  if (node.source.kind === 'manifest') {
    return Boolean(await ctx.storage.head(keys.manifest(repo, parseDigest(digest))));
  }
  const tag = await ctx.storage.head(keys.tag(repo, node.source.tag as Tag));
  return tag?.metadata[meta.digest] === digest;
}

function addReferenceMissing(ctx: FsckContext, view: RepoView, blob: string, manifests: string[]): void {
  const repo = view.name;
  const linkKey = keys.layerLink(repo, parseDigest(blob));
  const make = (ms: readonly string[]): Finding => {
    const stored = ctx.blobs.get(blob)?.status === 'ok';
    const who =
      ms.length === 1 ? `manifest ${repo}@${ms[0]} references it` : `${ms.length} manifests reference it`;
    return finding('reference-missing', {
      key: linkKey,
      repository: repo,
      digest: blob,
      message:
        `blob ${blob} is not linked in repository ${repo}, yet ${who}: pulls fail with BLOB_UNKNOWN` +
        (stored ? ' (the blob is stored: pushing the image again links it without uploading)' : ''),
      affects: [view.affects(ms)],
    });
  };
  ctx.add({
    finding: make(manifests),
    missingKey: linkKey,
    recheck: async () => {
      if (await ctx.storage.head(linkKey)) return undefined;
      const still: string[] = [];
      for (const m of manifests) if (await stillThere(ctx, repo, m, view.graph.get(m)!)) still.push(m);
      return still.length > 0 ? make(still) : undefined;
    },
  });
}

function addIndexEntryMissing(
  ctx: FsckContext,
  view: RepoView,
  index: string,
  node: ManifestNode,
  entry: string,
): void {
  const repo = view.name;
  const asBlob = entryMayBeBlob(node.refs, entry);
  const manifestKey = keys.manifest(repo, parseDigest(entry));
  const make = () =>
    finding('index-entry-missing', {
      key: manifestKey,
      repository: repo,
      digest: entry,
      message: `index ${repo}@${index} lists ${entry}, which is ${asBlob ? 'neither a manifest nor a linked blob' : 'not a manifest'} of the repository: pulls of that entry fail`,
      affects: [view.affects([index])],
    });
  ctx.add({
    finding: make(),
    missingKey: manifestKey,
    recheck: async () => {
      if (!(await stillThere(ctx, repo, index, node))) return undefined;
      if (await ctx.storage.head(manifestKey)) return undefined;
      if (asBlob && (await ctx.storage.head(keys.layerLink(repo, parseDigest(entry))))) return undefined;
      return make();
    },
  });
}

function addReferrerMissing(ctx: FsckContext, view: RepoView, digest: string, subject: string): void {
  const repo = view.name;
  const d = parseDigest(digest);
  const s = parseDigest(subject);
  const entryKey = keys.referrer(repo, s, d);
  const make = () =>
    finding('referrer-missing', {
      key: entryKey,
      repository: repo,
      digest,
      message: `manifest ${repo}@${digest} has subject ${subject}, but is missing from its referrers list: GET /v2/${repo}/referrers/${subject} does not show it`,
    });
  ctx.add({
    finding: make(),
    recheck: async () => {
      if (!(await ctx.storage.head(keys.manifest(repo, d)))) return undefined;
      return (await ctx.storage.head(entryKey)) ? undefined : make();
    },
    repair: async () => {
      const object = await ctx.storage.get(keys.manifest(repo, d));
      if (!object) return; // deleted meanwhile: nothing to list
      const manifest = parseManifest(object.body, object.contentType ?? null, d.algorithm);
      await ctx.registry.referrers.add(repo, s, d, referrerDescriptor(manifest));
    },
  });
}
