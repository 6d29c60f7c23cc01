import type { Context, ScheduledEvent } from 'aws-lambda';
import { describeError, type Logger } from '../logging/logger.ts';
import type { Registry } from '../registry/registry.ts';
import { withInvocation } from './logging.ts';

export interface JanitorSummary {
  readonly purged: number;
  readonly uploadTtlSeconds: number;
  readonly durationMs: number;
}

/**
 * Scheduled maintenance (an EventBridge rule): cancels upload sessions untouched for the upload
 * TTL, with their multipart uploads and tails. What the local server's 15-minute sweep does, as a
 * function, because a Lambda container has no life between requests to run a timer in.
 */
export function createJanitorHandler(
  registry: Registry,
  uploadTtlSeconds: number,
  logger: Logger,
): (event: ScheduledEvent, context: Context) => Promise<JanitorSummary> {
  return (event, context) =>
    withInvocation({ awsRequestId: context.awsRequestId, scheduleEventId: event.id }, async () => {
      const started = performance.now();
      try {
        const purged = await registry.uploads.purgeStale(uploadTtlSeconds * 1000);
        const summary = { purged, uploadTtlSeconds, durationMs: Math.round(performance.now() - started) };
        logger.info('janitor finished', { ...summary });
        return summary;
      } catch (err) {
        // Rethrown so the invocation counts as failed (Errors metric, the rule's retry policy).
        logger.error('janitor failed', describeError(err));
        throw err;
      }
    });
}
