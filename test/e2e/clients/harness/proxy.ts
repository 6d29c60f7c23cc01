// An HTTP proxy on 127.0.0.1 in front of the registry: it can slow bodies down (so that a push or a
// pull can be interrupted half way), counts body bytes each way, and can record every request with
// its headers (BERTH_E2E_RECORD) to see exactly how clients talk to a registry. The Host header is
// passed through, so absolute Location URLs that the registry builds point back at the proxy.
import { appendFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';

export interface ProxyOptions {
  /** The registry, e.g. http://127.0.0.1:5000. */
  upstream: string;
  /** Body bytes per second each way; unlimited when omitted. */
  bytesPerSecond?: number;
  /** Appends one JSON line per request (headers included, Authorization redacted). */
  recordFile?: string;
}

class Throttle extends Transform {
  constructor(
    private readonly rate: number | undefined,
    private readonly count: (n: number) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.count(chunk.length);
    if (!this.rate) return done(null, chunk);
    // Send in slices of ~50 ms worth of bytes.
    const slice = Math.max(1024, Math.floor(this.rate / 20));
    let off = 0;
    const next = () => {
      if (off >= chunk.length || this.destroyed) return done();
      const part = chunk.subarray(off, off + slice);
      off += part.length;
      this.push(part);
      setTimeout(next, (part.length / this.rate!) * 1000);
    };
    next();
  }
}

const KEEP_RESPONSE_HEADERS = [
  'content-type',
  'content-length',
  'location',
  'docker-content-digest',
  'range',
  'docker-upload-uuid',
  'oci-subject',
  'oci-filters-applied',
  'oci-chunk-min-length',
  'www-authenticate',
  'link',
  'transfer-encoding',
];

export class RegistryProxy {
  /** Request body bytes forwarded to the registry (pushes). */
  bytesUp = 0;
  /** Response body bytes forwarded to clients (pulls). */
  bytesDown = 0;
  private server?: http.Server;
  private readonly agent = new http.Agent({ keepAlive: true });
  private readonly upstreamUrl: URL;
  port = 0;

  constructor(private readonly opts: ProxyOptions) {
    this.upstreamUrl = new URL(opts.upstream);
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  /** Resolves once at least `bytes` more body bytes have passed in `direction`. */
  async waitForBytes(direction: 'up' | 'down', bytes: number, timeoutMs = 120_000): Promise<void> {
    const start = direction === 'up' ? this.bytesUp : this.bytesDown;
    const deadline = Date.now() + timeoutMs;
    while ((direction === 'up' ? this.bytesUp : this.bytesDown) - start < bytes) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${bytes} bytes ${direction} through the proxy`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.forward(req, res));
    this.server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    this.agent.destroy();
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = Date.now();
    let reqBytes = 0;
    let resBytes = 0;
    const upstream = http.request(
      {
        host: this.upstreamUrl.hostname,
        port: this.upstreamUrl.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent: this.agent,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        const t = new Throttle(this.opts.bytesPerSecond, (n) => {
          resBytes += n;
          this.bytesDown += n;
        });
        up.pipe(t).pipe(res);
        res.on('close', () => {
          if (!res.writableFinished) {
            up.destroy();
            t.destroy();
          }
        });
        up.on('end', () => this.record(req, up.statusCode ?? 0, up.headers, reqBytes, resBytes, started));
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    const t = new Throttle(this.opts.bytesPerSecond, (n) => {
      reqBytes += n;
      this.bytesUp += n;
    });
    req.pipe(t).pipe(upstream);
    // A client that dies mid-request: the registry sees the connection drop, as it would without us.
    req.on('close', () => {
      if (!req.complete) {
        t.destroy();
        upstream.destroy();
      }
    });
  }

  private record(
    req: http.IncomingMessage,
    status: number,
    resHeaders: http.IncomingHttpHeaders,
    reqBytes: number,
    resBytes: number,
    started: number,
  ): void {
    if (!this.opts.recordFile) return;
    const headers: Record<string, string | string[] | undefined> = { ...req.headers };
    if (headers.authorization)
      headers.authorization = String(headers.authorization).split(' ')[0] + ' <redacted>';
    const kept: Record<string, unknown> = {};
    for (const h of KEEP_RESPONSE_HEADERS) if (resHeaders[h] !== undefined) kept[h] = resHeaders[h];
    appendFileSync(
      this.opts.recordFile,
      JSON.stringify({
        t: new Date(started).toISOString(),
        ms: Date.now() - started,
        method: req.method,
        url: req.url,
        status,
        reqHeaders: headers,
        reqBytes,
        resHeaders: kept,
        resBytes,
      }) + '\n',
    );
  }
}
