import { connect, type Socket } from 'node:net';

/** What came back on a raw connection: the first response (if any), and how the connection ended. */
export interface RawOutcome {
  readonly status?: number;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** `closed`: the server closed it; `reset`: ECONNRESET or similar; `open`: still open at the deadline. */
  readonly end: 'closed' | 'reset' | 'open';
  readonly error?: string;
  /** Milliseconds from connecting to the end. */
  readonly ms: number;
}

export type Step = string | Buffer | { readonly wait: number };

export interface RawOptions {
  readonly host?: string;
  /** Connect from this local address (any 127.x.y.z works on Linux): another client, as the server sees it. */
  readonly localAddress?: string;
  /** Give up (and report `open`) after this long. */
  readonly timeoutMs?: number;
}

/**
 * A client on a real socket that sends `steps` (bytes, or pauses) and reads until the server closes
 * the connection, the deadline passes, or (with `untilResponse`) one whole response has arrived.
 */
export function raw(port: number, steps: readonly Step[], options: RawOptions = {}): RawConnection {
  return new RawConnection(port, steps, options);
}

export class RawConnection {
  readonly socket: Socket;
  readonly outcome: Promise<RawOutcome>;
  /** The outcome, once there is one (the connection ended or the deadline passed). */
  result?: RawOutcome;
  private received = Buffer.alloc(0);

  constructor(port: number, steps: readonly Step[], options: RawOptions) {
    const started = performance.now();
    this.socket = connect({
      port,
      host: options.host ?? '127.0.0.1',
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    const socket = this.socket;
    this.outcome = new Promise((resolve) => {
      let settled = false;
      const finish = (end: RawOutcome['end'], error?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.result = {
          ...parseResponse(this.received),
          end,
          ...(error ? { error } : {}),
          ms: performance.now() - started,
        };
        resolve(this.result);
        socket.destroy();
      };
      const timer = setTimeout(() => finish('open'), options.timeoutMs ?? 30_000);
      socket.on('data', (chunk: Buffer) => (this.received = Buffer.concat([this.received, chunk])));
      socket.on('end', () => finish('closed'));
      socket.on('close', () => finish('closed'));
      socket.on('error', (err: NodeJS.ErrnoException) =>
        finish(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'reset' : 'closed', err.code),
      );
    });
    socket.once('connect', () => void this.send(steps));
  }

  private async send(steps: readonly Step[]): Promise<void> {
    for (const step of steps) {
      if (this.socket.destroyed) return;
      if (typeof step === 'object' && 'wait' in step) await new Promise((r) => setTimeout(r, step.wait));
      else this.socket.write(step);
    }
  }
}

function parseResponse(bytes: Buffer): Pick<RawOutcome, 'status' | 'headers' | 'body'> {
  const text = bytes.toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  if (split < 0) return { headers: {}, body: text };
  const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length']);
  const rest = text.slice(split + 4);
  return {
    ...(Number.isFinite(status) ? { status } : {}),
    headers,
    body: Number.isFinite(length) ? rest.slice(0, length) : rest,
  };
}

/** A request's head, with `Connection: close` unless told otherwise. */
export function head(method: string, path: string, headers: Record<string, string | number> = {}): string {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1'];
  for (const [name, value] of Object.entries({ Connection: 'close', ...headers }))
    lines.push(`${name}: ${value}`);
  return lines.join('\r\n') + '\r\n\r\n';
}
