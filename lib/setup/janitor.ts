import type { LambdaClient } from '@aws-sdk/client-lambda';
import { awsRegionOf, type Config } from '../config/config.ts';
import { createJanitorHandler } from '../lambda/janitor.ts';
import type { Logger } from '../logging/logger.ts';
import { gcOptionsOf } from './gc.ts';
import { createLambdaStore } from './lambda.ts';

/**
 * The longest a collection waits without a sign of work (deletions and age-based retention leave
 * none the janitor can see cheaply), and how often the store's cheap checks run: once a week, so
 * that an idle registry's daily run costs a few requests instead of a listing of the whole store.
 */
const WEEK_MS = 7 * 24 * 3600_000;

/**
 * The janitor function's handler: purges stale upload sessions, carries garbage collection forward
 * (invoking itself again at once while a collection is unfinished), and once a collection interval
 * runs the cheap checks of the store (docs/fsck.md, "On AWS").
 */
export async function createJanitor(config: Config, logger: Logger) {
  let lambda: LambdaClient | undefined;
  return createJanitorHandler(
    await createLambdaStore(config),
    config.uploadTtlSeconds,
    logger,
    {
      ...gcOptionsOf(config),
      intervalMs: config.gcIntervalSeconds * 1000,
      idleIntervalMs: Math.max(WEEK_MS, config.gcIntervalSeconds * 1000),
    },
    {
      intervalMs: Math.max(WEEK_MS, config.gcIntervalSeconds * 1000),
      uploadTtlMs: config.uploadTtlSeconds * 1000,
      graceMs: config.gcGraceSeconds * 1000,
    },
    {
      // An asynchronous invoke of this very function (its role may invoke itself and nothing else).
      continueWith: async (event, context) => {
        const { InvokeCommand, LambdaClient } = await import('../aws/lambda.ts');
        lambda ??= new LambdaClient({ region: awsRegionOf(config) });
        await lambda.send(
          new InvokeCommand({
            FunctionName: context.invokedFunctionArn,
            InvocationType: 'Event',
            Payload: new TextEncoder().encode(JSON.stringify(event)),
          }),
        );
      },
    },
  );
}
