import type { Context, ScheduledEvent } from 'aws-lambda';
import { fsck } from '../fsck/fsck.ts';
import { FSCK_REPORT_KEY, type FsckReport } from '../fsck/report.ts';
import { collectGarbage, countByKind, type GcOptions } from '../gc/collector.ts';
import { GC_KEYS } from '../gc/state.ts';
import { computeUsage, saveUsage } from '../gc/usage.ts';
import { parseStoredJson } from '../util/json.ts';
import { describeError, type Logger } from '../logging/logger.ts';
import type { Registry } from '../registry/registry.ts';
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

/** The check starts only with at least this much of the invocation left. */
const FSCK_MIN_REMAINING_MS = 60_000;
/** The findings kept in gc/fsck.json (the metrics count them all). */
const FSCK_SAVED_FINDINGS = 200;

/** What the janitor's collection takes from the configuration (lib/setup/gc.ts gcOptionsOf). */
export type JanitorGcOptions = Omit<GcOptions, 'remainingMs' | 'sleep' | 'onPhase'> & {
  /** A new collection starts only when the last one finished at least this long ago (BERTH_GC_INTERVAL). */
  readonly intervalMs?: number;
};

/** Usage is recomputed after a finished collection when at least this much time is left. */
const USAGE_MIN_REMAINING_MS = 3 * 60_000;

/**
 * Scheduled maintenance (an EventBridge rule): cancels upload sessions untouched for the upload TTL,
 * then carries garbage collection forward. A collection over a large bucket takes several
 * invocations: each stops before Lambda's limit (context.getRemainingTimeInMillis) with its progress
 * saved under `gc/`, and the next one continues from there (docs/gc.md).
 */
export function createJanitorHandler(
  registry: Registry,
  uploadTtlSeconds: number,
  logger: Logger,
  gc?: JanitorGcOptions,
  check?: JanitorFsckOptions,
): (event: ScheduledEvent, context: Context) => Promise<JanitorSummary> {
  return (event, context) =>
    withInvocation({ awsRequestId: context.awsRequestId, scheduleEventId: event.id }, async () => {
      const started = performance.now();
      try {
        const purged = await registry.uploads.purgeStale(uploadTtlSeconds * 1000);
        let collected: JanitorSummary['gc'];
        if (gc && !(await collectionDue(registry, gc.intervalMs ?? 0, (gc.now ?? Date.now)()))) {
          collected = { status: 'not due', deleted: {}, bytesFreed: 0, restored: 0 };
        } else if (gc) {
          const result = await collectGarbage(registry, {
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
            await saveUsage(registry.storage, await computeUsage(registry.storage));
          }
        }
        let checked: JanitorSummary['fsck'];
        if (check) {
          // Not while a collection is under way: what it set aside would only be skipped over.
          const collecting = collected && collected.status !== 'done' && collected.status !== 'not due';
          checked = collecting
            ? { status: 'collecting' }
            : await checkStore(registry, check, context, logger);
        }
        const summary = {
          purged,
          uploadTtlSeconds,
          durationMs: Math.round(performance.now() - started),
          ...(collected ? { gc: collected } : {}),
          ...(checked ? { fsck: checked } : {}),
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

/**
 * Whether the janitor should work on a collection now: one is in progress (its state is saved), or
 * the last one finished `intervalMs` ago or more, or none ever ran. Costs one or two reads.
 */
async function collectionDue(registry: Registry, intervalMs: number, now: number): Promise<boolean> {
  if (intervalMs <= 0 || (await registry.storage.head(GC_KEYS.state))) return true;
  const last = await registry.storage.get(GC_KEYS.lastRun);
  const finishedAt = last
    ? Date.parse(String((parseStoredJson(last.body) as { finishedAt?: unknown })?.finishedAt))
    : NaN;
  return Number.isNaN(finishedAt) || now - finishedAt >= intervalMs;
}

/**
 * The cheap checks (docs/fsck.md, "On AWS"): listings, and heads of tags, blobs and their data within
 * a read budget and the invocation's remaining time. Findings go out as embedded metrics, the broken
 * and inconsistent ones also as a warning naming them, and the report is kept in gc/fsck.json.
 */
async function checkStore(
  registry: Registry,
  options: JanitorFsckOptions,
  context: Context,
  logger: Logger,
): Promise<NonNullable<JanitorSummary['fsck']>> {
  const now = options.now ?? Date.now;
  if (context.getRemainingTimeInMillis() < FSCK_MIN_REMAINING_MS) return { status: 'no time' };
  if (!(await fsckDue(registry, options.intervalMs, now()))) return { status: 'not due' };
  const report = await fsck(registry, {
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
  await registry.storage.put(FSCK_REPORT_KEY, new TextEncoder().encode(JSON.stringify(saved)), {
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
async function fsckDue(registry: Registry, intervalMs: number, now: number): Promise<boolean> {
  if (intervalMs <= 0) return true;
  const last = await registry.storage.get(FSCK_REPORT_KEY);
  const finishedAt = last
    ? Date.parse(String((parseStoredJson(last.body) as { finishedAt?: unknown })?.finishedAt))
    : NaN;
  return Number.isNaN(finishedAt) || now - finishedAt >= intervalMs;
}
