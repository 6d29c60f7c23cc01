import { parseDigest, tryParseDigest, type ParsedDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { mapLimit } from '../util/concurrency.ts';
import { keys, meta } from '../registry/keys.ts';
import { readBackDigest } from '../registry/read-back.ts';
import type { ObjectInfo } from '../storage/port.ts';
import { examineBlob } from './blobs.ts';
import { CONCURRENCY, type BlobState, type FsckContext } from './context.ts';
import { finding, type Finding } from './findings.ts';
import type { RepoView } from './repository.ts';

/*
 * Links (`repos/<name>/_layers/<alg>/<hex>`): a link carries the blob's data key and size, so a blob
 * HEAD or GET costs one read and S3 redirects presign the link's data key. A link whose blob names
 * other data now (the blob was pushed again after its data was lost, or collected and uploaded again)
 * is stale: `--repair` re-points it when the blob's data is intact. A link whose blob is gone is
 * broken, unless its own data is intact: then the blob's pointer is written back from it.
 */

export async function checkLinks(ctx: FsckContext, view: RepoView): Promise<void> {
  await mapLimit(view.keys.links, CONCURRENCY, async (digest) => {
    const d = tryParseDigest(digest);
    if (!d) return;
    ctx.checked.links++;
    const blob = ctx.blobs.get(digest);
    if (!blob) {
      // Not in the blob listing (which ran before this one): looked at once every repository is seen
      // (reportMissingBlobs, which also counts the data its links name as in use).
      if (ctx.blobsListed) ctx.missingBlobs.set(digest, [...(ctx.missingBlobs.get(digest) ?? []), view.name]);
      return;
    }
    // A broken blob is its own finding (blobs.ts); cheap mode does not read links.
    if (blob.status !== 'ok' || ctx.cheap) return;
    const link = await ctx.storage.head(keys.layerLink(view.name, d));
    // Data a link names is in use (pulls read it) even when the blob names other data now.
    const named = link?.metadata[meta.dataKey];
    if (named) ctx.named.add(named);
    if (!link || matches(link, blob)) return;
    addStaleLink(ctx, view.name, d, link, blob);
  });
}

function matches(link: ObjectInfo, blob: BlobState): boolean {
  return link.metadata[meta.dataKey] === blob.dataKey && Number(link.metadata[meta.size]) === blob.size;
}

function staleFinding(repo: RepositoryName, d: ParsedDigest, link: ObjectInfo, blob: BlobState): Finding {
  const named = link.metadata[meta.dataKey];
  return finding('link-stale', {
    key: link.key,
    repository: repo,
    digest: d.digest,
    message:
      `the link of blob ${d.digest} in ${repo} names ${named ? `data ${named} (${link.metadata[meta.size] ?? '?'} bytes)` : 'no data'}, ` +
      `but the blob's data is ${blob.dataKey} (${blob.size} bytes): presigned (S3) pulls fail once the old data is gone`,
  });
}

/** The blob as it is now, when its data is intact. */
async function intactBlob(ctx: FsckContext, d: ParsedDigest): Promise<BlobState | undefined> {
  const info = await ctx.storage.head(keys.blob(d));
  if (!info) return undefined;
  const { state } = await examineBlob(ctx, d, info, { hash: false });
  return state.status === 'ok' ? state : undefined;
}

function addStaleLink(
  ctx: FsckContext,
  repo: RepositoryName,
  d: ParsedDigest,
  link: ObjectInfo,
  blob: BlobState,
): void {
  const linkKey = keys.layerLink(repo, d);
  ctx.add({
    finding: staleFinding(repo, d, link, blob),
    recheck: async () => {
      const now = await intactBlob(ctx, d);
      const again = now && (await ctx.storage.head(linkKey));
      return now && again && !matches(again, now) ? staleFinding(repo, d, again, now) : undefined;
    },
    repair: async () => {
      const now = await intactBlob(ctx, d);
      if (!now) throw new Error(`blob ${d.digest}'s data is not intact any more: the link was left as it is`);
      await ctx.registry.blobs.link(repo, { digest: d, dataKey: now.dataKey, size: now.size });
    },
  });
}

/**
 * Blobs linked somewhere but absent from the blob listing, once every repository was seen: broken,
 * or (a link's data intact) a pointer to write back.
 */
export async function reportMissingBlobs(ctx: FsckContext): Promise<void> {
  for (const [digest, repos] of ctx.missingBlobs) {
    const d = parseDigest(digest);
    if (!ctx.spend(1 + 2 * repos.length, 'links of missing blobs')) return;
    const first = await examineMissingBlob(ctx, d, repos);
    if (!first) continue;
    ctx.add({
      finding: first.finding,
      missingKey: keys.blob(d),
      recheck: async () => (await examineMissingBlob(ctx, d, repos))?.finding,
      repair: async () => {
        const now = await examineMissingBlob(ctx, d, repos);
        if (!now?.source) return; // stored meanwhile (a push), or nothing to write it back from
        const { repo, dataKey, size } = now.source;
        const hex = await readBackDigest(ctx.storage, dataKey, size, d.algorithm);
        if (hex !== d.hex) {
          throw new Error(`its data ${dataKey} hashes to ${d.algorithm}:${hex}, not to the blob's digest`);
        }
        // The registry's own path: a create-only pointer, linked into the repository.
        const info = await ctx.registry.blobs.storeAndLink(repo, d, { dataKey, size });
        for (const other of repos) {
          if (other === repo) continue;
          const link = await ctx.storage.head(keys.layerLink(other, d));
          if (link && link.metadata[meta.dataKey] !== info.dataKey)
            await ctx.registry.blobs.link(other, info);
        }
      },
    });
  }
}

interface MissingBlob {
  readonly finding: Finding;
  /** A link whose data is intact, to write the blob back from. */
  readonly source?: { repo: RepositoryName; dataKey: string; size: number };
}

async function examineMissingBlob(
  ctx: FsckContext,
  d: ParsedDigest,
  repos: readonly RepositoryName[],
): Promise<MissingBlob | undefined> {
  const blobKey = keys.blob(d);
  if (await ctx.storage.head(blobKey)) return undefined;
  const linking: RepositoryName[] = [];
  let source: MissingBlob['source'];
  for (const repo of repos) {
    const link = await ctx.storage.head(keys.layerLink(repo, d));
    if (!link) continue;
    linking.push(repo);
    const dataKey = link.metadata[meta.dataKey];
    if (dataKey) ctx.named.add(dataKey);
    const size = Number(link.metadata[meta.size]);
    if (source || !dataKey || dataKey === blobKey || !Number.isSafeInteger(size)) continue;
    if ((await ctx.storage.head(dataKey))?.size === size) source = { repo, dataKey, size };
  }
  if (linking.length === 0) return undefined;
  const where = linking.join(', ');
  if (source) {
    return {
      source,
      finding: finding('blob-pointer-missing', {
        key: blobKey,
        digest: d.digest,
        message: `blob ${d.digest} is missing from blobs/, but its data ${source.dataKey} is intact and ${where} link it: pulls work, but a collection would delete that data as unnamed; --repair writes the blob back once its data hashes right`,
      }),
    };
  }
  return {
    finding: finding('blob-missing', {
      key: blobKey,
      digest: d.digest,
      message: `blob ${d.digest} is linked in ${where}, but neither it nor its data is stored: HEAD answers 200 and GET fails`,
      affects: [],
    }),
  };
}
