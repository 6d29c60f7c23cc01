import { mapLimit } from '../util/concurrency.ts';
import { keys, meta, parse } from '../registry/keys.ts';
import { listKeys } from '../registry/layout.ts';
import { storeTime } from '../registry/store-clock.ts';
import { ENDED_KEPT_MS, orphanCutoff } from '../registry/upload-session.ts';
import type { Deletion } from './state.ts';
import { CONCURRENCY, type Run } from './run.ts';

/** A store's temporary file lives for one write: one older than this was left by a crash. */
const TEMPORARY_MAX_AGE_MS = 3600_000;

/*
 * The sweeps: stale upload sessions, which blobs are garbage, and upload leftovers no session owns.
 * Sessions and leftovers are removed here and for good (nothing can come to need an upload's parts
 * once its session is gone); blobs are only planned, for the set-aside phases.
 */

/** Stale sessions are purged; the others are remembered (their leftovers are not orphans). */
export async function uploads(run: Run, dryRun: boolean): Promise<boolean> {
  const t = await storeTime(run.storage);
  run.state.sessionsAt = t;
  const stale: string[] = [];
  let oldMarkers = false;
  for await (const page of listKeys(run.storage, keys.uploadsPrefix)) {
    await mapLimit(page, CONCURRENCY, async (key) => {
      const upload = parse.uploadKey(key);
      if (upload?.kind !== 'session') return;
      const info = await run.storage.head(key);
      if (!info) return;
      const age = t - info.lastModified.getTime();
      // A session that is over (its `ended` marker) owns nothing; the sweep removes the marker in time.
      if (info.metadata[meta.ended]) {
        if (age >= Math.min(run.options.uploadTtlMs, ENDED_KEPT_MS)) oldMarkers = true;
        return;
      }
      if (age >= run.options.uploadTtlMs) stale.push(key);
      else run.sessions.add(upload.id);
    });
  }
  for (const key of stale) run.state.done.push({ kind: 'upload', key, size: 0 });
  if (!dryRun && (stale.length > 0 || oldMarkers)) {
    await run.registry.uploads.purgeStale(run.options.uploadTtlMs, t);
  }
  return true;
}

/** Which blobs nothing needs, and which data objects blob pointers name. */
export async function blobs(run: Run): Promise<boolean> {
  for await (const page of listKeys(run.storage, 'blobs/', run.state.cursor)) {
    await mapLimit(page, CONCURRENCY, async (key) => {
      const digest = parse.blobKey(key);
      if (!digest) return;
      const info = await run.storage.head(key);
      if (!info) return;
      const dataKey = info.metadata[meta.dataKey];
      if (dataKey) run.named.add(dataKey);
      if (run.keep.has(digest) || info.lastModified.getTime() > run.cutoff) return;
      const size = dataKey ? Number(info.metadata[meta.size] ?? 0) : info.size;
      run.state.plan.push({ kind: 'blob', key, digest, size, ...(dataKey ? { dataKey } : {}) } as Deletion);
    });
    run.state.cursor = page[page.length - 1];
    if (run.outOfTime()) return false;
    await run.checkpoint();
  }
  return true;
}

/**
 * Data objects, tails and multipart uploads made before the session snapshot less the upload TTL (and
 * at least ORPHAN_MIN_AGE_MS before it) whose session was gone by then. A data object a finished upload published is named by its blob pointer, written before
 * the session was deleted, so before the snapshot and before the blob listing that saw it. On the
 * filesystem store, temporary files older than the upload TTL go too (a crash mid-write).
 */
export async function orphans(run: Run, dryRun: boolean): Promise<boolean> {
  const before = orphanCutoff(
    run.state.sessionsAt ?? (await storeTime(run.storage)),
    run.options.uploadTtlMs,
    run.options.orphanMinAgeMs,
  );
  for (const prefix of ['data/', keys.uploadsPrefix]) {
    for await (const page of listKeys(run.storage, prefix)) {
      await mapLimit(page, CONCURRENCY, async (key) => {
        const upload = parse.uploadKey(key);
        if (!upload || upload.kind === 'session' || run.sessions.has(upload.id) || run.named.has(key)) return;
        const info = await run.storage.head(key);
        if (!info || info.lastModified.getTime() >= before) return;
        run.state.done.push({ kind: upload.kind, key, size: info.size });
        if (!dryRun) await run.storage.delete(key);
      });
    }
  }
  for await (const upload of run.storage.multipart.listOpen('data/')) {
    const parsed = parse.uploadKey(upload.key);
    if (!parsed || run.sessions.has(parsed.id) || upload.initiated.getTime() >= before) continue;
    run.state.done.push({ kind: 'multipart', key: upload.key, size: 0 });
    if (!dryRun) await run.storage.multipart.abort(upload.key, upload.uploadId);
  }
  if (!dryRun && run.storage.cleanTemporary) {
    const cleaned = await run.storage.cleanTemporary(Math.min(run.options.uploadTtlMs, TEMPORARY_MAX_AGE_MS));
    if (cleaned.removed > 0) {
      run.state.done.push({ kind: 'temp', key: `${cleaned.removed} temporary files`, size: cleaned.bytes });
    }
  }
  return true;
}
