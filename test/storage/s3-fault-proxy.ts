import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer, forwardRequest } from './loopback-server.ts';

/**
 * A pass-through HTTP proxy in front of the test S3 server that fails chosen requests the way S3 does
 * under load (SlowDown, 5xx), or stalls or drops them, so that the real SDK stack (retry middleware,
 * error parsing, timeouts) meets failures that MinIO cannot be made to produce. The Host header is
 * passed on unchanged, so SigV4 signatures made for the proxy's address still verify upstream.
 */
export type Fault = { readonly status: number; readonly code: string } | 'stall' | 'drop';

export interface ProxiedRequest {
  readonly method: string;
  readonly url: string;
  readonly fault?: Fault;
}

interface Rule {
  readonly match: (method: string, url: string) => boolean;
  readonly fault: Fault;
  remaining: number;
}

export class FaultProxy {
  /** Every request seen, in order, with the fault it was given. */
  readonly requests: ProxiedRequest[] = [];
  private readonly rules: Rule[] = [];
  private readonly http = new LoopbackServer((req, res) => this.handle(req, res));

  private constructor(
    private readonly upstream: URL,
    private readonly clockOffsetMs: number,
  ) {}

  /**
   * `clockOffsetMs`: the upstream's clock minus ours. Injected answers are dated with the upstream's
   * time, as S3's own are: the SDK corrects its clock from an answer's Date header.
   */
  static async start(
    upstream: string,
    clockOffsetMs = 0,
  ): Promise<FaultProxy & { readonly endpoint: string }> {
    const proxy = new FaultProxy(new URL(upstream), clockOffsetMs);
    return Object.assign(proxy, { endpoint: await proxy.http.listen() });
  }

  /** Gives the next `times` requests that match this fault (Infinity: all of them). */
  inject(match: (method: string, url: string) => boolean, fault: Fault, times = Infinity): void {
    this.rules.push({ match, fault, remaining: times });
  }

  clear(): void {
    this.rules.length = 0;
    this.requests.length = 0;
  }

  count(method: string, urlPart = ''): number {
    return this.requests.filter((r) => r.method === method && r.url.includes(urlPart)).length;
  }

  close(): Promise<void> {
    return this.http.close();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const rule = this.rules.find((r) => r.remaining > 0 && r.match(method, url));
    if (rule) rule.remaining--;
    this.requests.push({ method, url, ...(rule && { fault: rule.fault }) });
    if (!rule) return this.forward(req, res);
    const { fault } = rule;
    if (fault === 'stall') return;
    if (fault === 'drop') return void req.socket.destroy();
    // Read the body first, as S3 does, so the client is not cut off mid-send.
    req.resume();
    req.on('end', () => {
      res.writeHead(fault.status, {
        'content-type': 'application/xml',
        date: new Date(Date.now() + this.clockOffsetMs).toUTCString(),
      });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${fault.code}</Code>` +
          `<Message>injected by the test proxy</Message><RequestId>fault</RequestId></Error>`,
      );
    });
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    forwardRequest(this.upstream, req, res);
  }
}
