import { readFileSync } from 'node:fs';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { isIPv6, type Socket } from 'node:net';
import type { Logger } from '../logging/logger.ts';

/** What a client may hold of a server, and for how long (docs: README "Configuration"). */
export interface ConnectionLimits {
  /** Connections open at once; more are answered 503 with Retry-After. */
  readonly maxConnections: number;
  /** Connections open at once from one address (one /64 for IPv6). */
  readonly maxPerAddress: number;
  /** Time to send a request's headers. */
  readonly headersTimeoutMs: number;
  /** Time to a body's first byte, and the interval over which it must advance by `bodyMinBytes`. */
  readonly bodyTimeoutMs: number;
  readonly bodyMinBytes: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** Requests sent before the client has a token (`/token`) must be sent whole within this. */
  readonly unauthTimeoutMs: number;
}

export const DEFAULT_MAX_CONNECTIONS = 1000;
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 128;
/** File descriptors left to the process itself (logs, the auth file, the store's directories). */
const RESERVED_FDS = 64;
/** Seconds a client refused for too many connections is asked to wait. */
export const RETRY_AFTER_SECONDS = 5;
/** A refused connection that sends no request is closed after this. */
const REFUSED_GRACE_MS = 5_000;
/** A refused request's body is read (and dropped) for at most this long before the 503 goes out. */
const REFUSED_DRAIN_MS = 1_000;

/** The connection settings as configured (seconds and bytes; unset caps are fitted to the file limit). */
export interface ConnectionSettings {
  readonly maxConnections?: number | undefined;
  readonly maxConnectionsPerAddress?: number | undefined;
  readonly headersTimeoutSeconds: number;
  readonly bodyTimeoutSeconds: number;
  readonly bodyMinBytes: number;
  readonly keepAliveTimeoutSeconds: number;
  readonly unauthTimeoutSeconds: number;
}

/**
 * The limits the settings ask for. Unless set, the connection caps are lowered to what the
 * process's open-file limit can hold: each connection may hold a second descriptor (the file of a
 * blob being read or written), and a refused connection holds one until it is answered, so the
 * total is a third of the descriptors left after a reserve. Past the file limit the kernel would
 * drop new connections unanswered (a reset), which the 503 is there to prevent.
 */
export function connectionLimits(
  config: ConnectionSettings,
  logger?: Logger,
  fileLimit: number | undefined = openFileLimit(),
): ConnectionLimits {
  const fits = fileLimit === undefined ? Infinity : Math.max(8, Math.floor((fileLimit - RESERVED_FDS) / 3));
  const maxConnections = config.maxConnections ?? Math.min(DEFAULT_MAX_CONNECTIONS, fits);
  if (config.maxConnections === undefined && maxConnections < DEFAULT_MAX_CONNECTIONS) {
    logger?.warn('connection limit lowered to fit the open-file limit', {
      maxConnections,
      openFileLimit: fileLimit,
    });
  } else if (config.maxConnections !== undefined && config.maxConnections > fits) {
    logger?.warn(
      'BERTH_MAX_CONNECTIONS is more than the open-file limit can hold: past it, new clients get resets instead of 503',
      { maxConnections, fits, openFileLimit: fileLimit },
    );
  }
  const maxPerAddress =
    config.maxConnectionsPerAddress ??
    Math.min(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, Math.max(1, Math.floor(maxConnections / 2)));
  return {
    maxConnections,
    maxPerAddress,
    headersTimeoutMs: config.headersTimeoutSeconds * 1000,
    bodyTimeoutMs: config.bodyTimeoutSeconds * 1000,
    bodyMinBytes: config.bodyMinBytes,
    keepAliveTimeoutMs: config.keepAliveTimeoutSeconds * 1000,
    unauthTimeoutMs: config.unauthTimeoutSeconds * 1000,
  };
}

/** The soft limit on open files (Linux, /proc/self/limits); undefined where it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    return soft && /^\d+$/.test(soft) ? Number(soft) : undefined;
  } catch {
    return undefined;
  }
}

/** Node's server options that carry the limits (`connectionsCheckingInterval` is read only at construction). */
export function serverTimeoutOptions(limits: ConnectionLimits) {
  return {
    headersTimeout: limits.headersTimeoutMs,
    // Large blobs stream for minutes: no deadline on a whole request, progress is watched instead.
    requestTimeout: 0,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    // TLS: a handshake is part of sending the request's headers.
    handshakeTimeout: limits.headersTimeoutMs,
  };
}

/** A response the guard writes itself, in its server's dialect. */
export interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Why the guard answers instead of the server. */
export type Refusal =
  | { readonly kind: 'too-many-connections'; readonly scope: 'total' | 'address'; readonly limit: number }
  | { readonly kind: 'malformed'; readonly code: string; readonly message: string }
  | { readonly kind: 'headers-too-large' }
  | { readonly kind: 'timeout'; readonly message: string };

export interface GuardOptions {
  readonly limits: ConnectionLimits;
  readonly logger: Logger;
  /** The guard's answers as this server words them (the registry's spec errors, API Gateway's `{"message"}`). */
  readonly answer: (refusal: Refusal) => Answer;
  /** Requests a client sends before it has a token: sent whole within `unauthTimeoutMs`. */
  readonly isUnauthenticated?: (req: IncomingMessage) => boolean;
}

/** What the guard sees of one connection. */
interface Connection {
  readonly address: string;
  /** Over a limit when it opened: its request is answered 503 and it is closed. */
  readonly refused?: { readonly scope: 'total' | 'address'; readonly limit: number };
  readonly openedAt: number;
  socket: Socket;
  request?: {
    readonly req: IncomingMessage;
    readonly res: ServerResponse;
    readonly startedAt: number;
    /** `socket.bytesRead` when the headers were in: more means the body has begun. */
    readonly startBytes: number;
    readonly deadline?: number;
    gotFirstByte: boolean;
    windowStart: number;
    windowBytes: number;
    sendWindowStart: number;
    sendBytes: number;
  };
}

export interface GuardStats {
  /** Connections within the limits. */
  readonly open: number;
  /** Connections over a limit, being answered 503. */
  readonly refusing: number;
  /** The address with the most connections, and how many it has. */
  readonly busiestAddress?: { readonly address: string; readonly connections: number };
}

/**
 * Keeps a Node HTTP(S) server up under clients that hold connections without using them:
 *
 * - caps on connections in total and per address, answered `503` with `Retry-After` once the
 *   request has arrived (never a reset; a refused connection that sends nothing is closed after 5 s);
 * - a deadline on headers (Node's `headersTimeout`, answered 408 by the `clientError` handler), on
 *   a body's first byte, a floor on its progress in every interval (time the server spends not
 *   reading does not count), the same floor on a response the client stops reading, a short
 *   deadline for unauthenticated requests, and keep-alive idle timeouts;
 * - a `clientError` handler that answers malformed requests with 400 and a body in the server's
 *   dialect while the socket can still take it.
 *
 * One timer looks at every connection each tick (at most every second), so the cost is one pass
 * over the open connections, whatever the number of requests.
 */
export class ConnectionGuard {
  private readonly connections = new Map<string, Connection>();
  private readonly perAddress = new Map<string, number>();
  private open = 0;
  private refusing = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly log: ThrottledLog;

  constructor(
    private readonly server: Server,
    private readonly options: GuardOptions,
  ) {
    const { limits } = options;
    this.log = new ThrottledLog(options.logger);
    server.headersTimeout = limits.headersTimeoutMs;
    server.requestTimeout = 0;
    server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    // Runs before Node's own listener, so a refused connection is known before its first byte.
    server.prependListener('connection', (socket: Socket) => this.accept(socket));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.clientError(err, socket));
    const tick = Math.max(50, Math.min(1000, Math.min(limits.bodyTimeoutMs, limits.unauthTimeoutMs) / 4));
    this.timer = setInterval(() => this.sweep(), tick);
    this.timer.unref();
  }

  /** The request listener, behind the guard: refused connections never reach it. */
  wrap(listener: RequestListener): RequestListener {
    return (req, res) => {
      const connection = this.connections.get(peerKey(req.socket));
      if (connection?.refused) {
        this.refuse(connection, req, res);
        return;
      }
      if (connection) this.track(connection, req, res);
      listener(req, res);
    };
  }

  stats(): GuardStats {
    let busiest: GuardStats['busiestAddress'];
    for (const [address, connections] of this.perAddress) {
      if (!busiest || connections > busiest.connections) busiest = { address, connections };
    }
    return { open: this.open, refusing: this.refusing, ...(busiest ? { busiestAddress: busiest } : {}) };
  }

  close(): void {
    clearInterval(this.timer);
    this.log.flush();
  }

  private accept(socket: Socket): void {
    const address = addressKey(socket.remoteAddress);
    const key = peerKey(socket);
    const { maxConnections, maxPerAddress } = this.options.limits;
    const mine = this.perAddress.get(address) ?? 0;
    const scope = this.open >= maxConnections ? 'total' : mine >= maxPerAddress ? 'address' : undefined;
    if (scope) {
      if (this.refusing >= maxConnections) {
        // As many connections being refused as served: holding more until their requests arrive
        // could run the process out of descriptors (and past that the kernel resets everyone). The
        // 503 goes out at once, without waiting for the request, and the connection is closed; a
        // request already sent but unread makes that close a reset, after the 503 (clients read
        // the answer first).
        this.log.warn('connection dropped: too many connections being refused', { source: address });
        const limit = scope === 'total' ? maxConnections : maxPerAddress;
        socket.end(toRaw(this.options.answer({ kind: 'too-many-connections', scope, limit })));
        socket.destroy();
        return;
      }
      this.refusing++;
      const limit = scope === 'total' ? maxConnections : maxPerAddress;
      this.connections.set(key, { address, refused: { scope, limit }, openedAt: now(), socket });
      socket.once('close', () => {
        this.refusing--;
        this.connections.delete(key);
      });
      return;
    }
    this.open++;
    this.perAddress.set(address, mine + 1);
    this.connections.set(key, { address, openedAt: now(), socket });
    socket.once('close', () => {
      this.open--;
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(address, left);
      else this.perAddress.delete(address);
      this.connections.delete(key);
    });
  }

  private track(connection: Connection, req: IncomingMessage, res: ServerResponse): void {
    const at = now();
    const bytes = req.socket.bytesRead;
    connection.socket = req.socket;
    connection.request = {
      req,
      res,
      startedAt: at,
      startBytes: bytes,
      ...(this.options.isUnauthenticated?.(req)
        ? { deadline: at + this.options.limits.unauthTimeoutMs }
        : {}),
      gotFirstByte: false,
      windowStart: at,
      windowBytes: bytes,
      sendWindowStart: at,
      sendBytes: req.socket.bytesWritten,
    };
  }

  /** Over a limit: 503 with Retry-After once the request (and a bounded part of its body) is in. */
  private refuse(connection: Connection, req: IncomingMessage, res: ServerResponse): void {
    const refused = connection.refused!;
    const answer = this.options.answer({ kind: 'too-many-connections', ...refused });
    this.log.warn('connection refused: too many connections', {
      source: connection.address,
      scope: refused.scope,
      limit: refused.limit,
    });
    let sent = false;
    const send = () => {
      if (sent || res.writableEnded) return;
      sent = true;
      res.shouldKeepAlive = false;
      res.writeHead(answer.status, {
        ...answer.headers,
        'Content-Length': String(Buffer.byteLength(answer.body)),
        Connection: 'close',
      });
      res.end(req.method === 'HEAD' ? undefined : answer.body);
    };
    if (req.complete) return send();
    // Answering while the client is still sending would close the connection under it, and it
    // would see a reset instead of the 503: read (and drop) the body for a moment first.
    const timer = setTimeout(send, REFUSED_DRAIN_MS);
    timer.unref();
    req.once('end', () => {
      clearTimeout(timer);
      send();
    });
    req.resume();
  }

  private clientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const address = addressKey(socket.remoteAddress);
    // A response already under way on this connection: nothing can be written in front of it.
    const pending = this.connections.get(peerKey(socket))?.request?.res;
    const answering = pending !== undefined && pending.headersSent && !pending.writableFinished;
    if (err.code === 'ECONNRESET' || !socket.writable || answering) {
      socket.destroy();
      return;
    }
    const refusal: Refusal =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? {
            kind: 'timeout',
            message: `the request's headers did not arrive within ${this.options.limits.headersTimeoutMs / 1000} s`,
          }
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? { kind: 'headers-too-large' }
          : { kind: 'malformed', code: err.code ?? 'unknown', message: parserProblem(err.code) };
    this.log.warn(refusal.kind === 'timeout' ? 'request headers timed out' : 'malformed request', {
      source: address,
      ...(refusal.kind === 'malformed' ? { parserError: refusal.code } : {}),
    });
    this.answerRaw(socket, this.options.answer(refusal));
  }

  /** Writes an answer on a socket no response object owns (parse errors, header timeouts), then closes it. */
  private answerRaw(socket: Socket, answer: Answer): void {
    socket.end(toRaw(answer));
    // The client may never close its side; a second is plenty to read a small answer.
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  private sweep(): void {
    const at = now();
    const { bodyTimeoutMs, bodyMinBytes } = this.options.limits;
    for (const connection of this.connections.values()) {
      const { socket, request } = connection;
      if (socket.destroyed) continue;
      if (connection.refused) {
        if (!request && at - connection.openedAt > REFUSED_GRACE_MS) socket.destroy();
        continue;
      }
      if (!request) continue;
      const { req, res } = request;
      if (!req.complete && !req.destroyed) {
        if (request.deadline !== undefined && at > request.deadline) {
          this.cut(
            connection,
            `an unauthenticated request must be sent whole within ${this.options.limits.unauthTimeoutMs / 1000} s`,
          );
          continue;
        }
        const read = socket.bytesRead;
        // The server is not reading (a slow disk, a part going to S3, a handler not yet at the body):
        // the client cannot send, so its clock does not run.
        if (req.readableLength > 0 || socket.isPaused()) {
          request.windowStart = at;
          request.windowBytes = read;
        } else if (!request.gotFirstByte) {
          if (read > request.startBytes) {
            request.gotFirstByte = true;
            request.windowStart = at;
            request.windowBytes = read;
          } else if (at - request.windowStart >= bodyTimeoutMs) {
            this.cut(connection, `no byte of the request body within ${bodyTimeoutMs / 1000} s`);
            continue;
          }
        } else if (at - request.windowStart >= bodyTimeoutMs) {
          if (read - request.windowBytes < bodyMinBytes) {
            this.cut(
              connection,
              `the request body advanced by ${read - request.windowBytes} bytes in ${bodyTimeoutMs / 1000} s, less than ${bodyMinBytes}`,
            );
            continue;
          }
          request.windowStart = at;
          request.windowBytes = read;
        }
      }
      if (!res.writableFinished && socket.writableLength > 0) {
        const written = socket.bytesWritten;
        if (at - request.sendWindowStart >= bodyTimeoutMs) {
          if (written - request.sendBytes < bodyMinBytes) {
            this.cut(
              connection,
              `the client read ${written - request.sendBytes} bytes of the response in ${bodyTimeoutMs / 1000} s`,
            );
            continue;
          }
          request.sendWindowStart = at;
          request.sendBytes = written;
        }
      } else {
        request.sendWindowStart = at;
        request.sendBytes = socket.bytesWritten;
      }
    }
  }

  /** Ends a request the client stopped sending (or reading): 408 if no response has begun, then close. */
  private cut(connection: Connection, why: string): void {
    const { req, res, startedAt } = connection.request!;
    this.log.warn('request cut off', {
      source: connection.address,
      method: req.method,
      path: (req.url ?? '').split('?')[0]?.slice(0, 200),
      reason: why,
      received: connection.socket.bytesRead - connection.request!.startBytes,
      seconds: Math.round((now() - startedAt) / 100) / 10,
    });
    const socket = connection.socket;
    if (!res.headersSent && socket.writable) {
      // Written under the response object, as Node's own request timeout does; whatever the handler
      // writes later goes nowhere.
      socket.write(toRaw(this.options.answer({ kind: 'timeout', message: why })));
    }
    socket.destroy();
  }
}

/** Where a connection comes from, for the per-address cap: IPv4 as is, IPv6 by its /64. */
export function addressKey(remote: string | undefined): string {
  if (!remote) return 'unknown';
  if (remote.startsWith('::ffff:') && remote.includes('.')) return remote.slice('::ffff:'.length);
  if (!isIPv6(remote)) return remote;
  return `${expandIPv6(remote).slice(0, 4).join(':')}::/64`;
}

function expandIPv6(address: string): string[] {
  const [head, tail] = address.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const missing = tail === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array<string>(missing).fill('0'), ...right].map((g) =>
    g.toLowerCase().replace(/^0+(?=.)/, ''),
  );
}

function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

function now(): number {
  return performance.now();
}

function toRaw(answer: Answer): string {
  const reason = STATUS_TEXT[answer.status] ?? 'Error';
  return [
    `HTTP/1.1 ${answer.status} ${reason}`,
    ...Object.entries(answer.headers).map(([name, value]) => `${name}: ${value}`),
    `Content-Length: ${Buffer.byteLength(answer.body)}`,
    'Connection: close',
    '',
    answer.body,
  ].join('\r\n');
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
};

/** A person's reading of llhttp's error codes. */
function parserProblem(code: string | undefined): string {
  switch (code) {
    case 'HPE_INVALID_URL':
      return 'the request target holds a character HTTP does not allow (a raw byte above 0x7e, a space or a control character): percent-encode it';
    case 'HPE_INVALID_METHOD':
      return 'the request method is not a valid HTTP method';
    case 'HPE_INVALID_VERSION':
      return 'the request line does not end with a valid HTTP version';
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_INVALID_HEADER_VALUE':
      return 'a header name or value holds a character HTTP does not allow';
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return 'the Content-Length header is invalid, repeated with different values, or sent with Transfer-Encoding';
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CHUNK_SIZE':
      return 'the chunked body is malformed';
    default:
      return 'the request is not valid HTTP/1.1';
  }
}

/**
 * Warnings about hostile traffic, at most 20 a second: a flood must not turn into a flood of log
 * lines. What was left out is counted in the next line that gets through.
 */
class ThrottledLog {
  private second = 0;
  private written = 0;
  private suppressed = 0;

  constructor(private readonly logger: Logger) {}

  warn(msg: string, fields: Record<string, unknown>): void {
    const second = Math.floor(now() / 1000);
    if (second !== this.second) {
      this.second = second;
      this.written = 0;
    }
    if (this.written >= 20) {
      this.suppressed++;
      return;
    }
    this.written++;
    const extra = this.suppressed > 0 ? { suppressedBefore: this.suppressed } : {};
    this.suppressed = 0;
    this.logger.warn(msg, { ...fields, ...extra });
  }

  flush(): void {
    if (this.suppressed > 0)
      this.logger.warn('connection warnings suppressed', { suppressed: this.suppressed });
    this.suppressed = 0;
  }
}
