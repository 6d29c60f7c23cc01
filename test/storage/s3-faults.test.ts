import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ChecksumMismatch,
  NoSuchUpload,
  PreconditionFailed,
  S3_LIMITS,
  StorageUnavailable,
  type StorageDriver,
} from '../../lib/storage/port.ts';
import { S3Driver, type S3ClientOptions } from '../../lib/storage/s3/index.ts';
import { FaultProxy } from './s3-fault-proxy.ts';
import { minioInstalled, startS3Server, testS3Client, type S3TestServer } from './s3-server.ts';

function s3Error(name: string, httpStatusCode: number): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode },
    message: name,
  });
}

const networkError = (code: string) => Object.assign(new Error(`socket: ${code}`), { code });
const timeoutError = () => Object.assign(new Error('request timed out'), { name: 'TimeoutError' });

describe('S3 failures mapped to the port (aws-sdk-client-mock: no retries, no wire)', () => {
  const client = new S3Client({
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
  });
  const s3 = mockClient(client);
  const driver = new S3Driver({ client, bucket: 'b', prefix: 'p' });
  const body = Buffer.from('x');

  beforeEach(() => s3.reset());
  afterAll(() => s3.restore());

  it.each([
    ['PreconditionFailed', 412, { ifNoneMatch: '*' as const }],
    ['ConditionalRequestConflict', 409, { ifMatch: '"e"' }],
    ['NoSuchKey', 404, { ifMatch: '"e"' }],
  ])('put: %s (%i) is a lost condition', async (name, status, options) => {
    s3.on(PutObjectCommand).rejects(s3Error(name, status));
    await expect(driver.put('k', body, options)).rejects.toBeInstanceOf(PreconditionFailed);
  });

  it.each([
    ['BadDigest', 400],
    ['XAmzContentChecksumMismatch', 400],
  ])('put: %s is a checksum mismatch', async (name, status) => {
    s3.on(PutObjectCommand).rejects(s3Error(name, status));
    await expect(driver.put('k', body, { sha256Base64: 'AAAA' })).rejects.toBeInstanceOf(ChecksumMismatch);
  });

  it.each([
    ['SlowDown 503', s3Error('SlowDown', 503)],
    ['ServiceUnavailable 503', s3Error('ServiceUnavailable', 503)],
    ['InternalError 500', s3Error('InternalError', 500)],
    ['a bare 502', s3Error('Unknown', 502)],
    ['RequestTimeout 400', s3Error('RequestTimeout', 400)],
    ['a timeout', timeoutError()],
    ['a reset connection', networkError('ECONNRESET')],
    ['a refused connection', networkError('ECONNREFUSED')],
  ])(
    'every operation: %s left after the retries is StorageUnavailable, with the cause',
    async (_, failure) => {
      s3.onAnyCommand().rejects(failure);
      const calls: (() => Promise<unknown>)[] = [
        () => driver.head('k'),
        () => driver.get('k'),
        () => driver.getStream('k', { start: 0, end: 1 }),
        () => driver.put('k', body),
        () => driver.delete('k'),
        () => driver.list(''),
        () => driver.multipart.create('k'),
        () => driver.multipart.uploadPart('k', 'u', 1, body, 1),
        () => driver.multipart.complete('k', 'u', [{ partNumber: 1, etag: '"e"', size: 1 }]),
        () => driver.multipart.abort('k', 'u'),
      ];
      for (const call of calls) {
        const err = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(StorageUnavailable);
        expect((err as Error).cause).toBe(failure);
      }
    },
  );

  it('passes other failures on as they are (configuration mistakes are not 503s)', async () => {
    const denied = s3Error('AccessDenied', 403);
    s3.onAnyCommand().rejects(denied);
    await expect(driver.put('k', body)).rejects.toBe(denied);
    await expect(driver.list('')).rejects.toBe(denied);
    await expect(driver.head('k')).rejects.toBe(denied);
  });

  it('reads a missing object as undefined', async () => {
    s3.on(HeadObjectCommand).rejects(s3Error('NotFound', 404));
    s3.on(GetObjectCommand).rejects(s3Error('NoSuchKey', 404));
    expect(await driver.head('k')).toBeUndefined();
    expect(await driver.get('k')).toBeUndefined();
    expect(await driver.getStream('k', { start: 0, end: 9 })).toBeUndefined();
  });

  it('turns InvalidRange (416) and malformed ranges into RangeError', async () => {
    s3.on(GetObjectCommand).rejects(s3Error('InvalidRange', 416));
    await expect(driver.getStream('k', { start: 10, end: 20 })).rejects.toBeInstanceOf(RangeError);
    for (const range of [
      { start: 5, end: 4 },
      { start: -1, end: 4 },
      { start: 0.5, end: 4 },
    ]) {
      await expect(driver.getStream('k', range)).rejects.toBeInstanceOf(RangeError);
    }
    // The malformed ones never reach S3, which would serve the whole object for them.
    expect(s3.commandCalls(GetObjectCommand)).toHaveLength(1);
  });

  it('maps NoSuchUpload, and aborting an upload S3 no longer knows succeeds', async () => {
    s3.on(UploadPartCommand).rejects(s3Error('NoSuchUpload', 404));
    s3.on(CompleteMultipartUploadCommand).rejects(s3Error('NoSuchUpload', 404));
    s3.on(AbortMultipartUploadCommand).rejects(s3Error('NoSuchUpload', 404));
    await expect(driver.multipart.uploadPart('k', 'u', 1, body, 1)).rejects.toBeInstanceOf(NoSuchUpload);
    await expect(
      driver.multipart.complete('k', 'u', [{ partNumber: 1, etag: '"e"', size: 1 }]),
    ).rejects.toBeInstanceOf(NoSuchUpload);
    await expect(driver.multipart.abort('k', 'u')).resolves.toBeUndefined();
  });

  it('reports a failed CompleteMultipartUpload without reading an object back', async () => {
    s3.on(CompleteMultipartUploadCommand).rejects(s3Error('InternalError', 500));
    await expect(
      driver.multipart.complete('k', 'u', [{ partNumber: 1, etag: '"e"', size: 1 }]),
    ).rejects.toBeInstanceOf(StorageUnavailable);
    expect(s3.commandCalls(HeadObjectCommand)).toHaveLength(0);
  });

  it('sends keys under the prefix and lists them without it', async () => {
    s3.on(ListObjectsV2Command).resolves({
      Contents: [{ Key: 'p/a/1' }, { Key: 'p/a/2' }],
      IsTruncated: true,
    });
    s3.on(DeleteObjectCommand).resolves({});
    expect(await driver.list('a/', { startAfter: 'a/0', limit: 2 })).toEqual({
      keys: ['a/1', 'a/2'],
      truncated: true,
    });
    expect(s3.commandCalls(ListObjectsV2Command)[0]?.args[0].input).toMatchObject({
      Bucket: 'b',
      Prefix: 'p/a/',
      StartAfter: 'p/a/0',
      MaxKeys: 2,
    });
    await driver.delete('a/1');
    expect(s3.commandCalls(DeleteObjectCommand)[0]?.args[0].input).toEqual({ Bucket: 'b', Key: 'p/a/1' });
  });
});

describe('presigned URLs, as signed (no server)', () => {
  const client = new S3Client({
    region: 'eu-west-1',
    endpoint: 'http://s3.internal:9000',
    forcePathStyle: true,
    credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
  });
  const driver = new S3Driver({ client, bucket: 'reg', prefix: 'team' });

  it('carries the response overrides, the expiry and the key under the prefix', async () => {
    const url = new URL(
      (await driver.presign('blobs/sha256/ab', {
        method: 'GET',
        expiresInSeconds: 300,
        contentType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        filename: 'layer "1".tar.gz',
      })) ?? '',
    );
    expect(url.origin).toBe('http://s3.internal:9000');
    expect(url.pathname).toBe('/reg/team/blobs/sha256/ab');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('300');
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(
      /^AKIDTEST\/\d{8}\/eu-west-1\/s3\/aws4_request$/,
    );
    expect(url.searchParams.get('response-content-type')).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(url.searchParams.get('response-content-disposition')).toBe(
      `attachment; filename="layer _1_.tar.gz"; filename*=UTF-8''layer%20%221%22.tar.gz`,
    );
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('names a non-ASCII file in UTF-8, with an ASCII fallback', async () => {
    const url = new URL(
      (await driver.presign('k', { method: 'GET', expiresInSeconds: 60, filename: 'café.tar' })) ?? '',
    );
    expect(url.searchParams.get('response-content-disposition')).toBe(
      `attachment; filename="caf_.tar"; filename*=UTF-8''caf%C3%A9.tar`,
    );
  });

  it('signs HEAD and GET apart', async () => {
    const get = new URL((await driver.presign('k', { method: 'GET', expiresInSeconds: 60 })) ?? '');
    const head = new URL((await driver.presign('k', { method: 'HEAD', expiresInSeconds: 60 })) ?? '');
    expect(head.pathname).toBe(get.pathname);
    expect(head.searchParams.get('X-Amz-Signature')).not.toBe(get.searchParams.get('X-Amz-Signature'));
  });

  it('signs for the public endpoint rather than pasting its origin onto a URL signed for another host', async () => {
    const behindProxy = new S3Driver({
      client,
      bucket: 'reg',
      publicEndpoint: 'https://registry-s3.example.com',
    });
    const url = new URL((await behindProxy.presign('k', { method: 'GET', expiresInSeconds: 60 })) ?? '');
    const internal = new URL((await driver.presign('k', { method: 'GET', expiresInSeconds: 60 })) ?? '');
    expect(url.origin).toBe('https://registry-s3.example.com');
    expect(url.pathname).toBe('/reg/k');
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(/\/eu-west-1\/s3\//);
    expect(url.searchParams.get('X-Amz-Signature')).not.toBe(internal.searchParams.get('X-Amz-Signature'));
  });

  it.each([0, -1, 1.5, 7 * 24 * 3600 + 1])('refuses an expiry of %s s', async (expiresInSeconds) => {
    await expect(driver.presign('k', { method: 'GET', expiresInSeconds })).rejects.toBeInstanceOf(RangeError);
  });
});

// The SDK's retry middleware and HTTP handler only run on the wire, so these put a fault-injecting
// proxy between a real client and MinIO.
describe.skipIf(!minioInstalled && !process.env.CI)(
  'S3 failures on the wire (MinIO behind a fault proxy)',
  () => {
    let server: S3TestServer;
    let proxy: FaultProxy & { readonly endpoint: string };
    const clients: S3Client[] = [];

    function driverVia(endpoint: string, options: Partial<S3ClientOptions> = {}): StorageDriver {
      const client = testS3Client(server, { endpoint, ...options });
      clients.push(client);
      return new S3Driver({ client, bucket: server.bucket, prefix: randomUUID() });
    }

    const isPut = (method: string, url: string) => method === 'PUT' && !url.includes('uploadId=');
    const isPartUpload = (method: string, url: string) => method === 'PUT' && url.includes('uploadId=');
    const isComplete = (method: string, url: string) => method === 'POST' && url.includes('uploadId=');

    beforeAll(async () => {
      server = await startS3Server();
      proxy = await FaultProxy.start(server.endpoint, server.clockOffsetMs);
    });
    afterEach(() => proxy.clear());
    afterAll(async () => {
      for (const client of clients) client.destroy();
      await proxy?.close();
      await server?.stop();
    });

    it('retries through a SlowDown storm and succeeds', async () => {
      const store = driverVia(proxy.endpoint, { maxAttempts: 4 });
      proxy.inject(isPut, { status: 503, code: 'SlowDown' }, 2);
      await store.put('k', Buffer.from('v'));
      expect(proxy.count('PUT')).toBe(3);
      expect(Buffer.from((await store.get('k'))?.body ?? []).toString()).toBe('v');
    });

    it('gives StorageUnavailable after maxAttempts of 503', async () => {
      const store = driverVia(proxy.endpoint, { maxAttempts: 3 });
      proxy.inject((method) => method === 'GET', { status: 503, code: 'ServiceUnavailable' });
      const err = await store.list('').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageUnavailable);
      expect((err as Error).cause).toMatchObject({
        name: 'ServiceUnavailable',
        $metadata: { httpStatusCode: 503 },
      });
      expect(proxy.count('GET')).toBe(3);
    });

    it('times out a request that gets no answer, retries it, then gives StorageUnavailable', async () => {
      const store = driverVia(proxy.endpoint, { maxAttempts: 2, timeouts: { requestMs: 300 } });
      proxy.inject((method) => method === 'HEAD', 'stall');
      const started = Date.now();
      const err = await store.head('k').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageUnavailable);
      expect((err as Error).cause).toMatchObject({ name: 'TimeoutError' });
      expect(proxy.count('HEAD')).toBe(2);
      expect(Date.now() - started).toBeLessThan(5_000);
    });

    it('retries a dropped connection', async () => {
      const store = driverVia(proxy.endpoint);
      proxy.inject(isPut, 'drop', 1);
      await store.put('k', Buffer.from('v'));
      expect(proxy.count('PUT')).toBe(2);
    });

    it('gives StorageUnavailable when nothing listens', async () => {
      const closed = await new Promise<Server>((resolve) => {
        const probe = createServer().listen(0, '127.0.0.1', () => resolve(probe));
      });
      const { port } = closed.address() as { port: number };
      await new Promise((resolve) => closed.close(resolve));
      const store = driverVia(`http://127.0.0.1:${port}`, { maxAttempts: 2 });
      await expect(store.head('k')).rejects.toBeInstanceOf(StorageUnavailable);
    });

    it('lets a streamed part take longer than requestMs while bytes flow, and stops one that stalls', async () => {
      const store = driverVia(server.endpoint, { timeouts: { requestMs: 300, idleMs: 500 } });
      const id = await store.multipart.create('data/slow');
      const part = await store.multipart.uploadPart('data/slow', id, 1, trickle(8, 100), 8 * 1024);
      expect(part.size).toBe(8 * 1024);

      const stalled = new ReadableStream<Uint8Array>({ start: (c) => c.enqueue(new Uint8Array(1024)) });
      const started = Date.now();
      const err = await store.multipart
        .uploadPart('data/slow', id, 2, stalled, 2048)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageUnavailable);
      expect((err as Error).cause).toMatchObject({ name: 'TimeoutError' });
      expect(Date.now() - started).toBeLessThan(3_000);
      await store.multipart.abort('data/slow', id);
    });

    it('survives a 500 mid-multipart: a part in memory is retried, a streamed one is reported and sent again', async () => {
      const store = driverVia(proxy.endpoint);
      const first = randomBytes(S3_LIMITS.minPartSize);
      const id = await store.multipart.create('data/u');

      proxy.inject(isPartUpload, { status: 500, code: 'InternalError' }, 1);
      const one = await store.multipart.uploadPart('data/u', id, 1, first, first.length);
      expect(proxy.count('PUT')).toBe(2);

      proxy.inject(isPartUpload, { status: 500, code: 'InternalError' }, 1);
      await expect(
        store.multipart.uploadPart('data/u', id, 2, new Blob([Buffer.from('tail')]).stream(), 4),
      ).rejects.toBeInstanceOf(StorageUnavailable);
      expect(proxy.count('PUT')).toBe(3);
      const two = await store.multipart.uploadPart(
        'data/u',
        id,
        2,
        new Blob([Buffer.from('tail')]).stream(),
        4,
      );

      await store.multipart.complete('data/u', id, [one, two]);
      expect((await store.head('data/u'))?.size).toBe(first.length + 4);
    });

    it('shows nothing when CompleteMultipartUpload fails after the parts went up', async () => {
      const store = driverVia(proxy.endpoint, { maxAttempts: 2 });
      const id = await store.multipart.create('data/c');
      const part = await store.multipart.uploadPart('data/c', id, 1, Buffer.from('bytes'), 5);
      proxy.inject(isComplete, { status: 500, code: 'InternalError' });
      await expect(store.multipart.complete('data/c', id, [part])).rejects.toBeInstanceOf(StorageUnavailable);
      expect(proxy.count('POST', 'uploadId=')).toBe(2);
      expect(await store.head('data/c')).toBeUndefined();
      expect(await store.list('')).toEqual({ keys: [], truncated: false });
      await store.multipart.abort('data/c', id);
      proxy.clear();
      await expect(store.multipart.complete('data/c', id, [part])).rejects.toBeInstanceOf(NoSuchUpload);
    });
  },
);

/** `chunks` KiB, one every `intervalMs`. */
function trickle(chunks: number, intervalMs: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent++ === chunks) return controller.close();
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      controller.enqueue(new Uint8Array(1024));
    },
  });
}
