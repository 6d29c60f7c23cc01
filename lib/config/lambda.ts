import { parseConfig, type Config } from './config.ts';
import { configInput } from './sources.ts';

/**
 * The configuration of a Lambda function, from its environment. Same variables as `berth serve`,
 * with Lambda's defaults: the S3 store (the task's filesystem is read-only outside /tmp and does
 * not outlive the container) in the function's own region.
 */
export function lambdaConfig(env: Record<string, string | undefined>): Config {
  const input = configInput(env, {});
  return parseConfig({
    ...input,
    storage: input.storage ?? 's3',
    s3: { ...(env.AWS_REGION ? { region: env.AWS_REGION } : {}), ...input.s3 },
  });
}
