import { GC_KEYS, parseQuarantineKey } from '../gc/state.ts';
import { tryParseDigest } from '../oci/digest.ts';
import { mapLimit } from '../util/concurrency.ts';
import { keys, meta, parse } from '../registry/keys.ts';
import { listKeys } from '../registry/layout.ts';
import { storeTime } from '../registry/store-clock.ts';
import { ENDED_KEPT_MS, orphanCutoff, type SessionState } from '../registry/upload-session.ts';
import type { OpenUpload } from '../storage/port.ts';
import { unknownKey } from './blobs.ts';
import { CONCURRENCY, TEMPORARY_MAX_AGE_MS, type FsckContext } from './context.ts';
import { finding, type Finding } from './findings.ts';
import { FSCK_REPORT_KEY } from './report.ts';
import type { RepoView } from './repository.ts';

/*
 * Leftovers: what no upload session, blob, manifest or collection accounts for any more. Judged as
 * garbage collection judges them (docs/gc.md, "What is garbage"), with the upload TTL: sessions
 * untouched that long; data objects and tails older than the session snapshot less the TTL that no
 * session owns and no blob pointer names; multipart uploads no session owns; `_verifying` markers
 * whose session is gone; copies set aside by a collection that is not the one in progress; and the
 * filesystem store's temporary files older than an hour. `--repair` removes them through the
 * registry's own paths where it has them (purgeStale, multipart abort, cleanTemporary).
 */

/** The files under gc/ that are no leftover. */
export const GC_FILES = new Set<string>([
  GC_KEYS.state,
  GC_KEYS.lock,
  GC_KEYS.lastRun,
  GC_KEYS.usage,
  keys.clock,
  keys.uploadStateKey,
  FSCK_REPORT_KEY,
]);

/**
 * Upload sessions at this moment (before the blob listing, as garbage collection does: a data object
 * a finished upload published is named by a pointer written before its session was deleted).
 */
export async function snapshotSessions(ctx: FsckContext): Promise<void> {
  ctx.sessionsAt = ctx.now;
  const sessionKeys: { key: string; id: string }[] = [];
  for await (const page of listKeys(ctx.storage, keys.uploadsPrefix)) {
    for (const key of page) {
      const upload = parse.uploadKey(key);
      if (!upload) await unknownKey(ctx, key);
      else if (upload.kind !== 'session') ctx.uploadTails.push(key);
      else {
        ctx.sessions.add(upload.id);
        sessionKeys.push({ key, id: upload.id });
      }
    }
  }
  ctx.checked.sessions = sessionKeys.length;
  await mapLimit(sessionKeys, CONCURRENCY, async ({ key, id }) => {
    if (!ctx.spend(1, 'upload sessions')) return;
    const found = await examineSession(ctx, key, id);
    if (!found) return;
    ctx.add({
      finding: found,
      recheck: () => examineSession(ctx, key, id),
      repair: async () => {
        await purgeStale(ctx);
        const left = await ctx.storage.head(key);
        // Removed, or replaced by its `ended` marker (kept while the POST's URL could be used).
        if (left && !left.metadata[meta.ended]) {
          throw new Error('the session is still there: a request holds it');
        }
      },
    });
  });
}

async function examineSession(ctx: FsckContext, key: string, id: string): Promise<Finding | undefined> {
  const info = await ctx.storage.head(key);
  if (info?.metadata[meta.ended]) {
    // The `ended` marker of a session that is over: it owns nothing, and the registry's sweep removes
    // it after ENDED_KEPT_MS; only one left long after that is reported.
    ctx.sessions.delete(id);
    if (ctx.now - info.lastModified.getTime() < Math.max(ctx.options.uploadTtlMs, ENDED_KEPT_MS))
      return undefined;
  }
  if (!info || ctx.now - info.lastModified.getTime() < ctx.options.uploadTtlMs) return undefined;
  const loaded = await ctx.registry.sessions.read(id);
  if (loaded && ctx.registry.sessions.leased(loaded.state)) return undefined;
  const state = loaded?.state;
  return finding('stale-session', {
    key,
    ...(state && { repository: state.repo }),
    message: state
      ? `upload session ${id} into ${state.repo} (${state.status}) was last written ${age(ctx, info.lastModified)} ago: its client went away`
      : `upload session object ${key} cannot be read`,
    bytes: state ? bytesOf(state) : info.size,
    ageSeconds: ctx.ageSeconds(info.lastModified),
  });
}

function bytesOf(state: SessionState): number {
  if (state.status === 'verifying') return state.size;
  return state.offset;
}

/** The registry's own sweep of stale sessions, once per fsck run. */
function purgeStale(ctx: FsckContext): Promise<number> {
  ctx.purged ??= storeTime(ctx.storage).then((now) =>
    ctx.registry.uploads.purgeStale(ctx.options.uploadTtlMs, now),
  );
  return ctx.purged;
}

/** `_verifying` markers of a repository whose session is gone (a crash between the two deletions). */
export async function checkVerifyingMarkers(ctx: FsckContext, view: RepoView): Promise<void> {
  await mapLimit(view.keys.verifying, CONCURRENCY, async (digest) => {
    const d = tryParseDigest(digest);
    if (!d || !ctx.spend(2, 'verification markers')) return;
    const key = keys.verifying(view.name, d);
    const found = await examineMarker(ctx, key, view.name, digest);
    if (!found) return;
    ctx.add({
      finding: found,
      recheck: () => examineMarker(ctx, key, view.name, digest),
      repair: async () => {
        if (await examineMarker(ctx, key, view.name, digest)) await ctx.storage.delete(key);
      },
    });
  });
}

async function examineMarker(
  ctx: FsckContext,
  key: string,
  repo: string,
  digest: string,
): Promise<Finding | undefined> {
  const marker = await ctx.storage.get(key);
  if (!marker || ctx.now - marker.lastModified.getTime() < ctx.options.uploadTtlMs) return undefined;
  const id = new TextDecoder().decode(marker.body).trim();
  if (/^[0-9a-f-]{36}$/.test(id) && (await ctx.storage.head(keys.session(id)))) return undefined;
  return finding('orphan-verifying', {
    key,
    repository: repo,
    digest,
    message: `marker ${key} says a direct upload of ${digest} into ${repo} is being verified, but its session ${id.slice(0, 36) || '(none)'} is gone: pushes naming the blob are told to wait for it`,
    bytes: marker.size,
    ageSeconds: ctx.ageSeconds(marker.lastModified),
  });
}

/**
 * Under gc/: copies set aside by a collection that is not the one in progress (its state is gone,
 * so nothing will put them back or delete them). Also notes the data their blob copies name, which
 * is then no orphan: deleting a copy deletes that data, as the collection's finish would.
 */
export async function checkGcKeys(ctx: FsckContext): Promise<void> {
  const runs = new Map<string, string[]>();
  for await (const page of listKeys(ctx.storage, 'gc/')) {
    for (const key of page) {
      if (GC_FILES.has(key)) continue;
      const q = parseQuarantineKey(key);
      if (!q) await unknownKey(ctx, key);
      else if (q.runId !== ctx.collection?.runId) runs.set(q.runId, [...(runs.get(q.runId) ?? []), key]);
    }
  }
  for (const [runId, copies] of runs) {
    if (!ctx.spend(copies.length, 'set-aside copies')) return;
    const found = await examineRun(ctx, runId, copies);
    if (!found) continue;
    ctx.add({
      finding: found,
      recheck: async () => {
        await ctx.readCollection();
        if (ctx.collection?.runId === runId) return undefined;
        const now: string[] = [];
        for await (const page of listKeys(ctx.storage, GC_KEYS.quarantinePrefix(runId))) now.push(...page);
        return now.length > 0 ? examineRun(ctx, runId, now) : undefined;
      },
      repair: () => removeRun(ctx, runId),
    });
  }
}

async function examineRun(
  ctx: FsckContext,
  runId: string,
  copies: readonly string[],
): Promise<Finding | undefined> {
  let bytes = 0;
  let newest = 0;
  let count = 0;
  await mapLimit(copies, CONCURRENCY, async (key) => {
    const info = await ctx.storage.head(key);
    if (!info) return;
    count++;
    bytes += info.size;
    newest = Math.max(newest, info.lastModified.getTime());
    const dataKey = info.metadata[meta.dataKey];
    if (dataKey) ctx.named.add(dataKey);
  });
  if (count === 0) return undefined;
  const current = ctx.collection ? `is run ${ctx.collection.runId}` : 'is none';
  return finding('orphan-quarantine', {
    key: GC_KEYS.quarantinePrefix(runId),
    message: `${count} objects set aside by garbage collection run ${runId}, which is not in progress (the run in progress ${current}): nothing will put them back or delete them`,
    bytes,
    ageSeconds: ctx.ageSeconds(new Date(newest)),
  });
}

/**
 * Deletes a dead run's copies, keeping those of objects a broken finding misses (whoever mends it may
 * want them). A blob copy's data goes with it unless the blob as it is now names it.
 */
async function removeRun(ctx: FsckContext, runId: string): Promise<void> {
  const kept: string[] = [];
  for await (const page of listKeys(ctx.storage, GC_KEYS.quarantinePrefix(runId))) {
    await mapLimit(page, CONCURRENCY, async (key) => {
      const original = parseQuarantineKey(key)?.original;
      if (!original) return;
      if (ctx.needed.has(original)) {
        kept.push(key);
        return;
      }
      const copy = await ctx.storage.head(key);
      const dataKey = copy?.metadata[meta.dataKey];
      if (dataKey) {
        const current = await ctx.storage.head(original);
        const owner = parse.uploadKey(dataKey);
        const owned = owner && (await ctx.storage.head(keys.session(owner.id)));
        if (current?.metadata[meta.dataKey] !== dataKey && !owned) await ctx.storage.delete(dataKey);
      }
      await ctx.storage.delete(key);
    });
  }
  if (kept.length > 0) {
    throw new Error(
      `kept ${kept.length} copies of objects that broken findings miss: ${kept.slice(0, 5).join(', ')}`,
    );
  }
}

/**
 * Data objects and tails under `data/` (and `uploads/<id>.tail-<n>` of older versions) that no
 * session owns and no blob names, made before the session snapshot less the upload TTL (and at least
 * ORPHAN_MIN_AGE_MS before it); and
 * multipart uploads under `data/` that no session owns, started before then.
 */
export async function checkOrphans(ctx: FsckContext): Promise<void> {
  const before = orphanCutoff(ctx.sessionsAt, ctx.options.uploadTtlMs, ctx.options.orphanMinAgeMs);
  // Which data blob pointers name takes a read of every blob: the full check's, not the cheap one's.
  if (!ctx.cheap && !ctx.blobsListed) ctx.skipped.add('unnamed data objects');
  else if (!ctx.cheap) {
    const judge = async (key: string) => {
      const upload = parse.uploadKey(key);
      if (!upload) {
        await unknownKey(ctx, key);
        return;
      }
      if (upload.kind === 'session' || ctx.sessions.has(upload.id) || ctx.named.has(key)) return;
      const found = await examineOrphan(ctx, key, upload.id, upload.kind, before);
      if (!found) return;
      ctx.add({
        finding: found,
        recheck: () => examineOrphan(ctx, key, upload.id, upload.kind, before),
        repair: async () => {
          if (await examineOrphan(ctx, key, upload.id, upload.kind, before)) await ctx.storage.delete(key);
        },
      });
    };
    for await (const page of listKeys(ctx.storage, 'data/')) await mapLimit(page, CONCURRENCY, judge);
    await mapLimit(ctx.uploadTails, CONCURRENCY, judge);
  }
  for await (const upload of ctx.storage.multipart.listOpen('data/')) {
    const owner = parse.uploadKey(upload.key);
    if (owner && ctx.sessions.has(owner.id)) continue;
    if (upload.initiated.getTime() >= before) continue;
    const found = await examineMultipart(ctx, upload, owner?.id);
    if (!found) continue;
    ctx.add({
      finding: found,
      recheck: () => examineMultipart(ctx, upload, owner?.id),
      repair: () => ctx.storage.multipart.abort(upload.key, upload.uploadId),
    });
  }
}

async function examineOrphan(
  ctx: FsckContext,
  key: string,
  id: string,
  kind: 'data' | 'tail' | 'session',
  before: number,
): Promise<Finding | undefined> {
  // A session that is over (its `ended` marker) owns nothing.
  const session = await ctx.storage.head(keys.session(id));
  if (session && !session.metadata[meta.ended]) return undefined;
  const info = await ctx.storage.head(key);
  if (!info || info.lastModified.getTime() >= before) return undefined;
  return finding(kind === 'data' ? 'orphan-data' : 'orphan-tail', {
    key,
    message: `${kind === 'data' ? 'data object' : 'upload tail'} ${key} belongs to no upload session and no blob names it (last written ${age(ctx, info.lastModified)} ago)`,
    bytes: info.size,
    ageSeconds: ctx.ageSeconds(info.lastModified),
  });
}

async function examineMultipart(
  ctx: FsckContext,
  upload: OpenUpload,
  id: string | undefined,
): Promise<Finding | undefined> {
  const session = id ? await ctx.storage.head(keys.session(id)) : undefined;
  if (session && !session.metadata[meta.ended]) return undefined;
  let bytes = 0;
  if (ctx.storage.direct) {
    try {
      bytes = (await ctx.storage.direct.listParts(upload.key, upload.uploadId)).reduce(
        (n, p) => n + p.size,
        0,
      );
    } catch {
      return undefined; // completed or aborted meanwhile
    }
  }
  return finding('orphan-multipart', {
    key: upload.key,
    message: `multipart upload ${upload.uploadId.slice(0, 40)} of ${upload.key}, started ${age(ctx, upload.initiated)} ago, belongs to no upload session`,
    bytes,
    ageSeconds: ctx.ageSeconds(upload.initiated),
  });
}

/** The store's temporary files older than an hour (or the upload TTL, if shorter), as the collection judges them. */
export async function checkTemporary(ctx: FsckContext): Promise<void> {
  if (!ctx.storage.listTemporary) return;
  const maxAge = Math.min(ctx.options.uploadTtlMs, TEMPORARY_MAX_AGE_MS);
  const old = async () =>
    (await ctx.storage.listTemporary!()).filter((t) => ctx.now - t.lastModified.getTime() >= maxAge);
  for (const file of await old()) {
    const make = (bytes: number, at: Date) =>
      finding('temporary-file', {
        key: file.name,
        message: `${file.name} was last written ${age(ctx, at)} ago: a write that crashed left it`,
        bytes,
        ageSeconds: ctx.ageSeconds(at),
      });
    ctx.add({
      finding: make(file.bytes, file.lastModified),
      recheck: async () => {
        const now = (await old()).find((t) => t.name === file.name);
        return now && make(now.bytes, now.lastModified);
      },
      repair: async () => {
        ctx.cleaned ??= ctx.storage.cleanTemporary?.(maxAge) ?? Promise.resolve({ removed: 0, bytes: 0 });
        await ctx.cleaned;
        if ((await old()).some((t) => t.name === file.name)) throw new Error(`${file.name} is still there`);
      },
    });
  }
}

/** An age for people: `3 d`, `5 h`, `12 min`, `40 s`. */
export function age(ctx: FsckContext, date: Date): string {
  const s = ctx.ageSeconds(date);
  if (s >= 2 * 86_400) return `${Math.floor(s / 86_400)} d`;
  if (s >= 2 * 3600) return `${Math.floor(s / 3600)} h`;
  if (s >= 120) return `${Math.floor(s / 60)} min`;
  return `${s} s`;
}
