/**
 * Scheduled maintenance: purges stale upload sessions, carries garbage collection forward, and once a
 * collection interval runs the cheap checks of the store (docs/fsck.md, "On AWS").
 */
import { gcOptionsOf } from '../lib/setup/gc.ts';
import { lambdaConfig } from '../lib/lambda/config.ts';
import { createJanitorHandler } from '../lib/lambda/janitor.ts';
import { createLambdaLogger } from '../lib/lambda/logging.ts';
import { createLambdaRegistry } from '../lib/lambda/registry.ts';

// Built once per container, at init.
const config = lambdaConfig(process.env);
const logger = createLambdaLogger(config.logLevel);

export const handler = createJanitorHandler(
  createLambdaRegistry(config),
  config.uploadTtlSeconds,
  logger,
  { ...gcOptionsOf(config), intervalMs: config.gcIntervalSeconds * 1000 },
  {
    intervalMs: config.gcIntervalSeconds * 1000,
    uploadTtlMs: config.uploadTtlSeconds * 1000,
    graceMs: config.gcGraceSeconds * 1000,
  },
);
