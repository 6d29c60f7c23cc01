import { join } from 'node:path';
import { openAuthStore } from '../auth/auth-store.ts';
import { awsRegionOf, type Config } from '../config/config.ts';
import { createApp } from '../http/app.ts';
import type { Logger } from '../logging/logger.ts';
import { Browse } from '../browse/browse.ts';
import { InMemoryHashStates } from '../registry/hashing.ts';
import { connectionLimits } from '../server/connections.ts';
import { startLocalServer, type RunningServer } from '../server/local-registry.ts';
import { selfSignedHosts, type TlsOptions } from '../server/tls.ts';
import { WebAssets } from '../web/assets.ts';
import { findWebDir } from '../web/locate.ts';
import { loadAuth } from './auth.ts';
import { browseSettingsOf } from './browse.ts';
import { immutableTagsOf, retentionOf } from './gc.ts';
import { createMirror } from './mirror.ts';
import { openStore } from './registry.ts';

/**
 * `berth serve`: the registry the configuration describes (store, token auth, pull-through cache,
 * web UI, CORS) on the local server, over HTTP or HTTPS.
 */
export async function startLocalRegistry(config: Config, logger: Logger): Promise<RunningServer> {
  // The store, beside the registry, for the web UI's read model and the server's purge of leftovers.
  const opened = await openStore(config, { hashes: new InMemoryHashStates(), logger });
  const { registry } = opened;
  const store = openAuthStore(config, awsRegionOf(config));
  const auth = store ? await loadAuth(store, config.tokenTtlSeconds, logger) : undefined;
  const web = await loadWeb(config, logger);
  const app = createApp({
    auth,
    registry,
    logger,
    browse: new Browse(
      opened,
      browseSettingsOf(config, { retention: retentionOf(config), immutable: immutableTagsOf(config) }),
    ),
    ...(web && { web }),
    mirror: createMirror(config, registry, logger, 'stream'),
    redirect: { enabled: config.redirect, ttlSeconds: config.presignTtlSeconds },
    cors: config.corsOrigins,
  });
  const tls = tlsOptionsOf(config);
  return startLocalServer({
    app,
    store: opened,
    host: config.host,
    port: config.port,
    ...(tls && { tls }),
    limits: connectionLimits(config, logger),
    uploadTtlMs: config.uploadTtlSeconds * 1000,
    shutdownGraceMs: config.shutdownGraceSeconds * 1000,
    logger,
  });
}

/** What `--tls-self-signed` or `--tls-cert`/`--tls-key` ask for; undefined: plain HTTP. */
export function tlsOptionsOf(
  config: Pick<Config, 'tlsSelfSigned' | 'tlsHosts' | 'tlsCert' | 'tlsKey' | 'host' | 'dataDir'>,
): TlsOptions | undefined {
  if (config.tlsSelfSigned) {
    return {
      selfSigned: { dir: join(config.dataDir, 'tls'), hosts: selfSignedHosts(config.tlsHosts, config.host) },
    };
  }
  if (config.tlsCert && config.tlsKey) return { files: { cert: config.tlsCert, key: config.tlsKey } };
  return undefined;
}

/** The web UI's files, when it is on and built; a server without them still serves the registry. */
async function loadWeb(config: Config, logger: Logger): Promise<WebAssets | undefined> {
  if (!config.web) return undefined;
  const dir = findWebDir();
  const web = dir ? await WebAssets.load(dir) : undefined;
  if (!web)
    logger.warn('the web UI is not built, so / serves nothing: run `npm run build` (npm start builds it)');
  return web;
}
