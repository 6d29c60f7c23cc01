import type { Context, ScheduledEvent } from 'aws-lambda';
import { fsck } from '../fsck/fsck.ts';
import { FSCK_REPORT_KEY, type FsckReport } from '../fsck/report.ts';
import { collectGarbage, countByKind, type GcOptions } from '../gc/collector.ts';
import { GC_KEYS } from '../gc/state.ts';
import { parseStoredJson } from '../util/json.ts';
import { describeError, type Logger } from '../logging/logger.ts';
import type { RegistryStore } from '../registry/registry.ts';
import { keys } from '../registry/keys.ts';
import type { StorageDriver } from '../storage/port.ts';
import { invocationFields, withInvocation } from './logging.ts';
import { fsckMetricLines } from './metrics.ts';

export interface JanitorSummary {
  readonly purged: number;
  readonly uploadTtlSeconds: number;
  readonly durationMs: number;
  /** The garbage collection's state after this invocation, when it runs one. */
  readonly gc?: {
    readonly status: string;
    readonly runId?: string;
    readonly phase?: string;
    readonly deleted: Record<string, number>;
    readonly bytesFreed: number;
    readonly restored: number;
  };
  /** The check of the store after the collection (docs/fsck.md, "On AWS"), when the janitor runs one. */
  /** Set when this run invoked the janitor again to carry its collection on: the continuation's number. */
  readonly continuation?: number;
  readonly fsck?: {
    /** done; not due (the last check is recent); no time (too little left after the collection); collecting. */
    readonly status: 'done' | 'not due' | 'no time' | 'collecting';
    readonly counts?: FsckReport['counts'];
    readonly leftoverBytes?: number;
    readonly complete?: boolean;
  };
}

/** What the janitor's check of the store takes (functions/janitor.ts fills it from the configuration). */
export interface JanitorFsckOptions {
  /** A check runs when the last one finished at least this long ago (BERTH_GC_INTERVAL); 0: every time. */
  readonly intervalMs: number;
  readonly uploadTtlMs: number;
  readonly graceMs: number;
  /** The most object reads the check's first pass makes (default 5000: heads of tags, blobs, data). */
  readonly maxReads?: number;
  /** Pause before each finding is looked at again (default 2 s). */
  readonly recheckDelayMs?: number;
  /** Where the embedded-metric lines go (stdout, like the logs, by default). */
  readonly writeMetric?: (line: string) => void;
  /** The janitor's clock, for when the last check finished (ages of objects use the store's). */
  readonly now?: () => number;
}

/** Where the catalog markers are (`catalog/<name>`, rewritten by every manifest push). */
const CATALOG_PREFIX = keys.catalogPrefix;

/** The check starts only with at least this much of the invocation left. */
const FSCK_MIN_REMAINING_MS = 60_000;
/** The findings kept in gc/fsck.json (the metrics count them all). */
const FSCK_SAVED_FINDINGS = 200;

/** What the janitor's collection takes from the configuration (lib/setup/gc.ts gcOptionsOf). */
export type JanitorGcOptions = Omit<GcOptions, 'remainingMs' | 'sleep' | 'onPhase'> & {
  /** A new collection starts only when the last one finished at least this long ago (BERTH_GC_INTERVAL). */
  readonly intervalMs?: number;
  /**
   * Set (on AWS: 7 days), a due collection also needs a sign of work: a manifest pushed since the
   * last one started (less the grace period), which a listing of `catalog/` shows (one LIST per
   * 1,000 repositories: each push rewrites its repository's marker). Without one, the collection
   * waits until the last is this old, which is when deletions and age-based retention, which leave
   * no such sign, are caught up with. An idle registry thus pays for no listing of its store.
   */
  readonly idleIntervalMs?: number;
};

/**
 * The event a janitor sends itself to carry an unfinished collection on at once, instead of at the
 * next scheduled run (which is daily on AWS, so that an idle registry costs nothing).
 */
export interface JanitorContinuation {
  /** How many continuations in a row led here (the scheduled run that started them is 0). */
  readonly berthJanitorContinuation: number;
}

/** The most continuations in a row: a collection that needs more waits for the next scheduled run. */
export const MAX_CONTINUATIONS = 24;

export interface JanitorRunOptions {
  /**
   * Invokes this janitor again, asynchronously, with `event` (functions/janitor.ts: a Lambda Event
   * invoke of its own ARN). Without it, an unfinished collection waits for the next scheduled run.
   */
  readonly continueWith?: (event: JanitorContinuation, context: Context) => Promise<void>;
}

/** Usage is recomputed after a finished collection when at least this much time is left. */
const USAGE_MIN_REMAINING_MS = 3 * 60_000;

/**
 * Scheduled maintenance (an EventBridge rule): cancels upload sessions untouched for the upload TTL,
 * then carries garbage collection forward. A collection over a large bucket takes several
 * invocations: each stops before Lambda's limit (context.getRemainingTimeInMillis) with its progress
 * saved under `gc/`, and the next one continues from there (docs/gc.md).
 */
export function createJanitorHandler(
  /** The registry and its store (lib/setup): the janitor collects and checks the store's layout. */
  store: RegistryStore,
  uploadTtlSeconds: number,
  logger: Logger,
  gc?: JanitorGcOptions,
  check?: JanitorFsckOptions,
  run: JanitorRunOptions = {},
): (event: ScheduledEvent | JanitorContinuation, context: Context) => Promise<JanitorSummary> {
  return (event, context) =>
    withInvocation(invocationIds(event, context), async () => {
      const started = performance.now();
      try {
        const purged = await store.registry.uploads.purgeStale(uploadTtlSeconds * 1000);
        let collected: JanitorSummary['gc'];
        const due = gc ? await collectionDue(store, gc, (gc.now ?? Date.now)()) : 'due';
        if (due !== 'due') {
          collected = { status: due, deleted: {}, bytesFreed: 0, restored: 0 };
        } else if (gc) {
          const result = await collectGarbage(store, {
            ...gc,
            remainingMs: () => context.getRemainingTimeInMillis(),
            onProgress: (message, fields) => logger.debug(message, fields),
          });
          collected = {
            status: result.status,
            ...(result.runId ? { runId: result.runId } : {}),
            ...(result.phase ? { phase: result.phase } : {}),
            deleted: countByKind(result.deleted),
            bytesFreed: result.bytesFreed,
            restored: result.restored,
          };
          if (result.status === 'done' && context.getRemainingTimeInMillis() > USAGE_MIN_REMAINING_MS) {
            await store.registry.usage.save(await store.registry.usage.compute());
          }
        }
        let checked: JanitorSummary['fsck'];
        if (check) {
          // Not while a collection is under way: what it set aside would only be skipped over.
          const collecting = collected && !['done', 'not due', 'idle'].includes(collected.status);
          checked = collecting ? { status: 'collecting' } : await checkStore(store, check, context, logger);
        }
        let continued: number | undefined;
        if (collected?.status === 'paused' && run.continueWith) {
          const count = continuationOf(event) + 1;
          if (count <= MAX_CONTINUATIONS) {
            await run.continueWith({ berthJanitorContinuation: count }, context);
            continued = count;
          } else {
            logger.warn(
              'collection still unfinished after the most continuations; the next scheduled run goes on',
              {
                continuations: count - 1,
              },
            );
          }
        }
        const summary = {
          purged,
          uploadTtlSeconds,
          durationMs: Math.round(performance.now() - started),
          ...(collected ? { gc: collected } : {}),
          ...(checked ? { fsck: checked } : {}),
          ...(continued !== undefined && { continuation: continued }),
        };
        logger.info('janitor finished', { ...summary });
        return summary;
      } catch (err) {
        // Rethrown so the invocation counts as failed (Errors metric, the rule's retry policy).
        logger.error('janitor failed', describeError(err));
        throw err;
      }
    });
}

function continuationOf(event: ScheduledEvent | JanitorContinuation): number {
  const n = (event as Partial<JanitorContinuation>).berthJanitorContinuation;
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : 0;
}

function invocationIds(
  event: ScheduledEvent | JanitorContinuation,
  context: Context,
): Record<string, unknown> {
  const continuation = continuationOf(event);
  return continuation > 0
    ? { awsRequestId: context.awsRequestId, continuation }
    : { awsRequestId: context.awsRequestId, scheduleEventId: (event as ScheduledEvent).id };
}

/**
 * Whether the janitor should work on a collection now: `due` when one is in progress (its state is
 * saved), or none ever ran, or the last one finished `intervalMs` ago or more and (with
 * `idleIntervalMs`) something was pushed since it started or it is that old; `not due` before the
 * interval; `idle` when nothing was pushed. Costs one or two reads, and with `idleIntervalMs` one
 * LIST per 1,000 repositories.
 */
async function collectionDue(
  { storage }: RegistryStore,
  gc: JanitorGcOptions,
  now: number,
): Promise<'due' | 'not due' | 'idle'> {
  const intervalMs = gc.intervalMs ?? 0;
  if (intervalMs <= 0 || (await storage.head(GC_KEYS.state))) return 'due';
  const last = await storage.get(GC_KEYS.lastRun);
  const run = last ? (parseStoredJson(last.body) as { finishedAt?: unknown; startedAt?: unknown }) : {};
  const finishedAt = Date.parse(String(run?.finishedAt));
  if (Number.isNaN(finishedAt)) return 'due';
  if (now - finishedAt < intervalMs) return 'not due';
  if (gc.idleIntervalMs === undefined || now - finishedAt >= gc.idleIntervalMs) return 'due';
  const startedAt = Date.parse(String(run?.startedAt));
  if (Number.isNaN(startedAt)) return 'due';
  return (await pushedSince(storage, startedAt - gc.graceMs)) ? 'due' : 'idle';
}

/**
 * Whether a manifest was pushed after `since`: every manifest push rewrites its repository's
 * catalog marker, so the markers' modification times say when each repository last got one. A store
 * that cannot list with times answers yes.
 */
async function pushedSince(storage: StorageDriver, since: number): Promise<boolean> {
  if (!storage.listObjects) return true;
  let startAfter: string | undefined;
  for (;;) {
    const page = await storage.listObjects(CATALOG_PREFIX, {
      limit: 1000,
      ...(startAfter && { startAfter }),
    });
    if (page.objects.some((o) => o.lastModified.getTime() > since)) return true;
    if (!page.truncated || page.objects.length === 0) return false;
    startAfter = page.objects[page.objects.length - 1]!.key;
  }
}

/**
 * The cheap checks (docs/fsck.md, "On AWS"): listings, and heads of tags, blobs and their data within
 * a read budget and the invocation's remaining time. Findings go out as embedded metrics, the broken
 * and inconsistent ones also as a warning naming them, and the report is kept in gc/fsck.json.
 */
async function checkStore(
  store: RegistryStore,
  options: JanitorFsckOptions,
  context: Context,
  logger: Logger,
): Promise<NonNullable<JanitorSummary['fsck']>> {
  const now = options.now ?? Date.now;
  if (context.getRemainingTimeInMillis() < FSCK_MIN_REMAINING_MS) return { status: 'no time' };
  if (!(await fsckDue(store.storage, options.intervalMs, now()))) return { status: 'not due' };
  const report = await fsck(store, {
    mode: 'cheap',
    uploadTtlMs: options.uploadTtlMs,
    graceMs: options.graceMs,
    ...(options.maxReads !== undefined && { maxReads: options.maxReads }),
    ...(options.recheckDelayMs !== undefined && { recheckDelayMs: options.recheckDelayMs }),
    remainingMs: () => context.getRemainingTimeInMillis(),
  });
  const write = options.writeMetric ?? ((line: string) => process.stdout.write(line + '\n'));
  for (const line of fsckMetricLines(report, invocationFields())) write(line);
  const problems = report.findings.filter((f) => f.severity !== 'leftover');
  if (problems.length > 0) {
    logger.warn('fsck found broken or inconsistent objects', {
      counts: report.counts,
      findings: problems.slice(0, 20).map((f) => ({
        kind: f.kind,
        key: f.key,
        message: f.message,
        ...(f.affects && { affects: f.affects }),
      })),
    });
  }
  const saved = {
    ...report,
    findings: report.findings.slice(0, FSCK_SAVED_FINDINGS),
    finishedAt: new Date(now()).toISOString(),
  };
  await store.storage.put(FSCK_REPORT_KEY, new TextEncoder().encode(JSON.stringify(saved)), {
    contentType: 'application/json',
  });
  return {
    status: 'done',
    counts: report.counts,
    leftoverBytes: report.leftoverBytes,
    complete: report.complete,
  };
}

/** Whether the last check (gc/fsck.json) finished `intervalMs` ago or more, or none ever ran. One read. */
async function fsckDue(storage: StorageDriver, intervalMs: number, now: number): Promise<boolean> {
  if (intervalMs <= 0) return true;
  const last = await storage.get(FSCK_REPORT_KEY);
  const finishedAt = last
    ? Date.parse(String((parseStoredJson(last.body) as { finishedAt?: unknown })?.finishedAt))
    : NaN;
  return Number.isNaN(finishedAt) || now - finishedAt >= intervalMs;
}
