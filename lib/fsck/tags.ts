import { createHash } from 'node:crypto';
import { referencesOf, type ManifestRefs } from '../gc/references.ts';
import { parseDigest, tryParseDigest } from '../oci/digest.ts';
import { parseManifest } from '../oci/manifest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';
import { mapLimit } from '../util/concurrency.ts';
import { keys, meta } from '../registry/keys.ts';
import { CONCURRENCY, type FsckContext } from './context.ts';
import { finding, type Candidate, type Finding } from './findings.ts';
import type { RepoView } from './repository.ts';

/*
 * Tags and manifest objects of one repository: every tag names a manifest digest its copy hashes to,
 * and that manifest's object exists; every manifest object hashes to its digest. Fills the
 * repository's manifest graph (objects, and tag copies standing in for missing objects) that the
 * reference checks walk.
 */

/** What looking at one tag found. */
export interface TagExam {
  readonly tag: string;
  readonly digest?: string;
  /** The copy's references, when its bytes are the manifest the tag names. */
  readonly copyRefs?: ManifestRefs;
  readonly problem?: Finding;
}

/**
 * Reads a tag (its copy and the digest it names) and looks for its manifest object with `exists`.
 * Undefined when the tag is gone.
 */
export async function examineTag(
  ctx: FsckContext,
  repo: RepositoryName,
  tag: string,
  exists: (digest: string) => Promise<boolean>,
): Promise<TagExam | undefined> {
  const copy = await ctx.storage.get(keys.tag(repo, tag as Tag));
  if (!copy) return undefined;
  const named = copy.metadata[meta.digest];
  const digest = tryParseDigest(named ?? '');
  const ref = `${repo}:${tag}`;
  const affects = [{ repository: repo, tags: [tag], manifests: [] }];
  if (!digest) {
    return {
      tag,
      problem: finding('tag-corrupt', {
        key: copy.key,
        repository: repo,
        tag,
        message: `tag ${ref} names no manifest digest${named ? ` ("${named.slice(0, 80)}")` : ''}: pulls by tag fail`,
        affects,
      }),
    };
  }
  const hex = createHash(digest.algorithm).update(copy.body).digest('hex');
  if (hex !== digest.hex) {
    return {
      tag,
      digest: digest.digest,
      problem: finding('tag-corrupt', {
        key: copy.key,
        repository: repo,
        tag,
        digest: digest.digest,
        message: `tag ${ref}: its copy of manifest ${digest.digest} hashes to ${digest.algorithm}:${hex}: pulls by tag get bytes that do not match their digest`,
        affects,
      }),
    };
  }
  const copyRefs = referencesOf(copy.body);
  if (await exists(digest.digest)) return { tag, digest: digest.digest, copyRefs };
  let reason: string | undefined;
  try {
    const parsed = parseManifest(copy.body, copy.contentType ?? null, digest.algorithm);
    if (parsed.digest.digest !== digest.digest) reason = 'its copy is of another manifest';
  } catch (err) {
    reason = `its copy is not a manifest this registry accepts (${(err as Error).message})`;
  }
  const problem = reason
    ? finding('tag-dangling', {
        key: copy.key,
        repository: repo,
        tag,
        digest: digest.digest,
        message: `tag ${ref} names manifest ${digest.digest}, which is missing, and cannot write it back: ${reason}`,
        affects,
      })
    : finding('tag-manifest-missing', {
        key: copy.key,
        repository: repo,
        tag,
        digest: digest.digest,
        message: `tag ${ref} names manifest ${digest.digest}, whose object is missing: pulls by tag work, pulls by digest fail until it is written back from the tag's copy`,
      });
  return { tag, digest: digest.digest, copyRefs, problem };
}

/** Reads every tag of the repository (full mode), or heads them within the budget (cheap mode). */
export async function readTags(ctx: FsckContext, view: RepoView): Promise<TagExam[]> {
  const found = await mapLimit(view.keys.tags, CONCURRENCY, async (tag): Promise<TagExam | undefined> => {
    ctx.checked.tags++;
    if (!ctx.cheap) return examineTag(ctx, view.name, tag, async (d) => view.manifests.has(d));
    if (!ctx.spend(1, 'tags')) return undefined;
    const info = await ctx.storage.head(keys.tag(view.name, tag as Tag));
    const digest = tryParseDigest(info?.metadata[meta.digest] ?? '');
    if (!info || (digest && view.manifests.has(digest.digest))) {
      return info && digest ? { tag, digest: digest.digest } : undefined;
    }
    // Something is wrong with it: the recheck reads it whole and says what.
    return {
      tag,
      ...(digest && { digest: digest.digest }),
      problem: finding(digest ? 'tag-manifest-missing' : 'tag-corrupt', {
        key: info.key,
        repository: view.name,
        tag,
        message: `tag ${view.name}:${tag}`,
      }),
    };
  });
  const exams = found.filter((e) => e !== undefined);
  for (const e of exams) {
    if (e.digest) view.tags.set(e.tag, e.digest);
    if (e.digest && e.copyRefs && !view.manifests.has(e.digest) && !view.graph.has(e.digest)) {
      view.graph.set(e.digest, { refs: e.copyRefs, source: { kind: 'tag', tag: e.tag } });
    }
  }
  return exams;
}

/** Findings of the tags read: each is looked at again before it is reported. */
export function reportTags(ctx: FsckContext, view: RepoView, exams: readonly TagExam[]): void {
  const repo = view.name;
  for (const e of exams) {
    if (!e.problem) continue;
    const missingKey = e.digest ? keys.manifest(repo, parseDigest(e.digest)) : undefined;
    const candidate: Candidate = {
      finding: e.problem,
      ...(missingKey && { missingKey }),
      recheck: async () =>
        (
          await examineTag(ctx, repo, e.tag, async (d) =>
            Boolean(await ctx.storage.head(keys.manifest(repo, parseDigest(d)))),
          )
        )?.problem,
      repair: async () => {
        if (await ctx.registry.manifests.restoreFromTag(repo, e.tag as Tag)) return;
        // Written meanwhile (a push), or the copy could not be written back.
        if (e.digest && (await ctx.storage.head(keys.manifest(repo, parseDigest(e.digest))))) return;
        throw new Error(`the copy held by tag ${repo}:${e.tag} could not be written back`);
      },
    };
    ctx.add(candidate);
  }
}

/**
 * Reads every manifest object, checks it hashes to its digest, and adds it to the graph. Returns the
 * corrupt ones (reported by reportManifests once the graph is whole, to say which tags they break).
 */
export async function readManifests(ctx: FsckContext, view: RepoView): Promise<string[]> {
  const repo = view.name;
  const corrupt = await mapLimit(view.keys.manifests, CONCURRENCY, async (digest) => {
    const d = tryParseDigest(digest);
    if (!d) return undefined;
    const object = await ctx.storage.get(keys.manifest(repo, d));
    if (!object) return undefined; // deleted meanwhile
    ctx.checked.manifests++;
    if (corruption(object.body, d.algorithm, d.hex)) return digest;
    view.graph.set(digest, { refs: referencesOf(object.body), source: { kind: 'manifest' } });
    return undefined;
  });
  return corrupt.filter((d) => d !== undefined);
}

export function reportManifests(ctx: FsckContext, view: RepoView, corrupt: readonly string[]): void {
  const repo = view.name;
  for (const digest of corrupt) {
    const d = parseDigest(digest);
    const look = async () => {
      const object = await ctx.storage.get(keys.manifest(repo, d));
      const actual = object && corruption(object.body, d.algorithm, d.hex);
      return actual ? manifestCorrupt(repo, digest, actual, view.affects([digest])) : undefined;
    };
    ctx.add({
      finding: manifestCorrupt(repo, digest, '(another digest)', view.affects([digest])),
      recheck: look,
    });
  }
}

function corruption(body: Uint8Array, algorithm: 'sha256' | 'sha512', hex: string): string | undefined {
  const actual = createHash(algorithm).update(body).digest('hex');
  return actual === hex ? undefined : `${algorithm}:${actual}`;
}

function manifestCorrupt(
  repo: string,
  digest: string,
  actual: string,
  affects: ReturnType<RepoView['affects']>,
): Finding {
  return finding('manifest-corrupt', {
    key: keys.manifest(repo as RepositoryName, parseDigest(digest)),
    repository: repo,
    digest,
    message: `manifest ${repo}@${digest}: its bytes hash to ${actual}: pulls fail their digest check`,
    affects: [affects],
  });
}
