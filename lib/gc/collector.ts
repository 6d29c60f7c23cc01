import { parseDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { mapLimit } from '../registry/concurrency.ts';
import { keys, meta } from '../registry/keys.ts';
import { storeTime } from '../registry/store-clock.ts';
import type { Registry } from '../registry/registry.ts';
import { PreconditionFailed, type StorageDriver } from '../storage/port.ts';
import { listKeys, pathOfDigest, scanRepos, type RepoKeys } from './layout.ts';
import {
  immutableRuleFor,
  matchesTag,
  retentionFor,
  type ImmutableRule,
  type RetentionRule,
} from './policy.ts';
import { referencesOf, type ManifestRefs } from './references.ts';
import {
  acquireLock,
  GC_KEYS,
  loadState,
  newState,
  releaseLock,
  saveState,
  type Deletion,
  type GcState,
  type Quarantined,
} from './state.ts';

export interface GcOptions {
  /** Nothing written, uploaded, mounted or re-pushed more recently than this is collected. */
  readonly graceMs: number;
  /** Delete manifests no tag reaches (retention rules can ask for it per repository too). */
  readonly deleteUntagged: boolean;
  readonly retention: readonly RetentionRule[];
  /** Immutable tags are never deleted by retention. */
  readonly immutable: readonly ImmutableRule[];
  /** Upload sessions, tails, multipart uploads and orphaned data older than this are removed. */
  readonly uploadTtlMs: number;
  /**
   * How long set-aside objects wait before the run decides they are garbage: longer than any manifest
   * PUT can take between checking a blob and writing the manifest (docs/gc.md).
   */
  readonly settleMs: number;
  /** Report what would be deleted; change nothing. */
  readonly dryRun: boolean;
  /** Time left to run (the janitor: Lambda's getRemainingTimeInMillis); absent, no limit. */
  readonly remainingMs?: () => number;
  /** Waits out the settle period in this run; absent, a run pauses and a later one continues. */
  readonly sleep?: (ms: number) => Promise<void>;
  /**
   * The collector's clock, for durations it measures itself (the settle wait, the lock's lease, when
   * the run finished). Ages of stored objects are never measured with it: the run reads the store's
   * clock (storeTime) and compares it with lastModified, which the store stamped (docs/gc.md, "Clocks").
   */
  readonly now?: () => number;
  readonly onProgress?: (message: string, fields?: Record<string, unknown>) => void;
  /** Called before each phase of a (non-dry) run; awaited. */
  readonly onPhase?: (phase: string) => Promise<void> | void;
}

export interface GcResult {
  /** done: the run finished; paused: out of time or settling, progress saved; locked: another run holds the lock. */
  readonly status: 'done' | 'paused' | 'locked';
  readonly runId?: string;
  readonly phase?: string;
  /** What was (or, in a dry run, would be) deleted for good. */
  readonly deleted: Deletion[];
  readonly bytesFreed: number;
  /** Set-aside objects that turned out to be needed again and were put back. */
  readonly restored: number;
}

/** Minimum settle time: the manifest check window plus the time the S3 client may spend retrying a write. */
export const MIN_SETTLE_MS = 5 * 60_000;
/** What a paused run needs to save its progress. */
const SAVE_MARGIN_MS = 30_000;
const LOCK_LEASE_MS = 20 * 60_000;
const CONCURRENCY = 16;
const DAY_MS = 86_400_000;

/**
 * Online garbage collection (docs/gc.md): mark what manifests and tags still need, set aside what
 * nothing needs, wait until no push that saw it can still reference it, look again, put back what
 * turned out to be needed, and only then delete for good. Resumable: progress is saved under `gc/`.
 */
export async function collectGarbage(registry: Registry, options: GcOptions): Promise<GcResult> {
  const storage = registry.storage;
  const now = options.now ?? Date.now;
  if (options.dryRun) {
    const run = new Run(registry, options, newState(await storeTime(storage)));
    await run.analyse();
    const deleted = [...run.state.plan, ...run.state.done];
    return { status: 'done', runId: run.state.runId, deleted, bytesFreed: sum(deleted), restored: 0 };
  }
  const token = await acquireLock(storage, LOCK_LEASE_MS, now());
  if (!token) return { status: 'locked', deleted: [], bytesFreed: 0, restored: 0 };
  try {
    const run = new Run(registry, options, (await loadState(storage)) ?? newState(await storeTime(storage)));
    const finished = await run.advance();
    if (!finished) {
      await run.save();
      return {
        status: 'paused',
        runId: run.state.runId,
        phase: run.state.phase,
        deleted: [],
        bytesFreed: 0,
        restored: 0,
      };
    }
    const deleted = run.state.done;
    const result: GcResult = {
      status: 'done',
      runId: run.state.runId,
      deleted,
      bytesFreed: sum(deleted),
      restored: run.state.restored,
    };
    await storage.put(
      GC_KEYS.lastRun,
      new TextEncoder().encode(
        JSON.stringify({
          runId: result.runId,
          startedAt: new Date(run.state.startedAt).toISOString(),
          finishedAt: new Date(now()).toISOString(),
          deleted: countByKind(deleted),
          bytesFreed: result.bytesFreed,
          restored: result.restored,
        }),
      ),
      { contentType: 'application/json' },
    );
    await storage.delete(GC_KEYS.state);
    return result;
  } finally {
    await releaseLock(storage, token).catch(() => undefined);
  }
}

class Run {
  readonly storage: StorageDriver;
  readonly keep: Set<string>;
  private readonly named: Set<string>;
  private readonly sessions: Set<string>;
  private readonly now: () => number;

  constructor(
    private readonly registry: Registry,
    private readonly options: GcOptions,
    readonly state: GcState,
  ) {
    this.storage = registry.storage;
    this.keep = new Set(state.keepBlobs);
    this.named = new Set(state.namedData);
    this.sessions = new Set(state.sessions);
    this.now = options.now ?? Date.now;
  }

  /** Ages are measured from the run's start: anything newer than this is left alone. */
  private get cutoff(): number {
    return this.state.startedAt - this.options.graceMs;
  }

  private outOfTime(): boolean {
    return this.options.remainingMs !== undefined && this.options.remainingMs() < SAVE_MARGIN_MS;
  }

  async save(): Promise<void> {
    this.state.keepBlobs = [...this.keep];
    this.state.namedData = [...this.named];
    this.state.sessions = [...this.sessions];
    await saveState(this.storage, this.state);
  }

  private progress(message: string, fields?: Record<string, unknown>): void {
    this.options.onProgress?.(message, { runId: this.state.runId, ...fields });
  }

  /** The dry run: the same decisions, nothing changed. */
  async analyse(): Promise<void> {
    await this.mark();
    await this.uploads(true);
    await this.blobs();
    await this.orphans(true);
  }

  /** Runs phases until the run is finished (true) or must pause (false). */
  async advance(): Promise<boolean> {
    for (;;) {
      if (this.outOfTime()) return false;
      const phase = this.state.phase;
      this.progress(`gc: ${phase}`);
      await this.options.onPhase?.(phase);
      let complete: boolean;
      switch (phase) {
        case 'mark':
          complete = await this.mark();
          break;
        case 'uploads':
          complete = await this.uploads(false);
          break;
        case 'blobs':
          complete = await this.blobs();
          break;
        case 'orphans':
          complete = await this.orphans(false);
          break;
        case 'quarantine':
          complete = await this.quarantine();
          break;
        case 'settle':
          complete = await this.settle();
          break;
        case 'verify':
          complete = await this.verify();
          break;
        case 'finish':
          return this.finish();
      }
      if (!complete) return false;
      this.state.phase = NEXT[phase];
      this.state.cursor = undefined;
      await this.save();
    }
  }

  // --- mark: what each repository still needs -------------------------------------------------

  private async mark(): Promise<boolean> {
    for await (const repo of scanRepos(this.storage, this.state.cursor)) {
      await this.markRepo(repo);
      this.state.cursor = repo.lastKey;
      if (this.outOfTime()) return false;
    }
    return true;
  }

  private async markRepo(repo: RepoKeys): Promise<void> {
    const name = repo.name as RepositoryName;
    const t0 = this.state.startedAt;
    const rule = retentionFor(this.options.retention, name);
    const tags = (
      await mapLimit(repo.tags, CONCURRENCY, async (tag) => {
        const info = await this.storage.head(`repos/${name}/_tags/${tag}`);
        const digest = info?.metadata[meta.digest];
        return info && digest ? { tag, digest, at: info.lastModified.getTime() } : undefined;
      })
    ).filter((t) => t !== undefined);
    const manifests = await this.readManifests(name, repo.manifests);
    const dropTags = rule ? retentionDeletes(rule, tags, t0, this.options.immutable, name) : [];
    for (const tag of dropTags) {
      this.state.plan.push({
        kind: 'tag',
        key: `repos/${name}/_tags/${tag.tag}`,
        repo: name,
        digest: tag.digest,
        size: 0,
      });
    }
    const dropped = new Set(dropTags.map((t) => t.tag));
    const untaggedAfter =
      rule?.untaggedAfterDays !== undefined
        ? rule.untaggedAfterDays * DAY_MS
        : this.options.deleteUntagged
          ? 0
          : undefined;
    let live: Set<string>;
    if (untaggedAfter === undefined) {
      live = new Set(manifests.keys());
    } else {
      const minAge = Math.max(this.options.graceMs, untaggedAfter);
      const roots = [
        ...tags.filter((t) => !dropped.has(t.tag)).map((t) => t.digest),
        ...[...manifests].filter(([, m]) => t0 - m.at < minAge).map(([d]) => d),
      ];
      live = closure(roots, manifests);
    }
    const needed = new Set<string>();
    for (const [digest, m] of manifests) {
      if (live.has(digest)) {
        for (const blob of m.refs.blobs) needed.add(blob);
        continue;
      }
      this.state.plan.push({
        kind: 'manifest',
        key: keys.manifest(name, parseDigest(digest)),
        repo: name,
        digest,
        size: m.size,
      });
    }
    for (const entry of repo.referrers) {
      if (manifests.has(entry.digest) && !live.has(entry.digest)) {
        this.state.plan.push({ kind: 'referrer', key: entry.key, repo: name, digest: entry.digest, size: 0 });
      }
    }
    for (const blob of needed) this.keep.add(blob);
    const unneeded = repo.links.filter((d) => !needed.has(d));
    await mapLimit(unneeded, CONCURRENCY, async (digest) => {
      const key = `repos/${name}/_layers/${pathOfDigest(digest)}`;
      const info = await this.storage.head(key);
      if (!info) return;
      if (info.lastModified.getTime() > this.cutoff) this.keep.add(digest);
      else this.state.plan.push({ kind: 'link', key, repo: name, digest, size: 0 });
    });
  }

  private async readManifests(
    name: RepositoryName,
    digests: readonly string[],
  ): Promise<Map<string, { refs: ManifestRefs; at: number; size: number }>> {
    const read = await mapLimit(digests, CONCURRENCY, async (digest) => {
      const object = await this.storage.get(keys.manifest(name, parseDigest(digest)));
      return object
        ? ([
            digest,
            { refs: referencesOf(object.body), at: object.lastModified.getTime(), size: object.size },
          ] as const)
        : undefined;
    });
    return new Map(read.filter((e) => e !== undefined));
  }

  // --- uploads: stale sessions, and which sessions exist ----------------------------------------

  private async uploads(dryRun: boolean): Promise<boolean> {
    const t = await storeTime(this.storage);
    this.state.sessionsAt = t;
    const stale: string[] = [];
    for await (const page of listKeys(this.storage, keys.uploadsPrefix)) {
      await mapLimit(page, CONCURRENCY, async (key) => {
        const id = /^uploads\/([0-9a-f-]{36})\.json$/.exec(key)?.[1];
        if (!id) return;
        const info = await this.storage.head(key);
        if (!info) return;
        if (t - info.lastModified.getTime() >= this.options.uploadTtlMs) stale.push(key);
        else this.sessions.add(id);
      });
    }
    for (const key of stale) this.state.done.push({ kind: 'upload', key, size: 0 });
    if (!dryRun && stale.length > 0) await this.registry.uploads.purgeStale(this.options.uploadTtlMs, t);
    return true;
  }

  // --- blobs: which are garbage, which data objects they name -----------------------------------

  private async blobs(): Promise<boolean> {
    for await (const page of listKeys(this.storage, 'blobs/', this.state.cursor)) {
      await mapLimit(page, CONCURRENCY, async (key) => {
        const match = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(key);
        if (!match) return;
        const digest = `${match[1]}:${match[2]}`;
        const info = await this.storage.head(key);
        if (!info) return;
        const dataKey = info.metadata[meta.dataKey];
        if (dataKey) this.named.add(dataKey);
        if (this.keep.has(digest) || info.lastModified.getTime() > this.cutoff) return;
        const size = dataKey ? Number(info.metadata[meta.size] ?? 0) : info.size;
        this.state.plan.push({
          kind: 'blob',
          key,
          digest,
          size,
          ...(dataKey ? { dataKey } : {}),
        } as Deletion);
      });
      this.state.cursor = page[page.length - 1];
      if (this.outOfTime()) return false;
    }
    return true;
  }

  // --- orphans: upload leftovers no session owns -------------------------------------------------

  /**
   * Data objects, tails and multipart uploads made before the session snapshot whose session was gone
   * by then. A data object a finished upload published is named by its blob pointer, written before
   * the session was deleted, so before the snapshot and before the blob listing that saw it.
   */
  private async orphans(dryRun: boolean): Promise<boolean> {
    const before = (this.state.sessionsAt ?? (await storeTime(this.storage))) - this.options.uploadTtlMs;
    const idOf = (key: string) =>
      /^(?:data|uploads)\/([0-9a-f-]{36})(?:\.tail-\d+(?:-[0-9a-f]+)?)?$/.exec(key)?.[1];
    for (const prefix of ['data/', keys.uploadsPrefix]) {
      for await (const page of listKeys(this.storage, prefix)) {
        await mapLimit(page, CONCURRENCY, async (key) => {
          const id = idOf(key);
          if (!id || this.sessions.has(id) || this.named.has(key)) return;
          if (prefix === keys.uploadsPrefix && key.endsWith('.json')) return;
          const info = await this.storage.head(key);
          if (!info || info.lastModified.getTime() >= before) return;
          const kind = /\.tail-\d+(?:-[0-9a-f]+)?$/.test(key) ? 'tail' : 'data';
          this.state.done.push({ kind, key, size: info.size });
          if (!dryRun) await this.storage.delete(key);
        });
      }
    }
    for await (const upload of this.storage.multipart.listOpen('data/')) {
      const id = idOf(upload.key);
      if (!id || this.sessions.has(id) || upload.initiated.getTime() >= before) continue;
      this.state.done.push({ kind: 'multipart', key: upload.key, size: 0 });
      if (!dryRun) await this.storage.multipart.abort(upload.key, upload.uploadId);
    }
    return true;
  }

  // --- quarantine: set aside, keeping a copy ----------------------------------------------------

  private async quarantine(): Promise<boolean> {
    const plan = this.state.plan;
    for (let i = Number(this.state.cursor ?? 0); i < plan.length; i++) {
      const item = plan[i]!;
      await this.setAside(item);
      this.state.cursor = String(i + 1);
      if (this.outOfTime()) return false;
    }
    return true;
  }

  private async setAside(item: Deletion): Promise<void> {
    if (item.kind === 'blob' && this.keep.has(item.digest ?? '')) return;
    const object = await this.storage.get(item.key);
    if (!object) return;
    if (item.kind === 'tag') {
      // A tag re-pushed since the mark is not the tag the rule chose.
      if (
        object.metadata[meta.digest] !== item.digest ||
        object.lastModified.getTime() > this.state.startedAt
      )
        return;
      await this.storage.delete(item.key);
      this.state.done.push(item);
      return;
    }
    if (object.lastModified.getTime() > this.cutoff) {
      // Written again since the mark (a push): needed after all, and so is what a link names.
      if (item.kind === 'link' && item.digest) this.keep.add(item.digest);
      return;
    }
    await this.storage.put(GC_KEYS.quarantine(this.state.runId, item.key), object.body, {
      ...(object.contentType ? { contentType: object.contentType } : {}),
      metadata: { ...object.metadata },
    });
    await this.storage.delete(item.key);
    const entry: Quarantined = {
      kind: item.kind as Quarantined['kind'],
      key: item.key,
      size: item.size,
      ...(item.repo ? { repo: item.repo } : {}),
      ...(item.digest ? { digest: item.digest } : {}),
      ...(item.kind === 'blob' && object.metadata[meta.dataKey]
        ? { dataKey: object.metadata[meta.dataKey] }
        : {}),
    };
    this.state.quarantined.push(entry);
    this.state.quarantinedAt = this.now();
  }

  // --- settle: let every push that saw a set-aside object finish --------------------------------

  private async settle(): Promise<boolean> {
    if (this.state.quarantined.length === 0) return true;
    const wait = (this.state.quarantinedAt ?? 0) + this.options.settleMs - this.now();
    if (wait <= 0) return true;
    if (this.options.sleep) {
      this.progress('gc: waiting for pushes in flight to land', { seconds: Math.ceil(wait / 1000) });
      await this.options.sleep(wait);
      return true;
    }
    const left = this.options.remainingMs?.() ?? Infinity;
    if (left - SAVE_MARGIN_MS > wait) {
      await new Promise((resolve) => setTimeout(resolve, wait));
      return true;
    }
    return false;
  }

  // --- verify: look again, with everything written meanwhile -------------------------------------

  private async verify(): Promise<boolean> {
    const byRepo = new Map<string, Quarantined[]>();
    const blobs = new Map<string, Quarantined>();
    for (const q of this.state.quarantined) {
      if (q.kind === 'blob') blobs.set(q.digest!, q);
      else byRepo.set(q.repo!, [...(byRepo.get(q.repo!) ?? []), q]);
    }
    const restore = new Set(this.state.restore);
    for await (const repo of scanRepos(this.storage, this.state.cursor)) {
      const name = repo.name as RepositoryName;
      for (const digest of repo.links) {
        const blob = blobs.get(digest);
        if (!blob) continue;
        restore.add(blob.key);
        const linkKey = `repos/${name}/_layers/${pathOfDigest(digest)}`;
        this.state.links[digest] = [...new Set([...(this.state.links[digest] ?? []), linkKey])];
      }
      const items = byRepo.get(name);
      if (items) await this.verifyRepo(repo, items, blobs, restore);
      this.state.cursor = repo.lastKey;
      this.state.restore = [...restore];
      if (this.outOfTime()) return false;
    }
    this.state.restore = [...restore];
    return true;
  }

  private async verifyRepo(
    repo: RepoKeys,
    items: readonly Quarantined[],
    blobs: ReadonlyMap<string, Quarantined>,
    restore: Set<string>,
  ): Promise<void> {
    const name = repo.name as RepositoryName;
    const tagDigests = await mapLimit(
      repo.tags,
      CONCURRENCY,
      async (tag) => (await this.storage.head(`repos/${name}/_tags/${tag}`))?.metadata[meta.digest],
    );
    const graph = await this.readManifests(name, repo.manifests);
    const setAside = items.filter((q) => q.kind === 'manifest');
    const copies = await mapLimit(setAside, CONCURRENCY, async (q) => {
      const copy = await this.storage.get(GC_KEYS.quarantine(this.state.runId, q.key));
      return copy
        ? ([q.digest!, { refs: referencesOf(copy.body), at: 0, size: copy.size }] as const)
        : undefined;
    });
    for (const entry of copies) if (entry && !graph.has(entry[0])) graph.set(entry[0], entry[1]);
    const roots = [...tagDigests.filter((d): d is string => d !== undefined), ...repo.manifests];
    const live = closure(roots, graph);
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

  // --- finish: put back what is needed, delete the rest for good ---------------------------------

  private async finish(): Promise<boolean> {
    const restore = new Set(this.state.restore);
    const order: Quarantined['kind'][] = ['blob', 'manifest', 'referrer', 'link'];
    for (const kind of order) {
      for (const q of this.state.quarantined.filter((item) => item.kind === kind && restore.has(item.key))) {
        await this.putBack(q);
        if (this.outOfTime()) return false;
      }
    }
    for (const q of this.state.quarantined) {
      if (!restore.has(q.key)) {
        if (q.kind === 'blob' && q.dataKey) {
          const current = await this.storage.head(q.key);
          if (current?.metadata[meta.dataKey] !== q.dataKey) await this.storage.delete(q.dataKey);
        }
        this.state.done.push({ ...q, ...(q.kind === 'link' ? { size: 0 } : {}) });
      }
      await this.storage.delete(GC_KEYS.quarantine(this.state.runId, q.key));
      if (this.outOfTime()) return false;
    }
    this.state.restored = this.state.quarantined.filter((q) => restore.has(q.key)).length;
    return true;
  }

  private async putBack(q: Quarantined): Promise<void> {
    const copyKey = GC_KEYS.quarantine(this.state.runId, q.key);
    if (q.kind === 'link') {
      // Written from the blob as it is now: a blob uploaded again meanwhile may have new data.
      const blob = await this.registry.blobs.statGlobal(parseDigest(q.digest!));
      if (blob) await this.registry.blobs.link(q.repo as RepositoryName, blob);
      return;
    }
    const copy = await this.storage.get(copyKey);
    if (!copy) return;
    try {
      await this.storage.put(q.key, copy.body, {
        ifNoneMatch: '*',
        ...(copy.contentType ? { contentType: copy.contentType } : {}),
        metadata: { ...copy.metadata },
      });
    } catch (err) {
      if (!(err instanceof PreconditionFailed)) throw err;
      if (q.kind === 'blob') await this.repointLinks(q);
    }
  }

  /**
   * The blob was uploaded again while set aside, as a new data object: links that still name the old
   * one (written by uploads that saw the old blob) are pointed at the new one, and the old data goes.
   */
  private async repointLinks(q: Quarantined): Promise<void> {
    const blob = await this.registry.blobs.statGlobal(parseDigest(q.digest!));
    if (!blob || !q.dataKey || blob.dataKey === q.dataKey) return;
    for (const linkKey of this.state.links[q.digest!] ?? []) {
      const link = await this.storage.head(linkKey);
      if (link && link.metadata[meta.dataKey] === q.dataKey) {
        const repo = linkKey.slice('repos/'.length, linkKey.indexOf('/_layers/')) as RepositoryName;
        await this.registry.blobs.link(repo, blob);
      }
    }
    await this.storage.delete(q.dataKey);
  }
}

const NEXT: Record<GcState['phase'], GcState['phase']> = {
  mark: 'uploads',
  uploads: 'blobs',
  blobs: 'orphans',
  orphans: 'quarantine',
  quarantine: 'settle',
  settle: 'verify',
  verify: 'finish',
  finish: 'finish',
};

/** Manifests reachable from `roots` through index children, plus referrers of anything reached. */
function closure(roots: Iterable<string>, graph: ReadonlyMap<string, { refs: ManifestRefs }>): Set<string> {
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

function sum(deleted: readonly Deletion[]): number {
  return deleted.reduce(
    (total, d) => total + (d.kind === 'blob' || d.kind === 'manifest' || d.kind === 'data' ? d.size : 0),
    0,
  );
}

export function countByKind(deleted: readonly Deletion[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const d of deleted) counts[d.kind] = (counts[d.kind] ?? 0) + 1;
  return counts;
}
