import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError, type Logger } from '../logging/logger.ts';
import { createLogger } from '../logging/logger.ts';
import {
  ConnectionGuard,
  RETRY_AFTER_SECONDS,
  serverTimeoutOptions,
  type Answer,
  type ConnectionLimits,
  type GuardStats,
  type Refusal,
} from '../server/connections.ts';
import { LOCAL_STORAGE_PATH } from '../storage/local-urls.ts';
import { serveStorage, type LocalStorage } from './storage.ts';
import { gatewayRequestId, payloadBytes, toEvent } from './event.ts';
import { lambdaContext, type HttpFunction } from './invoke.ts';
import { GATEWAY_ERRORS, LIMITS, type GatewayError } from './limits.ts';
import { writeGatewayError, writeResult } from './response.ts';

/** A route other than `$default`, as an HTTP API route key (`GET /ui/{proxy+}`) sends it to another function. */
export interface GatewayRoute {
  readonly method: string;
  /** An exact path, or a prefix ending in `/` standing for `{proxy+}` (one or more further characters). */
  readonly path: string;
  readonly handler: HttpFunction;
  readonly functionName: string;
}

export interface GatewayOptions {
  /** The `$default` route's function. */
  readonly handler: HttpFunction;
  readonly routes?: readonly GatewayRoute[];
  readonly host?: string;
  readonly port?: number;
  /** The integration timeout; AWS's 30 s unless a test needs it shorter. */
  readonly timeoutMs?: number;
  readonly functionName?: string;
  readonly logger?: Logger;
  /** Connection caps and timeouts, as on the local server (`connectionLimits` of the configuration). */
  readonly limits: ConnectionLimits;
  /** The filesystem store whose signed URLs (`/_berth/storage/...`) blob GETs redirect to, standing in for S3. */
  readonly storage?: LocalStorage;
}

export interface RunningGateway {
  readonly url: string;
  /** Connections open and refused right now. */
  connections(): GuardStats;
  close(): Promise<void>;
}

/**
 * A local stand-in for an API Gateway HTTP API with one `$default` route to a Lambda function:
 * each request becomes a payload-2.0 event for the function's handler, called in this process,
 * and every limit AWS enforces on the way is enforced here with AWS's status and body, so what
 * fails on AWS fails here first.
 */
export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const limits = options.limits;
  const server = createServer(serverTimeoutOptions(limits));
  const guard = new ConnectionGuard(server, {
    limits,
    logger: options.logger ?? createLogger('silent'),
    answer: gatewayAnswer,
    isUnauthenticated: (req) => /^\/token(\?|$)/.test(req.url ?? ''),
  });
  server.on(
    'request',
    guard.wrap((req, res) => {
      void serve(req, res, options).catch((err: unknown) => {
        options.logger?.error('gateway failed', describeError(err));
        if (!res.headersSent) writeGatewayError(res, GATEWAY_ERRORS.functionError, '');
        else res.destroy();
      });
    }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  const { address, port, family } = server.address() as AddressInfo;
  return {
    url: `http://${family === 'IPv6' ? `[${address}]` : address}:${port}`,
    connections: () => guard.stats(),
    close: async () => {
      guard.close();
      await close(server);
    },
  };
}

/**
 * The guard's refusals in API Gateway's words (`{"message": ...}`). API Gateway answers these
 * before any function runs; its exact bodies for them are not documented (docs/lambda.md).
 */
export function gatewayAnswer(refusal: Refusal): Answer {
  const json = { 'Content-Type': 'application/json' };
  switch (refusal.kind) {
    case 'too-many-connections':
      return {
        status: 503,
        headers: { ...json, 'Retry-After': String(RETRY_AFTER_SECONDS) },
        body: JSON.stringify({ message: 'Service Unavailable' }),
      };
    case 'malformed':
      return { status: 400, headers: json, body: JSON.stringify({ message: 'Bad Request' }) };
    case 'headers-too-large':
      return {
        status: 431,
        headers: json,
        body: JSON.stringify({ message: 'Request Header Fields Too Large' }),
      };
    case 'timeout':
      return { status: 408, headers: json, body: JSON.stringify({ message: 'Request Timeout' }) };
  }
}

async function serve(req: IncomingMessage, res: ServerResponse, options: GatewayOptions): Promise<void> {
  const requestId = gatewayRequestId();
  const started = performance.now();
  const method = req.method ?? 'GET';
  const done = (status: number, error?: string) =>
    options.logger?.info('gateway', {
      apiRequestId: requestId,
      method,
      path: (req.url ?? '').split('?')[0]?.slice(0, 200),
      status,
      ...(error ? { gatewayError: error } : {}),
      durationMs: Math.round(performance.now() - started),
    });
  const refuse = (error: GatewayError, why: string) => {
    writeGatewayError(res, error, requestId);
    done(error.status, why);
  };

  // The stand-in for S3: signed blob URLs are served here, outside the function and its limits.
  if (options.storage && (req.url ?? '').startsWith(LOCAL_STORAGE_PATH)) {
    done(await serveStorage(req, res, options.storage));
    return;
  }

  const body = await readBody(req, LIMITS.requestBodyBytes);
  if (body === undefined) {
    refuse(GATEWAY_ERRORS.requestTooLarge, 'request body over 10 MB');
    return;
  }
  const event = toEvent({ request: req, body, requestId });
  if (payloadBytes(event, event.isBase64Encoded) > LIMITS.invokeRequestBytes) {
    refuse(GATEWAY_ERRORS.invokeRequestTooLarge, 'Lambda request payload over 6 MB');
    return;
  }

  const timeoutMs = options.timeoutMs ?? LIMITS.integrationTimeoutMs;
  const route = routeOf(options.routes ?? [], method, event.rawPath);
  const handler = route?.handler ?? options.handler;
  const functionName = route?.functionName ?? options.functionName ?? 'registry';
  const outcome = await invokeWithTimeout(
    () => handler(event, lambdaContext(functionName, timeoutMs)),
    timeoutMs,
  );
  if (outcome.kind === 'timeout') return refuse(GATEWAY_ERRORS.timeout, 'integration timeout');
  if (outcome.kind === 'error') {
    options.logger?.error('function error', describeError(outcome.error));
    return refuse(GATEWAY_ERRORS.functionError, 'function error');
  }
  if (payloadBytes(outcome.result) > LIMITS.invokeResponseBytes) {
    return refuse(GATEWAY_ERRORS.invokeResponseTooLarge, 'Lambda response payload over 6 MB');
  }
  writeResult(res, outcome.result, method, requestId);
  done(res.statusCode);
}

/** The route a request takes: API Gateway prefers a matching route key over `$default`. */
function routeOf(routes: readonly GatewayRoute[], method: string, path: string): GatewayRoute | undefined {
  return routes.find(
    (r) =>
      r.method === method &&
      (r.path.endsWith('/') && r.path !== '/'
        ? path.startsWith(r.path) && path.length > r.path.length
        : path === r.path),
  );
}

type Outcome = { kind: 'result'; result: unknown } | { kind: 'error'; error: unknown } | { kind: 'timeout' };

/**
 * The function keeps running after a timeout (a real one would run on to its own timeout too);
 * only the answer is abandoned.
 */
async function invokeWithTimeout(call: () => Promise<unknown>, timeoutMs: number): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'timeout' }), timeoutMs);
  });
  const invocation = call().then(
    (result): Outcome => ({ kind: 'result', result }),
    (error: unknown): Outcome => ({ kind: 'error', error }),
  );
  try {
    return await Promise.race([invocation, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The whole body, or undefined when it exceeds `limit` (by Content-Length or by counting). Either
 * way only once the client has sent it all: bytes past the limit are dropped, not kept, but a 413
 * written earlier would close the connection under a client still sending, which then reports a
 * broken pipe instead of the 413 (skopeo and podman did, pushing a 48 MiB layer).
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    let over = Number.isFinite(declared) && declared > limit;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      chunks.push(chunk);
      if (size > limit) {
        over = true;
        chunks.length = 0;
      }
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
