import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { PreconditionFailed, StorageUnavailable } from '../../lib/storage/port.ts';
import { MAX_BUFFERED_PUT, S3Driver } from '../../lib/storage/s3/index.ts';
import { runStorageContract } from './contract.ts';
import { minioInstalled } from './s3-server.ts';
import { useS3Server } from './use-s3-server.ts';

// Developers without MinIO may skip; CI must run these (setup-s3.sh installs it there).
describe.skipIf(!minioInstalled && !process.env.CI)('S3 driver against MinIO (test/e2e/setup-s3.sh)', () => {
  const s3 = useS3Server();

  const driver = (options: { prefix?: string; publicEndpoint?: string } = {}) =>
    new S3Driver({ client: s3.client, bucket: s3.server.bucket, prefix: randomUUID(), ...options });

  // Each driver gets a prefix of its own; the server's data dir goes at the end.
  runStorageContract('s3', async () => ({ driver: driver(), cleanup: async () => {} }));

  describe('presigned URLs', () => {
    const body = randomBytes(70_000);
    let store: S3Driver;

    beforeAll(async () => {
      store = driver();
      await store.put('blobs/b', body, { contentType: 'application/octet-stream' });
    });

    it('downloads the object with GET, with the overrides as headers', async () => {
      const url = await store.presign('blobs/b', {
        method: 'GET',
        expiresInSeconds: 60,
        contentType: 'application/vnd.oci.image.layer.v1.tar',
        filename: 'layer.tar',
      });
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/vnd.oci.image.layer.v1.tar');
      expect(res.headers.get('content-disposition')).toBe(
        `attachment; filename="layer.tar"; filename*=UTF-8''layer.tar`,
      );
      expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
    });

    it('URLs after the first (signed from what the first taught) download their objects too', async () => {
      const fresh = driver();
      const objects = ['blobs/sha256/aa', 'data/x y+z', 'data/ü/1'].map((key, i) => ({
        key,
        body: randomBytes(1000 + i),
      }));
      for (const { key, body } of objects) await fresh.put(key, body);
      for (const { key, body } of objects) {
        const url = await fresh.presign(key, {
          method: 'GET',
          expiresInSeconds: 60,
          contentType: 'application/octet-stream',
        });
        const res = await fetch(url);
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
        const head = await fetch(await fresh.presign(key, { method: 'HEAD', expiresInSeconds: 60 }), {
          method: 'HEAD',
        });
        expect(head.headers.get('content-length')).toBe(String(body.length));
      }
    });

    it('answers a HEAD presign with HEAD only', async () => {
      const url = await store.presign('blobs/b', { method: 'HEAD', expiresInSeconds: 60 });
      const head = await fetch(url, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(body.length));
      expect((await fetch(url)).status).toBe(403);
    });

    it('refuses a tampered URL', async () => {
      const url = await store.presign('blobs/b', {
        method: 'GET',
        expiresInSeconds: 60,
        contentType: 'text/plain',
      });
      const tampered = [
        url.replace(
          /X-Amz-Signature=([0-9a-f])/,
          (_, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`,
        ),
        url.replace('/blobs/b?', '/blobs/c?'),
        url.replace('response-content-type=text%2Fplain', 'response-content-type=text%2Fhtml'),
        url.replace('X-Amz-Expires=60', 'X-Amz-Expires=600'),
      ];
      for (const forged of tampered) {
        expect(forged).not.toBe(url);
        expect((await fetch(forged)).status).toBe(403);
      }
    });

    it('signs for a public endpoint that reaches the same server under another host name', async () => {
      const publicEndpoint = s3.server.endpoint.replace('127.0.0.1', 'localhost');
      const behind = driver({ prefix: '', publicEndpoint });
      await behind.put('pub', Buffer.from('public'));
      const url = await behind.presign('pub', { method: 'GET', expiresInSeconds: 60 });
      expect(new URL(url).origin).toBe(publicEndpoint);
      expect(await (await fetch(url)).text()).toBe('public');
      // The naive way, pasting the public origin onto a URL signed for the internal one, is refused.
      const internal = await driver({ prefix: '' }).presign('pub', { method: 'GET', expiresInSeconds: 60 });
      expect((await fetch(internal.replace(s3.server.endpoint, publicEndpoint))).status).toBe(403);
    });
  });

  describe('checked PUTs and the SHA-256 S3 keeps', () => {
    const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('base64');

    it('takes only the bytes the URL was signed for, and reports their SHA-256 afterwards', async () => {
      const store = driver();
      const body = randomBytes(100_000);
      const { url, headers } = await store.direct.presignChecked('data/x', sha(body), 60);
      const query = new URL(url).searchParams;
      expect([...query.keys()].filter((k) => /checksum/i.test(k))).toEqual([]);
      expect(query.get('X-Amz-SignedHeaders')?.split(';')).toContain('x-amz-checksum-sha256');
      const other = randomBytes(100_000);
      expect((await fetch(url, { method: 'PUT', headers, body: other })).status).toBe(400);
      expect([400, 403]).toContain((await fetch(url, { method: 'PUT', body: other })).status);
      const forged = { 'x-amz-checksum-sha256': sha(other) };
      expect((await fetch(url, { method: 'PUT', headers: forged, body: other })).status).toBe(403);
      expect(await store.direct.storedSha256('data/x')).toBeUndefined();
      expect((await fetch(url, { method: 'PUT', headers, body })).status).toBe(200);
      expect(await store.direct.storedSha256('data/x')).toEqual({
        size: body.byteLength,
        sha256Base64: sha(body),
      });
    });

    it("reports no SHA-256 for a completed multipart upload's object (only its parts were summed)", async () => {
      const store = driver();
      const id = await store.multipart.create('data/m');
      const part = randomBytes(5 * 1024 * 1024);
      const one = await store.multipart.uploadPart('data/m', id, 1, part, part.byteLength);
      const two = await store.multipart.uploadPart('data/m', id, 2, Buffer.from('end'), 3);
      await store.multipart.complete('data/m', id, [one, two]);
      const stored = await store.direct.storedSha256('data/m');
      expect(stored).toEqual({ size: part.byteLength + 3 });
    });

    it("does not take a multipart object's SHA-256 of its parts' SHA-256s for the body's", async () => {
      // A client (not the registry) could make one: a checksum of checksums, "<base64>-<parts>".
      const prefix = randomUUID();
      const store = driver({ prefix });
      const Key = `${prefix}/data/c`;
      const Bucket = s3.server.bucket;
      const { UploadId } = await s3.client.send(
        new CreateMultipartUploadCommand({ Bucket, Key, ChecksumAlgorithm: 'SHA256' }),
      );
      const body = randomBytes(1000);
      const part = await s3.client.send(
        new UploadPartCommand({
          Bucket,
          Key,
          UploadId,
          PartNumber: 1,
          Body: body,
          ChecksumSHA256: sha(body),
        }),
      );
      await s3.client.send(
        new CompleteMultipartUploadCommand({
          Bucket,
          Key,
          UploadId,
          MultipartUpload: {
            Parts: [{ PartNumber: 1, ETag: part.ETag, ChecksumSHA256: part.ChecksumSHA256 }],
          },
        }),
      );
      const head = await s3.client.send(new HeadObjectCommand({ Bucket, Key, ChecksumMode: 'ENABLED' }));
      // The server kept a checksum, and it is not the body's...
      expect(head.ChecksumSHA256).toBeDefined();
      expect(head.ChecksumSHA256).not.toBe(sha(body));
      // ...so the store reports none.
      expect(await store.direct.storedSha256('data/c')).toEqual({ size: body.byteLength });
    });
  });

  describe('keys under a prefix', () => {
    it('keeps drivers with different prefixes apart, and names keys without the prefix', async () => {
      const prefix = randomUUID();
      const a = driver({ prefix: `${prefix}/a` });
      const b = driver({ prefix: `${prefix}/b/` });
      await a.put('k', Buffer.from('a'));
      await b.put('k', Buffer.from('b'));
      expect((await a.list('')).keys).toEqual(['k']);
      expect(Buffer.from((await b.get('k'))?.body ?? []).toString()).toBe('b');
      expect((await driver({ prefix }).list('')).keys).toEqual(['a/k', 'b/k']);
      await a.delete('k');
      expect(await b.head('k')).toBeDefined();
    });
  });

  describe('bodies', () => {
    it(`refuses a put stream over ${MAX_BUFFERED_PUT} bytes and writes nothing`, async () => {
      const store = driver();
      const chunk = new Uint8Array(1024 * 1024);
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      await expect(store.put('big', stream)).rejects.toBeInstanceOf(RangeError);
      expect(sent).toBeLessThanOrEqual(MAX_BUFFERED_PUT + 2 * chunk.length);
      expect(await store.head('big')).toBeUndefined();
    });

    it('ends a part upload at once when its stream fails', async () => {
      const store = driver();
      const id = await store.multipart.create('data/x');
      const failure = new Error('sender went away');
      let pulls = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (++pulls > 3) return controller.error(failure);
          controller.enqueue(new Uint8Array(64 * 1024));
        },
      });
      const started = Date.now();
      await expect(store.multipart.uploadPart('data/x', id, 1, stream, 1024 * 1024)).rejects.toBe(failure);
      expect(Date.now() - started).toBeLessThan(2_000);
      await store.multipart.abort('data/x', id);
    });

    it('refuses a range that starts beyond the object', async () => {
      const store = driver();
      await store.put('r', Buffer.from('0123456789'));
      await expect(store.getStream('r', { start: 10, end: 20 })).rejects.toBeInstanceOf(RangeError);
      await store.put('empty', new Uint8Array(0));
      await expect(store.getStream('empty', { start: 0, end: 0 })).rejects.toBeInstanceOf(RangeError);
    });
  });

  it('reports a missing bucket as it is, not as unavailable or missing objects', async () => {
    const store = new S3Driver({ client: s3.client, bucket: 'no-such-bucket' });
    const err = await store.put('k', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'NoSuchBucket' });
    expect(err).not.toBeInstanceOf(StorageUnavailable);
    expect(err).not.toBeInstanceOf(PreconditionFailed);
  });
});
