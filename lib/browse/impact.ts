import { isIndexMediaType } from '../oci/media-types.ts';
import type { Reference, RepositoryName } from '../oci/names.ts';
import { tryParseDigest } from '../oci/digest.ts';
import { mapLimit } from '../util/concurrency.ts';
import { parseStoredJson } from '../util/json.ts';
import { keys } from '../registry/keys.ts';
import type { RegistryStore } from '../registry/registry.ts';
import type { TagSummaries } from './tags.ts';

/** Tags examined for a delete's consequences, at most (ten listings). */
export const IMPACT_TAG_LIMIT = 10_000;

/** What deleting a tag or a manifest does, for the confirmation the web UI asks for. */
export interface DeleteImpact {
  readonly digest: string;
  readonly mediaType: string;
  /** Tags the delete removes: the tag itself, or every tag naming the manifest. */
  readonly removesTags: string[];
  /** Deleting a tag: the other tags that keep naming its manifest. */
  readonly otherTags: string[];
  /** Manifests no tag names afterwards. */
  readonly untagged: string[];
  /**
   * Of those, the ones a remaining tagged index still lists (with their referrers): garbage
   * collection keeps them; the others it may remove (docs/gc.md).
   */
  readonly stillReferenced: string[];
  /** An index's children and the manifest's referrers, which lose what made them reachable. */
  readonly children: number;
  readonly referrers: number;
  /** False when the repository has more tags than were examined. */
  readonly complete: boolean;
}

/**
 * The consequences of `DELETE /v2/<name>/manifests/<reference>`: a tag delete removes one tag, and
 * its manifest is untagged when no other tag names it; a manifest delete removes every tag naming
 * it. Either way an index's children and the manifest's referrers are untagged unless a remaining
 * tag names them.
 */
export async function deleteImpact(
  store: RegistryStore,
  summaries: TagSummaries,
  repo: RepositoryName,
  ref: Reference,
): Promise<DeleteImpact> {
  const stored = await store.registry.manifests.get(repo, ref);
  const digest = stored.digest.digest;
  const [all, referrers] = await Promise.all([
    summaries.all(repo, IMPACT_TAG_LIMIT),
    store.registry.referrers.list(repo, stored.digest, {}),
  ]);
  const naming = all.tags.filter((t) => t.digest === digest).map((t) => t.name);
  const removesTags = ref.kind === 'tag' ? [ref.tag as string] : naming;
  const removed = new Set(removesTags);
  const remaining = new Set(all.tags.filter((t) => !removed.has(t.name)).flatMap((t) => t.digest ?? []));
  const children = isIndexMediaType(stored.mediaType) ? childDigests(stored.bytes) : [];
  const referrerDigests = referrers.descriptors.map((d) => d.digest);
  // A manifest delete removes the manifest itself; a tag delete may leave it untagged.
  const itself = ref.kind === 'tag' ? [digest] : [];
  const untagged = [
    ...new Set([...itself, ...children, ...referrerDigests].filter((d) => !remaining.has(d))),
  ];
  const listed = await childrenOfTaggedIndexes(
    store,
    repo,
    all.tags
      .filter((t) => !removed.has(t.name) && t.summary?.children !== undefined)
      .flatMap((t) => t.digest ?? []),
  );
  // A manifest an index still lists stays reachable, and so do its referrers.
  const kept = ref.kind === 'tag' && listed.has(digest);
  const stillReferenced = untagged.filter((d) => listed.has(d) || (kept && referrerDigests.includes(d)));
  return {
    digest,
    mediaType: stored.mediaType,
    removesTags,
    otherTags: ref.kind === 'tag' ? naming.filter((t) => !removed.has(t)) : [],
    untagged,
    stillReferenced,
    children: children.length,
    referrers: referrerDigests.length,
    complete: all.complete,
  };
}

/** Tagged indexes read to see what they still list, at most. */
export const IMPACT_INDEX_LIMIT = 100;

async function childrenOfTaggedIndexes(
  store: RegistryStore,
  repo: RepositoryName,
  indexes: string[],
): Promise<Set<string>> {
  const distinct = [...new Set(indexes)].slice(0, IMPACT_INDEX_LIMIT);
  const lists = await mapLimit(distinct, 8, async (d) => {
    const digest = tryParseDigest(d);
    const stored = digest ? await store.storage.get(keys.manifest(repo, digest)) : undefined;
    return stored ? childDigests(stored.body) : [];
  });
  return new Set(lists.flat());
}

function childDigests(bytes: Uint8Array): string[] {
  const index = parseStoredJson(bytes) as { manifests?: { digest?: unknown }[] } | undefined;
  return (index?.manifests ?? []).flatMap((m) => (typeof m?.digest === 'string' ? [m.digest] : []));
}
