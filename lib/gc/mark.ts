import { parseDigest } from '../oci/digest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';
import { mapLimit } from '../util/concurrency.ts';
import { keys, meta, parse, pathOfDigest } from '../registry/keys.ts';
import { listKeys, scanRepos, type RepoKeys } from '../registry/layout.ts';
import {
  immutableRuleFor,
  matchesTag,
  retentionFor,
  type ImmutableRule,
  type RetentionRule,
} from '../registry/tag-policy.ts';
import { referencesOf, type ManifestRefs } from './references.ts';
import { CONCURRENCY, type Run } from './run.ts';

/*
 * The mark: what each repository still needs (docs/gc.md, "What is garbage"). Nothing is changed
 * here; the plan it writes into the run's state is carried out by the set-aside phases. Resumable
 * a repository at a time (the state's cursor is the last key of the last repository marked).
 */

const DAY_MS = 86_400_000;

/** A manifest as the collection sees it: what it references, when it was written, its size. */
export interface ManifestNode {
  readonly refs: ManifestRefs;
  readonly at: number;
  readonly size: number;
}

export async function mark(run: Run): Promise<boolean> {
  const content = new Set(run.state.contentRepos ?? []);
  for await (const repo of scanRepos(run.storage, run.state.cursor)) {
    await markRepo(run, repo);
    if (repo.tags.length > 0 || repo.manifests.length > 0) content.add(repo.name);
    run.state.contentRepos = [...content];
    run.state.cursor = repo.lastKey;
    if (run.outOfTime()) return false;
    await run.checkpoint();
  }
  run.state.contentRepos = [...content];
  return true;
}

async function markRepo(run: Run, repo: RepoKeys): Promise<void> {
  const name = repo.name as RepositoryName;
  const t0 = run.state.startedAt;
  const plan = run.state.plan;
  const rule = retentionFor(run.options.retention, name);
  const tags = (
    await mapLimit(repo.tags, CONCURRENCY, async (tag) => {
      const info = await run.storage.head(keys.tag(name, tag as Tag));
      const digest = info?.metadata[meta.digest];
      return info && digest ? { tag, digest, at: info.lastModified.getTime() } : undefined;
    })
  ).filter((t) => t !== undefined);
  const manifests = await readManifests(run, name, repo.manifests);
  // A tag whose manifest object is gone still pulls: it holds a copy of the manifest. What that copy
  // references is needed like a manifest's (however the tag came to dangle).
  const graph = new Map(manifests);
  await addTagCopies(run, name, tags, graph);
  // ... and, once it is older than the grace period, its manifest is written back from the copy: the
  // tag then resolves by digest again (a manifest DELETE that failed half way, told 503, leaves this).
  for (const t of tags) {
    if (manifests.has(t.digest) || !graph.has(t.digest) || t.at > run.cutoff || run.options.dryRun) continue;
    if (await run.registry.manifests.restoreFromTag(name, t.tag as Tag)) {
      run.state.repaired = [...(run.state.repaired ?? []), keys.manifest(name, parseDigest(t.digest))];
    }
  }
  const dropTags = rule ? retentionDeletes(rule, tags, t0, run.options.immutable, name) : [];
  for (const tag of dropTags) {
    plan.push({ kind: 'tag', key: keys.tag(name, tag.tag as Tag), repo: name, digest: tag.digest, size: 0 });
  }
  const dropped = new Set(dropTags.map((t) => t.tag));
  const untaggedAfter =
    rule?.untaggedAfterDays !== undefined
      ? rule.untaggedAfterDays * DAY_MS
      : run.options.deleteUntagged
        ? 0
        : undefined;
  let live: Set<string>;
  const tagRoots = tags.filter((t) => !dropped.has(t.tag)).map((t) => t.digest);
  if (untaggedAfter === undefined) {
    live = closure([...graph.keys()], graph);
  } else {
    const minAge = Math.max(run.options.graceMs, untaggedAfter);
    const young = [...manifests].filter(([, m]) => t0 - m.at < minAge).map(([d]) => d);
    live = closure([...tagRoots, ...young], graph);
  }
  const needed = new Set<string>();
  for (const digest of live) for (const blob of graph.get(digest)?.refs.blobs ?? []) needed.add(blob);
  for (const [digest, m] of manifests) {
    if (live.has(digest)) continue;
    plan.push({
      kind: 'manifest',
      key: keys.manifest(name, parseDigest(digest)),
      repo: name,
      digest,
      size: m.size,
    });
  }
  // A manifest with a subject whose entry is missing (its PUT failed after writing the manifest):
  // the entry is written again, once the manifest is older than the grace period.
  const entries = new Set(repo.referrers.map((e) => `${e.subject}|${e.digest}`));
  for (const [digest, m] of manifests) {
    const subject = m.refs.subject;
    if (!subject || entries.has(`${subject}|${digest}`) || m.at > run.cutoff || run.options.dryRun) continue;
    if (await run.registry.manifests.restoreReferrer(name, parseDigest(digest))) {
      run.state.repaired = [...(run.state.repaired ?? []), `${repo.name} referrer of ${digest}`];
    }
  }
  await mapLimit(repo.referrers, CONCURRENCY, async (entry) => {
    if (manifests.has(entry.digest)) {
      if (!live.has(entry.digest)) {
        plan.push({ kind: 'referrer', key: entry.key, repo: name, digest: entry.digest, size: 0 });
      }
      return;
    }
    // An entry whose manifest is gone (its DELETE raced a push of it): it goes once it is old enough.
    const info = await run.storage.head(entry.key);
    if (info && info.lastModified.getTime() <= run.cutoff) {
      plan.push({ kind: 'referrer', key: entry.key, repo: name, digest: entry.digest, size: 0 });
    }
  });
  for (const blob of needed) run.keep.add(blob);
  const unneeded = repo.links.filter((d) => !needed.has(d));
  await mapLimit(unneeded, CONCURRENCY, async (digest) => {
    const key = linkKey(name, digest);
    const info = await run.storage.head(key);
    if (!info) return;
    if (info.lastModified.getTime() > run.cutoff) run.keep.add(digest);
    else plan.push({ kind: 'link', key, repo: name, digest, size: 0 });
  });
}

export function linkKey(repo: string, digest: string): string {
  return `repos/${repo}/_layers/${pathOfDigest(digest)}`;
}

export async function readManifests(
  run: Run,
  name: RepositoryName,
  digests: readonly string[],
): Promise<Map<string, ManifestNode>> {
  const read = await mapLimit(digests, CONCURRENCY, async (digest) => {
    const object = await run.storage.get(keys.manifest(name, parseDigest(digest)));
    return object
      ? ([
          digest,
          { refs: referencesOf(object.body), at: object.lastModified.getTime(), size: object.size },
        ] as const)
      : undefined;
  });
  return new Map(read.filter((e) => e !== undefined));
}

/** Reads the copy a tag holds for each tag whose manifest is not in `graph`, and adds it. */
export async function addTagCopies(
  run: Run,
  name: RepositoryName,
  tags: readonly { tag: string; digest: string }[],
  graph: Map<string, ManifestNode>,
): Promise<void> {
  const dangling = tags.filter((t) => !graph.has(t.digest));
  const copies = await mapLimit(dangling, CONCURRENCY, async (t) => {
    const object = await run.storage.get(keys.tag(name, t.tag as Tag));
    return object && object.metadata[meta.digest] === t.digest
      ? ([t.digest, { refs: referencesOf(object.body), at: object.lastModified.getTime(), size: 0 }] as const)
      : undefined;
  });
  for (const entry of copies) if (entry && !graph.has(entry[0])) graph.set(entry[0], entry[1]);
}

/**
 * Catalog markers of repositories that held neither a tag nor a manifest at the mark (a push that
 * failed after writing its marker, or everything deleted): set aside once older than the grace period.
 */
export async function catalog(run: Run): Promise<boolean> {
  const content = new Set(run.state.contentRepos ?? []);
  const listed = new Set(run.state.cursor === undefined ? [] : content);
  for await (const page of listKeys(run.storage, keys.catalogPrefix, run.state.cursor)) {
    await mapLimit(page, CONCURRENCY, async (key) => {
      const repo = parse.catalogKey(key);
      if (repo) listed.add(repo);
      if (!repo || content.has(repo)) return;
      const info = await run.storage.head(key);
      if (info && info.lastModified.getTime() <= run.cutoff) {
        run.state.plan.push({ kind: 'catalog', key, repo, size: 0 });
      }
    });
    run.state.cursor = page[page.length - 1];
    if (run.outOfTime()) return false;
    await run.checkpoint();
  }
  // A repository with content but no entry: a manifest PUT whose catalog write failed while its
  // manifest write went through (the client was told 503). The entry is written now.
  for (const repo of content) {
    if (listed.has(repo) || run.options.dryRun) continue;
    await run.storage.put(keys.catalog(repo as RepositoryName), new Uint8Array(0));
    run.state.repaired = [...(run.state.repaired ?? []), keys.catalog(repo as RepositoryName)];
  }
  return true;
}

/** Manifests reachable from `roots` through index children, plus referrers of anything reached. */
export function closure(
  roots: Iterable<string>,
  graph: ReadonlyMap<string, { refs: ManifestRefs }>,
): Set<string> {
  const live = new Set<string>();
  const visit = (digest: string) => {
    const stack = [digest];
    while (stack.length > 0) {
      const d = stack.pop()!;
      if (live.has(d) || !graph.has(d)) continue;
      live.add(d);
      stack.push(...graph.get(d)!.refs.children);
    }
  };
  for (const root of roots) visit(root);
  for (let changed = true; changed;) {
    changed = false;
    for (const [digest, m] of graph) {
      if (!live.has(digest) && m.refs.subject && live.has(m.refs.subject)) {
        visit(digest);
        changed = true;
      }
    }
  }
  return live;
}

interface TagInfo {
  readonly tag: string;
  readonly digest: string;
  readonly at: number;
}

/**
 * The tags a retention rule deletes: not matched by `keepTags`, not immutable, not among the newest
 * `keepLast`, and older than `deleteOlderThanDays` (or, without it, simply beyond `keepLast`). Tags
 * pushed at the same time (S3 keeps whole seconds) count the higher name as the newer.
 */
export function retentionDeletes(
  rule: RetentionRule,
  tags: readonly TagInfo[],
  now: number,
  immutable: readonly ImmutableRule[],
  repo: string,
): TagInfo[] {
  const candidates = tags
    .filter((t) => !(rule.keepTags ?? []).some((p) => matchesTag(p, t.tag)))
    .filter((t) => !immutableRuleFor(immutable, repo, t.tag))
    .sort((a, b) => b.at - a.at || (a.tag < b.tag ? 1 : -1));
  const rest = candidates.slice(rule.keepLast ?? 0);
  if (rule.deleteOlderThanDays !== undefined) {
    return rest.filter((t) => now - t.at > rule.deleteOlderThanDays! * DAY_MS);
  }
  return rule.keepLast !== undefined ? rest : [];
}
