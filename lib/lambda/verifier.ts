import type { Context } from 'aws-lambda';
import * as z from 'zod';
import { describeError, type Logger } from '../logging/logger.ts';
import type { Registry } from '../registry/registry.ts';
import { withInvocation } from './logging.ts';

const jobSchema = z.object({ repo: z.string().min(1), id: z.string().min(1), token: z.string().min(1) });

export interface VerifierResult {
  readonly outcome: 'verified' | 'failed' | 'skipped';
  readonly durationMs: number;
}

/**
 * The verifier function: reads a direct upload back, checks its digest, and publishes the blob or
 * deletes the data. It runs with a long timeout (a 50 GiB blob takes minutes), which the registry
 * function behind API Gateway cannot have. A failure is rethrown so that Lambda retries the event;
 * a retry of a finished job finds nothing to do.
 */
export function createVerifierHandler(
  registry: Registry,
  logger: Logger,
): (event: unknown, context: Context) => Promise<VerifierResult> {
  return (event, context) =>
    withInvocation({ awsRequestId: context.awsRequestId }, async () => {
      const parsed = jobSchema.safeParse(event);
      if (!parsed.success) {
        logger.error('verifier got an event that is not a verification job');
        return { outcome: 'skipped', durationMs: 0 } satisfies VerifierResult;
      }
      const started = performance.now();
      try {
        const outcome = await registry.direct.verify(parsed.data);
        const result: VerifierResult = { outcome, durationMs: Math.round(performance.now() - started) };
        logger.info('verification finished', { repo: parsed.data.repo, id: parsed.data.id, ...result });
        return result;
      } catch (err) {
        logger.error('verification failed', {
          repo: parsed.data.repo,
          id: parsed.data.id,
          ...describeError(err),
        });
        throw err;
      }
    });
}
