import type { Context, ScheduledEvent } from 'aws-lambda';
import { collectGarbage, countByKind, type GcOptions } from '../gc/collector.ts';
import { GC_KEYS } from '../gc/state.ts';
import { computeUsage, saveUsage } from '../gc/usage.ts';
import { parseStoredJson } from '../registry/json.ts';
import { describeError, type Logger } from '../logging/logger.ts';
import type { Registry } from '../registry/registry.ts';
import { withInvocation } from './logging.ts';

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
}

/** What the janitor's collection takes from the configuration (lib/gc/config.ts gcOptionsOf). */
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
        const summary = {
          purged,
          uploadTtlSeconds,
          durationMs: Math.round(performance.now() - started),
          ...(collected ? { gc: collected } : {}),
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
