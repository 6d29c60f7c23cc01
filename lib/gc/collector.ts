import type { RegistryStore } from '../registry/registry.ts';
import { storeTime } from '../registry/store-clock.ts';
import { catalog, mark } from './mark.ts';
import type { GcOptions } from './options.ts';
import { LOCK_LEASE_MS, Run } from './run.ts';
import { finish, quarantine, settle, verify } from './set-aside.ts';
import {
  acquireLock,
  GC_KEYS,
  GcPreempted,
  loadState,
  newState,
  releaseLock,
  type Deletion,
  type GcState,
  type LockInfo,
} from './state.ts';
import { blobs, orphans, uploads } from './sweep.ts';

export { closure, retentionDeletes } from './mark.ts';
export type { GcOptions } from './options.ts';

export interface GcResult {
  /** done: the run finished; paused: out of time or settling, progress saved; locked: another run holds the lock. */
  readonly status: 'done' | 'paused' | 'locked';
  /** When locked: the lock another run holds (who, until when). */
  readonly lock?: LockInfo;
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

/**
 * Online garbage collection (docs/gc.md): mark what manifests and tags still need, set aside what
 * nothing needs, wait until no push that saw it can still reference it, look again, put back what
 * turned out to be needed, and only then delete for good. Resumable: progress is saved under `gc/`.
 */
export async function collectGarbage(store: RegistryStore, options: GcOptions): Promise<GcResult> {
  const { storage } = store;
  const now = options.now ?? Date.now;
  if (options.dryRun) {
    const run = new Run(store, options, newState(await storeTime(storage)), undefined, undefined);
    await mark(run);
    run.state.cursor = undefined;
    await catalog(run);
    await uploads(run, true);
    run.state.cursor = undefined;
    await blobs(run);
    await orphans(run, true);
    const deleted = [...run.state.plan, ...run.state.done];
    return { status: 'done', runId: run.state.runId, deleted, bytesFreed: sum(deleted), restored: 0 };
  }
  const lock = await acquireLock(storage, LOCK_LEASE_MS, now());
  if ('busy' in lock) return { status: 'locked', lock: lock.busy, deleted: [], bytesFreed: 0, restored: 0 };
  try {
    const saved = await loadState(storage);
    const run = new Run(
      store,
      options,
      saved?.state ?? newState(await storeTime(storage)),
      saved?.etag,
      lock.held,
    );
    if (!saved) await run.save();
    const finished = await advance(run);
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
  } catch (err) {
    if (err instanceof GcPreempted) {
      options.onProgress?.(`gc: ${err.message}`);
      return { status: 'locked', deleted: [], bytesFreed: 0, restored: 0 };
    }
    throw err;
  } finally {
    await releaseLock(storage, lock.held.token).catch((err: unknown) =>
      options.onProgress?.('gc: releasing the lock failed; it expires by itself', { error: String(err) }),
    );
  }
}

/** Runs phases until the run is finished (true) or must pause (false). */
async function advance(run: Run): Promise<boolean> {
  for (;;) {
    if (run.outOfTime()) return false;
    const phase = run.state.phase;
    run.progress(`gc: ${phase}`);
    await run.options.onPhase?.(phase);
    let complete: boolean;
    switch (phase) {
      case 'mark':
        complete = await mark(run);
        break;
      case 'catalog':
        complete = await catalog(run);
        break;
      case 'uploads':
        complete = await uploads(run, false);
        break;
      case 'blobs':
        complete = await blobs(run);
        break;
      case 'orphans':
        complete = await orphans(run, false);
        break;
      case 'quarantine':
        complete = await quarantine(run);
        break;
      case 'settle':
        complete = await settle(run);
        break;
      case 'verify':
        complete = await verify(run);
        break;
      case 'finish':
        return finish(run);
    }
    if (!complete) return false;
    run.state.phase = NEXT[phase];
    run.state.cursor = undefined;
    await run.checkpoint(true);
  }
}

const NEXT: Record<GcState['phase'], GcState['phase']> = {
  mark: 'catalog',
  catalog: 'uploads',
  uploads: 'blobs',
  blobs: 'orphans',
  orphans: 'quarantine',
  quarantine: 'settle',
  settle: 'verify',
  verify: 'finish',
  finish: 'finish',
};

function sum(deleted: readonly Deletion[]): number {
  return deleted.reduce(
    (total, d) =>
      total +
      (d.kind === 'blob' || d.kind === 'manifest' || d.kind === 'data' || d.kind === 'temp' ? d.size : 0),
    0,
  );
}

export function countByKind(deleted: readonly Deletion[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const d of deleted) counts[d.kind] = (counts[d.kind] ?? 0) + 1;
  return counts;
}
