/** The whole /v2 API behind API Gateway (HTTP API, payload 2.0) or a Function URL. */
import { lambdaConfig } from '../lib/config/lambda.ts';
import { createHttpHandler } from '../lib/lambda/handler.ts';
import { createLambdaLogger } from '../lib/lambda/logging.ts';
import { createLambdaApp, createLambdaStore } from '../lib/setup/lambda.ts';

// Built once per container, at init, so warm invocations only route and run.
const config = lambdaConfig(process.env);
const logger = createLambdaLogger(config.logLevel);
const app = await createLambdaApp(config, await createLambdaStore(config, logger), logger);

// Metrics are log lines too: a silent log level silences them (tests).
export const handler = createHttpHandler(app, {
  logger,
  writeMetric: config.logLevel === 'silent' ? false : undefined,
});
