import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer, forwardRequest } from '../test/storage/loopback-server.ts';

/**
 * A pass-through HTTP proxy in front of MinIO that records every S3 request it forwards, named after
 * the S3 API call (from method, query and headers). The registry's S3 endpoint is the proxy's own
 * address and the Host header is passed on unchanged, so SigV4 signatures made for the proxy's host
 * (including those of presigned URLs handed to clients) still verify at MinIO.
 *
 * With a latency model it also makes MinIO look like S3 in an AWS region: each request is held for
 * its class's delay (plus jitter) before it is forwarded, so a registry's S3 calls cost what they cost
 * on AWS and the ones it makes one after another add up. Each request's start and end are recorded,
 * from which the critical path (requests made one after another) is counted (`criticalPath`).
 */
export interface S3Request {
  /** What the bench was doing when the request arrived (undefined: between client requests). */
  readonly label: string | undefined;
  /** S3 API call, e.g. "PutObject", "ListObjects (v1)". */
  readonly op: string;
  /** Signed by query (a presigned URL a client followed) rather than by the registry's own client. */
  readonly presigned: boolean;
  /** Object key (path-style, without the bucket), for traces. */
  readonly key: string;
  readonly status?: number;
  /** Body bytes sent to S3 (Content-Length, or the decoded length of an aws-chunked body). */
  readonly sentBytes: number;
  /** Body bytes S3 answered with (counted as they pass through). */
  readonly receivedBytes: number;
  /** When the request arrived at the proxy and when its answer was sent whole (ms, performance.now()). */
  readonly start: number;
  readonly end?: number;
}

/**
 * Delay per S3 request, by price class, as on AWS within a region: GET and HEAD about 10-30 ms to the
 * first byte, PUTs, POSTs and LISTs more. `jitterMs`: each delay is drawn uniformly within +-jitter.
 */
export interface LatencyModel {
  /** GetObject, HeadObject (and presigned GETs and HEADs of clients). */
  readonly readMs: number;
  /** PutObject, UploadPart, CreateMultipartUpload, CompleteMultipartUpload, CopyObject, lists. */
  readonly writeMs: number;
  /** DeleteObject, AbortMultipartUpload. */
  readonly deleteMs: number;
  readonly jitterMs: number;
}

/** The delays the realistic-latency benchmarks use (BENCHMARKS.md): 15 ms reads, 30 ms writes and lists. */
export const AWS_LIKE: LatencyModel = { readMs: 15, writeMs: 30, deleteMs: 20, jitterMs: 5 };

export function delayOf(model: LatencyModel, op: string, random: () => number): number {
  const base = /^(GetObject|HeadObject|HeadBucket)$/.test(op)
    ? model.readMs
    : /^(DeleteObject|AbortMultipartUpload)/.test(op)
      ? model.deleteMs
      : model.writeMs;
  return Math.max(0, base + (random() * 2 - 1) * model.jitterMs);
}

/**
 * The critical path of a set of S3 requests: the longest chain of requests each of which started
 * after the one before it had been answered, i.e. the most requests the caller waited for one after
 * another. (The largest set of pairwise disjoint intervals, found by taking the earliest end first.)
 */
export function criticalPath(requests: readonly S3Request[]): number {
  const done = requests.filter((r) => r.end !== undefined).sort((a, b) => a.end! - b.end!);
  let count = 0;
  let last = -Infinity;
  for (const r of done) {
    if (r.start >= last) {
      count++;
      last = r.end!;
    }
  }
  return count;
}

export class CountingProxy {
  readonly requests: S3Request[] = [];
  /** Set by the bench around each client request; every S3 request is tagged with it. */
  label: string | undefined;
  private readonly http = new LoopbackServer((req, res) => this.forward(req, res));

  /** Requests not yet answered whole. */
  private open = 0;
  private idleWaiters: (() => void)[] = [];
  private seed = 0x2545f491;

  private constructor(
    private readonly upstream: URL,
    /** Undefined: no delay (plain counting). Settable between runs. */
    public latency: LatencyModel | undefined,
  ) {}

  static async start(
    upstream: string,
    options: { latency?: LatencyModel } = {},
  ): Promise<CountingProxy & { readonly endpoint: string }> {
    const proxy = new CountingProxy(new URL(upstream), options.latency);
    return Object.assign(proxy, { endpoint: await proxy.http.listen() });
  }

  /** Resolves once no request is in flight (a registry's background writes after its answer included). */
  idle(): Promise<void> {
    if (this.open === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** A seeded generator (xorshift), so that two runs draw the same jitter. */
  private random(): number {
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed / 0x1_0000_0000;
  }

  close(): Promise<void> {
    return this.http.close();
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const length = req.headers['x-amz-decoded-content-length'] ?? req.headers['content-length'];
    const entry = {
      label: this.label,
      ...classify(req),
      sentBytes: Number(length ?? 0) || 0,
      receivedBytes: 0,
      start: performance.now(),
    } as {
      -readonly [K in keyof S3Request]: S3Request[K];
    };
    this.requests.push(entry);
    this.open++;
    let counted = true;
    const finished = () => {
      if (!counted) return;
      counted = false;
      entry.end = performance.now();
      if (--this.open === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
    res.once('finish', finished);
    res.once('close', finished);
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    const tally = (chunk: unknown) => {
      if (typeof chunk === 'string' || chunk instanceof Uint8Array)
        entry.receivedBytes += Buffer.byteLength(chunk);
    };
    res.write = ((...args: unknown[]) => (tally(args[0]), write(...args))) as typeof res.write;
    res.end = ((...args: unknown[]) => (
      typeof args[0] !== 'function' && tally(args[0]),
      end(...args)
    )) as typeof res.end;
    const forward = () => forwardRequest(this.upstream, req, res, (status) => (entry.status = status));
    if (!this.latency) return forward();
    // The body (if any) waits in the socket meanwhile, as it would on its way to a distant S3.
    setTimeout(
      forward,
      delayOf(this.latency, entry.op, () => this.random()),
    );
  }
}

/** Names the S3 call of a path-style request (`/<bucket>/<key>?<query>`). */
export function classify(
  req: IncomingMessage,
): Omit<S3Request, 'label' | 'sentBytes' | 'receivedBytes' | 'start' | 'end'> {
  const url = new URL(req.url ?? '/', 'http://s3.invalid');
  const q = url.searchParams;
  const [, , ...rest] = url.pathname.split('/');
  const objectKey = decodeURIComponent(rest.join('/'));
  // Bucket-level calls (listings) show their prefix instead.
  const key = objectKey || (q.has('prefix') ? `prefix=${q.get('prefix')}` : '');
  const presigned = q.has('X-Amz-Signature');
  const copy = req.headers['x-amz-copy-source'] !== undefined;
  const method = req.method ?? 'GET';
  const op = (() => {
    switch (method) {
      case 'HEAD':
        return objectKey ? 'HeadObject' : 'HeadBucket';
      case 'GET':
        if (q.has('list-type')) return 'ListObjectsV2';
        if (!objectKey)
          return q.has('uploads')
            ? 'ListMultipartUploads'
            : q.has('location')
              ? 'GetBucketLocation'
              : 'ListObjects (v1)';
        if (q.has('uploadId')) return 'ListParts';
        return 'GetObject';
      case 'PUT':
        if (!objectKey) return 'CreateBucket';
        if (q.has('uploadId')) return copy ? 'UploadPartCopy' : 'UploadPart';
        return copy ? 'CopyObject' : 'PutObject';
      case 'POST':
        if (q.has('uploads')) return 'CreateMultipartUpload';
        if (q.has('uploadId')) return 'CompleteMultipartUpload';
        if (q.has('delete')) return 'DeleteObjects';
        return 'POST (other)';
      case 'DELETE':
        return q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
      default:
        return `${method} (other)`;
    }
  })();
  return { op, presigned, key };
}
