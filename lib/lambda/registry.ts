import type { Hono } from 'hono';
import type { Config } from '../config/config.ts';
import { createApp } from '../http/app.ts';
import type { HttpEnv } from '../http/context.ts';
import type { Logger } from '../logging/logger.ts';
import { SerializedHashStates } from '../registry/hashing.ts';
import { Registry } from '../registry/registry.ts';
import { createStorage } from '../server/storage.ts';

/**
 * The registry as a Lambda runs it. The next request of an upload may land in another container,
 * so the running digest is serialized into the session instead of kept in memory.
 */
export function createLambdaRegistry(config: Config): Registry {
  return new Registry({
    storage: createStorage(config),
    hashes: new SerializedHashStates(),
    limits: {
      maxBlobSize: config.maxBlobSize,
      partSize: config.partSize,
      leaseMs: config.uploadLeaseSeconds * 1000,
    },
    mountWithoutFrom: config.mountWithoutFrom,
  });
}

export function createLambdaApp(config: Config, registry: Registry, logger: Logger): Hono<HttpEnv> {
  return createApp({
    registry,
    logger,
    redirect: { enabled: config.redirect, ttlSeconds: config.presignTtlSeconds },
  });
}
