import { describe, expect, it } from 'vitest';
import { AWS_LIKE, criticalPath, delayOf, type S3Request } from '../../bench/s3-counting-proxy.ts';

/** An S3 request seen by the proxy from `start` to `end` (ms). */
const req = (start: number, end: number | undefined, op = 'GetObject'): S3Request => ({
  label: undefined,
  op,
  presigned: false,
  key: 'k',
  sentBytes: 0,
  receivedBytes: 0,
  start,
  end,
});

describe('criticalPath', () => {
  it('is 0 for no requests', () => {
    expect(criticalPath([])).toBe(0);
  });

  it('counts requests made one after another', () => {
    expect(criticalPath([req(0, 15), req(16, 46), req(47, 62)])).toBe(3);
  });

  it('counts requests in flight together once', () => {
    // Ten existence checks sent at once: one round trip.
    const parallel = Array.from({ length: 10 }, (_, i) => req(i * 0.1, 15 + i));
    expect(criticalPath(parallel)).toBe(1);
  });

  it('takes the longest chain when parallel and sequential requests mix', () => {
    // read, then 3 checks in parallel, then 2 writes one after the other; and a slow read over it all.
    const requests = [
      req(0, 15),
      req(16, 31),
      req(16, 33),
      req(17, 30),
      req(34, 64),
      req(65, 95),
      req(0, 90, 'HeadObject'),
    ];
    expect(criticalPath(requests)).toBe(4);
  });

  it('does not depend on the order the requests are listed in', () => {
    const requests = [req(65, 95), req(0, 15), req(34, 64), req(16, 31)];
    expect(criticalPath(requests)).toBe(4);
    expect(criticalPath([...requests].reverse())).toBe(4);
  });

  it('chains a request that starts the moment the previous one ended', () => {
    expect(criticalPath([req(0, 10), req(10, 20)])).toBe(2);
  });

  it('leaves out requests still unanswered', () => {
    expect(criticalPath([req(0, 15), req(16, undefined), req(20, undefined)])).toBe(1);
  });
});

describe('delayOf', () => {
  const none = () => 0.5; // the middle of the jitter range: no jitter
  it('holds reads for the read delay', () => {
    for (const op of ['GetObject', 'HeadObject', 'HeadBucket'])
      expect(delayOf(AWS_LIKE, op, none)).toBe(AWS_LIKE.readMs);
  });

  it('holds writes and listings for the write delay', () => {
    for (const op of [
      'PutObject',
      'CopyObject',
      'UploadPart',
      'CreateMultipartUpload',
      'CompleteMultipartUpload',
      'ListObjectsV2',
      'ListObjects (v1)',
      'ListParts',
    ])
      expect(delayOf(AWS_LIKE, op, none)).toBe(AWS_LIKE.writeMs);
  });

  it('holds deletes for the delete delay', () => {
    for (const op of ['DeleteObject', 'DeleteObjects', 'AbortMultipartUpload'])
      expect(delayOf(AWS_LIKE, op, none)).toBe(AWS_LIKE.deleteMs);
  });

  it('spreads the delay over +-jitter', () => {
    expect(delayOf(AWS_LIKE, 'GetObject', () => 0)).toBe(AWS_LIKE.readMs - AWS_LIKE.jitterMs);
    expect(delayOf(AWS_LIKE, 'PutObject', () => 0.999_999)).toBeCloseTo(
      AWS_LIKE.writeMs + AWS_LIKE.jitterMs,
      3,
    );
  });

  it('never goes below zero', () => {
    const model = { readMs: 2, writeMs: 2, deleteMs: 2, jitterMs: 10 };
    expect(delayOf(model, 'GetObject', () => 0)).toBe(0);
  });
});
