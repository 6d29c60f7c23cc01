import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { RequestError, getRequestListener } from '@hono/node-server';
import { errorBody } from '../http/errors.ts';
import { RegistryError } from '../oci/errors.ts';
import { describeError, type Logger } from '../logging/logger.ts';
import type { Registry, RegistryStore } from '../registry/registry.ts';
import { keepCertificateCurrent, prepareTls, type TlsOptions, type TlsSetup } from './tls.ts';
import {
  ConnectionGuard,
  RETRY_AFTER_SECONDS,
  serverTimeoutOptions,
  type Answer,
  type ConnectionLimits,
  type GuardStats,
  type Refusal,
} from './connections.ts';

/** What the local server serves, and how (lib/setup/local-server.ts builds it from the configuration). */
export interface LocalServerOptions {
  /** The registry's HTTP app (lib/http/app.ts). */
  readonly app: { fetch(request: Request): Response | Promise<Response> };
  /** The registry behind it and its store: the server purges stale upload sessions and crash leftovers. */
  readonly store: RegistryStore;
  readonly host: string;
  readonly port: number;
  readonly tls?: TlsOptions;
  readonly limits: ConnectionLimits;
  /** Upload sessions untouched this long are purged. */
  readonly uploadTtlMs: number;
  /** How long a shutdown waits for requests in flight before closing their connections. */
  readonly shutdownGraceMs: number;
  readonly logger: Logger;
}

export interface RunningServer {
  readonly url: string;
  readonly registry: Registry;
  /** Set when the server speaks HTTPS. */
  readonly tls?: TlsSetup;
  /** Connections open and refused right now. */
  connections(): GuardStats;
  /** Stops accepting connections and waits for requests in flight (up to the grace period). */
  close(): Promise<void>;
}

const PURGE_INTERVAL_MS = 15 * 60 * 1000;
/** Temporary files older than this are a crash's leftovers (at start / on the periodic sweep). */
const TEMPORARY_AT_START_MS = 60_000;
const TEMPORARY_MAX_AGE_MS = 3600_000;

/** The local registry: the HTTP app on Node's http server (or https). */
export async function startLocalServer(options: LocalServerOptions): Promise<RunningServer> {
  const { app, limits, logger } = options;
  const { registry, storage } = options.store;
  const tls = options.tls ? await prepareTls(options.tls, logger) : undefined;
  // A request Node parsed but the URL class cannot read (a backslash in the path): the app never
  // sees it, so it is answered here, in the spec's format, instead of with an empty 400.
  const listener = getRequestListener(app.fetch, {
    hostname: options.host,
    errorHandler: (err) => {
      if (err instanceof RequestError) {
        return answerResponse(registryAnswer({ kind: 'malformed', code: 'URL', message: urlProblem(err) }));
      }
      logger.error('request failed outside the app', describeError(err));
      const error = new RegistryError('UNKNOWN', 'internal error');
      return new Response(errorBody(error), { status: 500, headers: { 'Content-Type': 'application/json' } });
    },
  });
  const serverOptions = serverTimeoutOptions(limits);
  // HTTPS is HTTP/1.1 with keep-alive, like the plain server (docs/docker-setup.md says why not HTTP/2).
  const server: Server = tls
    ? (createHttpsServer({ ...serverOptions, cert: tls.cert, key: tls.key }) as unknown as Server)
    : createHttpServer(serverOptions);
  const guard = new ConnectionGuard(server, {
    limits,
    logger,
    answer: registryAnswer,
    isUnauthenticated: (req) => /^\/token(\?|$)/.test(req.url ?? ''),
  });
  server.on('request', guard.wrap(listener));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const stopWatching = tls ? keepCertificateCurrent(server as unknown as TlsServer, tls, logger) : undefined;

  const purge = async (temporaryAgeMs: number) => {
    try {
      const purged = await registry.uploads.purgeStale(options.uploadTtlMs);
      if (purged > 0) logger.info('purged stale upload sessions', { purged });
      // What a crash mid-write left (a temp file lives for one write: seconds).
      const cleaned = await storage.cleanTemporary?.(temporaryAgeMs);
      if (cleaned && cleaned.removed > 0) logger.info('removed leftover temporary files', { ...cleaned });
    } catch (err) {
      logger.warn('purging stale upload sessions failed', describeError(err));
    }
  };
  const timer = setInterval(() => void purge(TEMPORARY_MAX_AGE_MS), PURGE_INTERVAL_MS);
  timer.unref();
  // At start, no write of this process is under way: anything older than a minute was left by the
  // process before (another one, `berth gc`, writes files that live for well under a minute).
  void purge(TEMPORARY_AT_START_MS);

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
    connections: () => guard.stats(),
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        guard.close();
        stopWatching?.();
        closing = true;
        for (const res of inFlight) {
          if (!res.headersSent) res.setHeader('Connection', 'close');
          res.shouldKeepAlive = false;
        }
        const force = setTimeout(() => server.closeAllConnections(), options.shutdownGraceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

/** Why the request's URL could not be read (the adapter's messages are fixed strings, safe to repeat). */
function urlProblem(err: RequestError): string {
  if (/backslash/i.test(err.message)) return 'a backslash in the request path: percent-encode it as %5C';
  if (/host/i.test(err.message)) return 'the Host header is missing or not a valid host name';
  return 'the request target is not a valid URL: percent-encode characters outside the URL grammar';
}

/** The guard's refusals as the registry words errors: the spec's JSON body, statuses as the situation needs. */
export function registryAnswer(refusal: Refusal): Answer {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json; charset=utf-8',
    'Docker-Distribution-Api-Version': 'registry/2.0',
  };
  switch (refusal.kind) {
    case 'too-many-connections': {
      const who = refusal.scope === 'total' ? 'the registry has' : 'your address has';
      const error = new RegistryError(
        'UNAVAILABLE',
        `${who} too many connections open (limit ${refusal.limit}); retry in ${RETRY_AFTER_SECONDS} s`,
        { detail: { limit: refusal.limit, scope: refusal.scope } },
      );
      return {
        status: 503,
        headers: { ...headers, 'Retry-After': String(RETRY_AFTER_SECONDS) },
        body: errorBody(error),
      };
    }
    case 'malformed':
      return {
        status: 400,
        headers,
        body: errorBody(new RegistryError('UNSUPPORTED', `malformed request: ${refusal.message}`)),
      };
    case 'headers-too-large':
      return {
        status: 431,
        headers,
        body: errorBody(
          new RegistryError(
            'UNSUPPORTED',
            'the request headers are larger than the 16 KiB the registry reads',
          ),
        ),
      };
    case 'timeout':
      return {
        status: 408,
        headers,
        body: errorBody(new RegistryError('UNSUPPORTED', `request timed out: ${refusal.message}`)),
      };
  }
}

function answerResponse(answer: Answer): Response {
  return new Response(answer.body, { status: answer.status, headers: answer.headers });
}
