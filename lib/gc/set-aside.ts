import { parseDigest } from '../oci/digest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';
import { mapLimit } from '../util/concurrency.ts';
import { meta } from '../registry/keys.ts';
import { listKeys, scanRepos, type RepoKeys } from '../registry/layout.ts';
import { PreconditionFailed } from '../storage/port.ts';
import { addTagCopies, closure, linkKey, readManifests } from './mark.ts';
import { referencesOf } from './references.ts';
import { CONCURRENCY, SAVE_MARGIN_MS, type Run } from './run.ts';
import { GC_KEYS, type Deletion, type Quarantined } from './state.ts';
import { keys } from '../registry/keys.ts';

/*
 * Nothing is deleted in one step (docs/gc.md, "Safety under concurrent pushes"): each planned item
 * is copied under gc/quarantine/<run>/ and deleted (set aside); the run waits until no push that saw
 * it can still come to rely on it (settle); looks again (verify); puts back what turned out to be
 * needed and only then deletes the copies (finish).
 *
 * Crash and resume (docs/gc.md, "Crash and resume"): progress is saved every few seconds and at
 * every pause. A resumed set-aside walks the plan again from the last saved position; an item whose
 * original is gone but whose copy is there was moved by the run that crashed, and is recorded now.
 * The finish deletes whatever is left under the run's quarantine prefix, so copies of items a push
 * re-created meanwhile do not stay behind.
 */

/** The settle wait sleeps this long at a time, renewing the lock in between. */
const SETTLE_STEP_MS = 30_000;

export async function quarantine(run: Run): Promise<boolean> {
  const plan = run.state.plan;
  const recorded = new Set(run.state.quarantined.map((q) => q.key));
  for (let i = Number(run.state.cursor ?? 0); i < plan.length; i++) {
    const item = plan[i]!;
    if (!recorded.has(item.key)) await setAside(run, item);
    run.state.cursor = String(i + 1);
    if (run.outOfTime()) return false;
    await run.checkpoint();
  }
  return true;
}

async function setAside(run: Run, item: Deletion): Promise<void> {
  const copyKey = GC_KEYS.quarantine(run.state.runId, item.key);
  if (item.kind === 'blob' && run.keep.has(item.digest ?? '')) {
    // Needed after all (a push linked it since the mark), so not set aside now. But this run may have
    // moved it before a crash, before the push's link was seen: its copy says so, and it is recorded
    // as moved, so that verify puts it back for the link, or, if it was uploaded again meanwhile, the
    // finish re-points the links naming its old data (schedules 4045 and 5889 of the simulation).
    await recordMoved(run, item, copyKey, true);
    return;
  }
  const object = await run.storage.get(item.key);
  if (!object) {
    // Gone: deleted meanwhile by someone else, or moved by this run before a crash. The copy tells.
    if (item.kind !== 'tag') await recordMoved(run, item, copyKey);
    return;
  }
  if (item.kind === 'tag') {
    // A tag re-pushed since the mark is not the tag the rule chose.
    if (object.metadata[meta.digest] !== item.digest || object.lastModified.getTime() > run.state.startedAt)
      return;
    await run.storage.delete(item.key);
    run.state.done.push(item);
    return;
  }
  if (object.lastModified.getTime() > run.cutoff) {
    // Written again since the mark (a push): needed after all, and so is what a link names.
    if (item.kind === 'link' && item.digest) run.keep.add(item.digest);
    // A blob this run moved before a crash and a push uploaded again: links written before the move
    // name its old data, which the finish deletes once it has re-pointed them.
    if (item.kind === 'blob') await recordMoved(run, item, copyKey, true);
    return;
  }
  await run.storage.put(copyKey, object.body, {
    ...(object.contentType ? { contentType: object.contentType } : {}),
    metadata: { ...object.metadata },
  });
  // Manifest PUTs in this process stop relying on having seen the key (lib/registry/immutable-facts.ts).
  run.registry.facts.forget(item.key);
  await run.storage.delete(item.key);
  run.registry.facts.forget(item.key);
  record(run, item, object.metadata[meta.dataKey]);
}

/**
 * Records an item this run moved before a crash, if its copy says so. `back`: the original is there
 * again (a push stored it anew), or may be. Then only a blob whose bytes were in a data object of its
 * own counts: links written before the move name that data. A blob stored whole was its own data,
 * and its key is valid again.
 */
async function recordMoved(run: Run, item: Deletion, copyKey: string, back = false): Promise<void> {
  const copy = await run.storage.head(copyKey);
  if (!copy) return;
  const dataKey = copy.metadata[meta.dataKey];
  if (back && !dataKey && (await run.storage.head(item.key))) return;
  record(run, item, dataKey);
}

function record(run: Run, item: Deletion, dataKey: string | undefined): void {
  const entry: Quarantined = {
    kind: item.kind as Quarantined['kind'],
    key: item.key,
    size: item.size,
    ...(item.repo ? { repo: item.repo } : {}),
    ...(item.digest ? { digest: item.digest } : {}),
    ...(item.kind === 'blob' && dataKey ? { dataKey } : {}),
  };
  run.state.quarantined.push(entry);
  run.state.quarantinedAt = run.now();
}

/** Lets every push that saw a set-aside object finish (docs/gc.md, step 3). */
export async function settle(run: Run): Promise<boolean> {
  if (run.state.quarantined.length === 0) return true;
  const wait = (run.state.quarantinedAt ?? 0) + run.options.settleMs - run.now();
  if (wait <= 0) return true;
  if (run.options.sleep) {
    run.progress('gc: waiting for pushes in flight to land', { seconds: Math.ceil(wait / 1000) });
    // In steps, renewing the lock between them: a long settle must not let the lease run out.
    for (let left = wait; left > 0; left -= SETTLE_STEP_MS) {
      await run.options.sleep(Math.min(left, SETTLE_STEP_MS));
      await run.checkpoint();
    }
    return true;
  }
  const left = run.options.remainingMs?.() ?? Infinity;
  if (left - SAVE_MARGIN_MS > wait) {
    await new Promise((resolve) => setTimeout(resolve, wait));
    return true;
  }
  return false;
}

/** Looks again, with everything written meanwhile: what is needed now is marked for restoring. */
export async function verify(run: Run): Promise<boolean> {
  const byRepo = new Map<string, Quarantined[]>();
  const blobs = new Map<string, Quarantined>();
  const markers = new Map<string, Quarantined>();
  for (const q of run.state.quarantined) {
    if (q.kind === 'blob') blobs.set(q.digest!, q);
    else if (q.kind === 'catalog') markers.set(q.repo!, q);
    else byRepo.set(q.repo!, [...(byRepo.get(q.repo!) ?? []), q]);
  }
  const restore = new Set(run.state.restore);
  for await (const repo of scanRepos(run.storage, run.state.cursor)) {
    const name = repo.name as RepositoryName;
    for (const digest of repo.links) {
      const blob = blobs.get(digest);
      if (!blob) continue;
      restore.add(blob.key);
      const key = linkKey(name, digest);
      run.state.links[digest] = [...new Set([...(run.state.links[digest] ?? []), key])];
    }
    const marker = markers.get(name);
    if (marker && (repo.tags.length > 0 || repo.manifests.length > 0)) restore.add(marker.key);
    const items = byRepo.get(name);
    if (items) await verifyRepo(run, repo, items, blobs, restore);
    run.state.cursor = repo.lastKey;
    run.state.restore = [...restore];
    if (run.outOfTime()) return false;
    await run.checkpoint();
  }
  run.state.restore = [...restore];
  return true;
}

async function verifyRepo(
  run: Run,
  repo: RepoKeys,
  items: readonly Quarantined[],
  blobs: ReadonlyMap<string, Quarantined>,
  restore: Set<string>,
): Promise<void> {
  const name = repo.name as RepositoryName;
  const tags = (
    await mapLimit(repo.tags, CONCURRENCY, async (tag) => {
      const digest = (await run.storage.head(keys.tag(name, tag as Tag)))?.metadata[meta.digest];
      return digest ? { tag, digest } : undefined;
    })
  ).filter((t) => t !== undefined);
  const graph = await readManifests(run, name, repo.manifests);
  const setAside = items.filter((q) => q.kind === 'manifest');
  const copies = await mapLimit(setAside, CONCURRENCY, async (q) => {
    const copy = await run.storage.get(GC_KEYS.quarantine(run.state.runId, q.key));
    return copy
      ? ([q.digest!, { refs: referencesOf(copy.body), at: 0, size: copy.size }] as const)
      : undefined;
  });
  for (const entry of copies) if (entry && !graph.has(entry[0])) graph.set(entry[0], entry[1]);
  await addTagCopies(run, name, tags, graph);
  const live = closure([...tags.map((t) => t.digest), ...repo.manifests], graph);
  const needed = new Set<string>();
  for (const digest of live) for (const blob of graph.get(digest)?.refs.blobs ?? []) needed.add(blob);
  for (const q of items) {
    const wanted =
      q.kind === 'link'
        ? needed.has(q.digest!)
        : live.has(q.digest!) && (q.kind === 'manifest' || q.kind === 'referrer');
    if (!wanted) continue;
    restore.add(q.key);
    if (q.kind === 'link') {
      const blob = blobs.get(q.digest!);
      if (blob) restore.add(blob.key);
    }
  }
}

/** Puts back what is needed, deletes the rest for good, then clears the run's quarantine. */
export async function finish(run: Run): Promise<boolean> {
  const restore = new Set(run.state.restore);
  const order: Quarantined['kind'][] = ['blob', 'manifest', 'referrer', 'link', 'catalog'];
  for (const kind of order) {
    for (const q of run.state.quarantined.filter((item) => item.kind === kind && restore.has(item.key))) {
      await putBack(run, q);
      if (run.outOfTime()) return false;
      await run.checkpoint();
    }
  }
  const done = new Set(run.state.done.map((d) => `${d.kind} ${d.key}`));
  for (const q of run.state.quarantined) {
    if (!restore.has(q.key)) {
      if (q.kind === 'blob' && q.dataKey) {
        const current = await run.storage.head(q.key);
        if (current?.metadata[meta.dataKey] !== q.dataKey) await run.storage.delete(q.dataKey);
      }
      if (!done.has(`${q.kind} ${q.key}`)) {
        run.state.done.push({ ...q, ...(q.kind === 'link' ? { size: 0 } : {}) });
        done.add(`${q.kind} ${q.key}`);
      }
    }
    await run.storage.delete(GC_KEYS.quarantine(run.state.runId, q.key));
    if (run.outOfTime()) return false;
    await run.checkpoint();
  }
  // Copies no record names: their items were re-created by a push between a crash and the resume.
  for await (const page of listKeys(run.storage, GC_KEYS.quarantinePrefix(run.state.runId))) {
    await mapLimit(page, CONCURRENCY, (key) => run.storage.delete(key));
    if (run.outOfTime()) return false;
  }
  run.state.restored = run.state.quarantined.filter((q) => restore.has(q.key)).length;
  return true;
}

async function putBack(run: Run, q: Quarantined): Promise<void> {
  const copyKey = GC_KEYS.quarantine(run.state.runId, q.key);
  if (q.kind === 'link') {
    // Written from the blob as it is now: a blob uploaded again meanwhile may have new data.
    const blob = await run.registry.blobs.statGlobal(parseDigest(q.digest!));
    if (blob) await run.registry.blobs.link(q.repo as RepositoryName, blob);
    return;
  }
  const copy = await run.storage.get(copyKey);
  if (!copy) return;
  try {
    await run.storage.put(q.key, copy.body, {
      ifNoneMatch: '*',
      ...(copy.contentType ? { contentType: copy.contentType } : {}),
      metadata: { ...copy.metadata },
    });
  } catch (err) {
    if (!(err instanceof PreconditionFailed)) throw err;
    if (q.kind === 'blob') await repointLinks(run, q);
  }
}

/**
 * The blob was uploaded again while set aside, as a new data object: links that still name the old
 * one (written by uploads that saw the old blob) are pointed at the new one, and the old data goes.
 */
async function repointLinks(run: Run, q: Quarantined): Promise<void> {
  const blob = await run.registry.blobs.statGlobal(parseDigest(q.digest!));
  // The old blob's bytes were in its data object, or in the blob's own object (a blob stored whole),
  // whose key now holds the new blob, possibly as a pointer: links naming it must follow the blob.
  const oldData = q.dataKey ?? q.key;
  if (!blob || blob.dataKey === oldData) return;
  for (const key of run.state.links[q.digest!] ?? []) {
    const link = await run.storage.head(key);
    if (link && link.metadata[meta.dataKey] === oldData) {
      const repo = key.slice('repos/'.length, key.indexOf('/_layers/')) as RepositoryName;
      await run.registry.blobs.link(repo, blob);
    }
  }
  if (q.dataKey) await run.storage.delete(q.dataKey);
}
