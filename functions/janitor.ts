/**
 * Scheduled maintenance (daily on AWS): purges stale upload sessions, carries garbage collection
 * forward (invoking itself again at once while a collection is unfinished), and once a collection
 * interval runs the cheap checks of the store (docs/fsck.md, "On AWS").
 */
import { lambdaConfig } from '../lib/config/lambda.ts';
import { createLambdaLogger } from '../lib/lambda/logging.ts';
import { createJanitor } from '../lib/setup/janitor.ts';

// Built once per container, at init.
const config = lambdaConfig(process.env);
const logger = createLambdaLogger(config.logLevel);

export const handler = await createJanitor(config, logger);
