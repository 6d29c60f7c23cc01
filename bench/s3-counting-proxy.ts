import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer, forwardRequest } from '../test/storage/loopback-server.ts';

/**
 * A pass-through HTTP proxy in front of MinIO that records every S3 request it forwards, named after
 * the S3 API call (from method, query and headers). The registry's S3 endpoint is the proxy's own
 * address and the Host header is passed on unchanged, so SigV4 signatures made for the proxy's host
 * (including those of presigned URLs handed to clients) still verify at MinIO.
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
}

export class CountingProxy {
  readonly requests: S3Request[] = [];
  /** Set by the bench around each client request; every S3 request is tagged with it. */
  label: string | undefined;
  private readonly http = new LoopbackServer((req, res) => this.forward(req, res));

  private constructor(private readonly upstream: URL) {}

  static async start(upstream: string): Promise<CountingProxy & { readonly endpoint: string }> {
    const proxy = new CountingProxy(new URL(upstream));
    return Object.assign(proxy, { endpoint: await proxy.http.listen() });
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
    } as {
      -readonly [K in keyof S3Request]: S3Request[K];
    };
    this.requests.push(entry);
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
    forwardRequest(this.upstream, req, res, (status) => (entry.status = status));
  }
}

/** Names the S3 call of a path-style request (`/<bucket>/<key>?<query>`). */
export function classify(req: IncomingMessage): Omit<S3Request, 'label' | 'sentBytes' | 'receivedBytes'> {
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
