import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { serve } from '@hono/node-server';
import type { Config } from '../config/config.ts';
import { createApp } from '../http/app.ts';
import { describeError, type Logger } from '../logging/logger.ts';
import { InMemoryHashStates } from '../registry/hashing.ts';
import type { Registry } from '../registry/registry.ts';
import { createRegistry } from './storage.ts';
import { openAuthStore } from '../auth/auth-store.ts';
import { loadAuth } from './auth.ts';
import { createMirror } from '../mirror/setup.ts';
import { keepCertificateCurrent, prepareTls, type TlsSetup } from './tls.ts';
import { browseSettingsOf } from '../browse/info.ts';
import { immutableTagsOf, retentionOf } from '../gc/config.ts';
import { WebAssets } from '../web/assets.ts';
import { findWebDir } from '../web/locate.ts';

export interface RunningServer {
  readonly url: string;
  readonly registry: Registry;
  /** Set when the server speaks HTTPS. */
  readonly tls?: TlsSetup;
  /** Stops accepting connections and waits for requests in flight (up to the grace period). */
  close(): Promise<void>;
}

const PURGE_INTERVAL_MS = 15 * 60 * 1000;

/** The local registry: the HTTP app on Node's http server, on the embedded filesystem store. */
export async function startLocalServer(config: Config, logger: Logger): Promise<RunningServer> {
  const registry = createRegistry(config, { hashes: new InMemoryHashStates(), logger });
  const store = openAuthStore(config, config.s3.region);
  const auth = store ? await loadAuth(store, config.tokenTtlSeconds, logger) : undefined;
  const web = await loadWeb(config, logger);
  const app = createApp({
    auth,
    registry,
    logger,
    browse: browseSettingsOf(config, { retention: retentionOf(config), immutable: immutableTagsOf(config) }),
    ...(web && { web }),
    mirror: createMirror(config, registry, logger, 'stream'),
    redirect: { enabled: config.redirect, ttlSeconds: config.presignTtlSeconds },
  });
  const tls = await prepareTls(config, logger);
  const server = await new Promise<Server>((resolve, reject) => {
    const options = { fetch: app.fetch, port: config.port, hostname: config.host };
    // HTTPS is HTTP/1.1 with keep-alive, like the plain server (docs/docker-setup.md says why not HTTP/2).
    const s = tls
      ? serve(
          { ...options, createServer: createHttpsServer, serverOptions: { cert: tls.cert, key: tls.key } },
          () => resolve(s as Server),
        )
      : serve(options, () => resolve(s as Server));
    s.once('error', reject);
  });
  const stopWatching = tls
    ? keepCertificateCurrent(server as unknown as TlsServer, tls, config, logger)
    : undefined;
  // Large blobs stream for minutes: no request deadline beyond the client's own.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;

  const purge = async () => {
    try {
      const purged = await registry.uploads.purgeStale(config.uploadTtlSeconds * 1000);
      if (purged > 0) logger.info('purged stale upload sessions', { purged });
    } catch (err) {
      logger.warn('purging stale upload sessions failed', describeError(err));
    }
  };
  const timer = setInterval(purge, PURGE_INTERVAL_MS);
  timer.unref();
  void purge();

  // On shutdown, connections busy with a request must not stay keep-alive: their responses say
  // `Connection: close`, and each connection is closed as soon as its request is done.
  let closing = false;
  const inFlight = new Set<ServerResponse>();
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    if (closing) res.shouldKeepAlive = false;
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      if (closing) server.closeIdleConnections();
    });
  });

  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `${tls ? 'https' : 'http'}://${host}:${address.port}`,
    registry,
    tls,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        stopWatching?.();
        closing = true;
        for (const res of inFlight) {
          if (!res.headersSent) res.setHeader('Connection', 'close');
          res.shouldKeepAlive = false;
        }
        const force = setTimeout(() => server.closeAllConnections(), config.shutdownGraceSeconds * 1000);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
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
