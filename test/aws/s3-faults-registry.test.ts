import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  type CompleteMultipartUploadCommandInput,
  CreateMultipartUploadCommand,
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
import { randomFillSync, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { S3Driver } from '../../lib/storage/s3/index.ts';
import { errorCode, sha256, type TestRegistry } from '../http/harness.ts';
import { minioInstalled, startS3Server, testS3Client, type S3TestServer } from '../storage/s3-server.ts';
import { awsRegistry, bucketKeys, liveSessions, multipartUploads } from './harness.ts';

const MiB = 1024 * 1024;
const bytes = (size: number) => randomFillSync(new Uint8Array(size));

function s3Error(name: string, httpStatusCode: number): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode },
    message: `${name} (the S3 message, which clients must not see)`,
  });
}

/** What leaks an implementation detail into a client's error body. */
const LEAKS =
  /SlowDown|AccessDenied|S3 message|\bat \S+ \(|\.ts:\d+|node_modules|StorageUnavailable|HeadObject/;

interface ErrorBody {
  errors: { code: string; message: string; detail?: unknown }[];
}

// The mock stands in for the client's `send`: no SDK retries run, so each rejection is what the
// driver sees once the SDK has given up.
describe('what clients get when S3 fails (aws-sdk-client-mock)', () => {
  const client = new S3Client({
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
  });
  const s3 = mockClient(client);
  const logs: string[] = [];
  const r = awsRegistry({
    storage: new S3Driver({ client, bucket: 'b', prefix: 'p' }),
    log: (line) => logs.push(line),
  });
  const digest = sha256('a layer');

  beforeEach(() => {
    s3.reset();
    logs.length = 0;
  });
  afterAll(() => s3.restore());

  it('a persistent SlowDown on HeadObject: 503 UNAVAILABLE with a JSON error body, nothing of S3 or the stack in it', async () => {
    s3.on(HeadObjectCommand).rejects(s3Error('SlowDown', 503));
    const res = await r.request(`/v2/app/blobs/${digest}`);
    expect(res.status).toBe(503);
    expect(res.headers.get('Content-Type')).toMatch(/^application\/json/);
    const text = await res.text();
    const body = JSON.parse(text) as ErrorBody;
    expect(body).toEqual({ errors: [{ code: 'UNAVAILABLE', message: expect.any(String) }] });
    expect(text).not.toMatch(LEAKS);

    // The operator's log has the cause, under the request id the client was given; no stack there either.
    const requestId = res.headers.get('X-Request-Id');
    expect(requestId).toBeTruthy();
    const warning = logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 'warn');
    expect(warning).toMatchObject({ msg: 'storage unavailable', requestId, error: 'StorageUnavailable' });
    expect(String(warning?.errorMessage)).toMatch(/SlowDown/);
    expect(logs.join('\n')).not.toMatch(/\bat \S+ \(|\.ts:\d+/);
  });

  it('the same for HEADs (no body), and a manifest push writes nothing when it cannot check its blobs', async () => {
    s3.on(HeadObjectCommand).rejects(s3Error('SlowDown', 503));
    for (const path of [`/v2/app/blobs/${digest}`, '/v2/app/manifests/latest']) {
      const head = await r.request(path, { method: 'HEAD' });
      expect(head.status).toBe(503);
      expect(await head.text()).toBe('');
    }
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: 7 },
      layers: [],
    });
    const put = await r.request('/v2/app/manifests/latest', {
      method: 'PUT',
      headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    expect(put.status).toBe(503);
    expect(await errorCode(put)).toBe('UNAVAILABLE');
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('a failure that is not the store being unavailable (AccessDenied) is a 500 UNKNOWN that says nothing more', async () => {
    s3.on(HeadObjectCommand).rejects(s3Error('AccessDenied', 403));
    const res = await r.request(`/v2/app/blobs/${digest}`);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect((JSON.parse(text) as ErrorBody).errors[0]?.code).toBe('UNKNOWN');
    expect(text).not.toMatch(LEAKS);
  });
});

// Every command goes through to a real MinIO except CompleteMultipartUpload, which fails on demand.
describe.skipIf(!minioInstalled && !process.env.CI)(
  'a CompleteMultipartUpload that fails during PUT (MinIO behind aws-sdk-client-mock)',
  () => {
    let server: S3TestServer;
    let real: S3Client;
    const client = new S3Client({
      region: 'us-east-1',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    const s3 = mockClient(client);
    let completeFault: ((input: CompleteMultipartUploadCommandInput) => Promise<never>) | undefined;

    beforeAll(async () => {
      server = await startS3Server();
      real = testS3Client(server);
      s3.on(PutObjectCommand).callsFake((input) => real.send(new PutObjectCommand(input)));
      s3.on(GetObjectCommand).callsFake((input) => real.send(new GetObjectCommand(input)));
      s3.on(HeadObjectCommand).callsFake((input) => real.send(new HeadObjectCommand(input)));
      s3.on(DeleteObjectCommand).callsFake((input) => real.send(new DeleteObjectCommand(input)));
      s3.on(ListObjectsV2Command).callsFake((input) => real.send(new ListObjectsV2Command(input)));
      s3.on(CreateMultipartUploadCommand).callsFake((input) =>
        real.send(new CreateMultipartUploadCommand(input)),
      );
      s3.on(UploadPartCommand).callsFake((input) => real.send(new UploadPartCommand(input)));
      s3.on(AbortMultipartUploadCommand).callsFake((input) =>
        real.send(new AbortMultipartUploadCommand(input)),
      );
      s3.on(CompleteMultipartUploadCommand).callsFake((input) =>
        completeFault ? completeFault(input) : real.send(new CompleteMultipartUploadCommand(input)),
      );
    });
    beforeEach(() => (completeFault = undefined));
    afterAll(async () => {
      s3.restore();
      real?.destroy();
      await server?.stop();
    });

    function setup() {
      const prefix = randomUUID();
      const r = awsRegistry({ storage: new S3Driver({ client, bucket: server.bucket, prefix }) });
      return {
        r,
        keys: (under: string) =>
          bucketKeys(real, server.bucket, prefix).then((k) => k.filter((x) => x.startsWith(under))),
        multipart: () => multipartUploads(real, server.bucket, prefix),
      };
    }

    /** POST, then a 6 MiB chunk (a part) and a 1 MiB one (held as a tail): ready for the PUT. */
    async function startPush(r: TestRegistry, repo: string, chunks = [bytes(6 * MiB), bytes(MiB)]) {
      const start = await r.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      // Each request goes to the Location the last answer gave (it carries the session's state).
      let location = start.headers.get('Location')!;
      for (const body of chunks) {
        const res = await r.request(location, { method: 'PATCH', body });
        expect(res.status).toBe(202);
        location = res.headers.get('Location')!;
      }
      const whole = Buffer.concat(chunks);
      const digest = sha256(whole);
      return {
        chunks,
        location,
        digest,
        size: whole.byteLength,
        put: () => r.request(`${location}?digest=${digest}`, { method: 'PUT' }),
      };
    }

    async function blobStatus(r: TestRegistry, repo: string, digest: string): Promise<number> {
      return (await r.request(`/v2/${repo}/blobs/${digest}`, { method: 'HEAD' })).status;
    }

    it('S3 refused it: 503, the blob is not visible, the session keeps its offset, and the same PUT succeeds later', async () => {
      const { r, keys, multipart } = setup();
      const push = await startPush(r, 'app/retry');
      completeFault = () => Promise.reject(s3Error('InternalError', 500));

      const failed = await push.put();
      expect(failed.status).toBe(503);
      expect(await errorCode(failed)).toBe('UNAVAILABLE');
      expect(await blobStatus(r, 'app/retry', push.digest)).toBe(404);
      expect(await keys('blobs/')).toEqual([]);
      expect(await keys('repos/')).toEqual([]);
      const status = await r.request(push.location);
      expect(status.status).toBe(204);
      expect(status.headers.get('Range')).toBe(`0-${push.size - 1}`);

      completeFault = undefined;
      expect((await push.put()).status).toBe(201);
      expect(await blobStatus(r, 'app/retry', push.digest)).toBe(200);
      const pulled = await r.request(`/v2/app/retry/blobs/${push.digest}`);
      expect(sha256(new Uint8Array(await pulled.arrayBuffer()))).toBe(push.digest);
      expect(await liveSessions(r.registry, await keys('uploads/'))).toEqual([]);
      expect(await multipart()).toEqual([]);
    });

    /** S3 assembled the object, but the answer never arrived (a 500 or a dropped connection after it). */
    const lostAnswer = async (input: CompleteMultipartUploadCommandInput): Promise<never> => {
      await real.send(new CompleteMultipartUploadCommand(input));
      throw s3Error('InternalError', 500);
    };

    it('S3 completed it but the answer was lost: nothing is visible, and the client can always finish by pushing again', async () => {
      const { r } = setup();
      const push = await startPush(r, 'app/lost');
      completeFault = lostAnswer;
      const failed = await push.put();
      expect(failed.status).toBe(503);
      expect(await blobStatus(r, 'app/lost', push.digest)).toBe(404);

      // Retrying the PUT cannot complete an upload S3 no longer knows: it answers 404
      // BLOB_UPLOAD_UNKNOWN, the client's cue to start again (or 201, should the registry learn to
      // recognise the object it completed). Never a 2xx for a blob that is not there.
      completeFault = undefined;
      const retry = await push.put();
      expect([201, 404]).toContain(retry.status);
      if (retry.status === 404) expect(await errorCode(retry)).toBe('BLOB_UPLOAD_UNKNOWN');
      expect(await blobStatus(r, 'app/lost', push.digest)).toBe(retry.status === 201 ? 200 : 404);

      // Pushing the same bytes again in a new session always works.
      const again = await startPush(r, 'app/lost', push.chunks);
      expect((await again.put()).status).toBe(201);
      expect(await blobStatus(r, 'app/lost', push.digest)).toBe(200);
      const pulled = await r.request(`/v2/app/lost/blobs/${push.digest}`);
      expect(sha256(new Uint8Array(await pulled.arrayBuffer()))).toBe(push.digest);
    });

    // BUG (see the report): after a lost CompleteMultipartUpload answer the retried PUT gets
    // NoSuchUpload, the blob is never published, and the completed data object stays in data/ with
    // nothing pointing at it, while the session lingers. Flip to `it` once fixed.
    it('S3 completed it but the answer was lost: the retried PUT publishes it, and nothing is left behind', async () => {
      const { r, keys, multipart } = setup();
      const push = await startPush(r, 'app/orphan');
      completeFault = lostAnswer;
      expect((await push.put()).status).toBe(503);
      completeFault = undefined;
      expect((await push.put()).status).toBe(201);
      expect(await liveSessions(r.registry, await keys('uploads/'))).toEqual([]);
      expect(await multipart()).toEqual([]);
      expect(await keys('data/')).toHaveLength(1);
    });
  },
);
