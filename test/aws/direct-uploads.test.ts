import { randomFillSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileAuthStore } from '../../lib/auth/auth-store.ts';
import { addUser } from '../../lib/auth/admin.ts';
import { Browse } from '../../lib/browse/browse.ts';
import { createApp } from '../../lib/http/app.ts';
import type { HttpAuth } from '../../lib/http/context.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import type { VerificationJob } from '../../lib/registry/direct-uploads.ts';
import { SerializedHashStates } from '../../lib/registry/hashing.ts';
import { Registry } from '../../lib/registry/registry.ts';
import { S3Driver } from '../../lib/storage/s3/index.ts';
import { loadAuth } from '../../lib/setup/auth.ts';
import { errorCode, pushBlob, sha256, testRegistry } from '../http/harness.ts';
import { minioInstalled, startS3Server, testS3Client, type S3TestServer } from '../storage/s3-server.ts';
import { bucketKeys, liveSessions, multipartUploads } from './harness.ts';

const MiB = 1024 * 1024;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const bytes = (size: number): Uint8Array<ArrayBuffer> => randomFillSync(new Uint8Array(size));

interface Setup {
  registry: Registry;
  storage: S3Driver;
  prefix: string;
  request(path: string, init?: RequestInit): Promise<Response>;
}

describe('direct uploads on a store that cannot presign', () => {
  it('answers UNSUPPORTED naming the S3 store, and the session still takes a normal upload', async () => {
    const r = testRegistry();
    const start = await r.request('/v2/team/app/blobs/uploads/', { method: 'POST' });
    const id = start.headers.get('Docker-Upload-UUID')!;
    const res = await r.request(`/v2/team/app/_berth/v1/uploads/${id}/parts`, {
      method: 'POST',
      body: JSON.stringify({ parts: [1] }),
    });
    expect(res.status).toBe(405);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('UNSUPPORTED');
    expect(body.errors[0]!.message).toMatch(/need the S3 store/);
    const blob = bytes(1000);
    const put = await r.request(`${start.headers.get('Location')}?digest=${sha256(blob)}`, {
      method: 'PUT',
      body: blob,
    });
    expect(put.status).toBe(201);
  });
});

describe.skipIf(!minioInstalled && !process.env.CI)('direct uploads on S3 (MinIO)', () => {
  let server: S3TestServer;
  let s3: S3Client;
  let dir: string;
  let auth: HttpAuth;

  beforeAll(async () => {
    server = await startS3Server();
    s3 = testS3Client(server);
    dir = await mkdtemp(join(tmpdir(), 'berth-direct-'));
    const file = join(dir, 'auth.json');
    await addUser(file, 'alice', 'alice-password', ['team/*:pull,push']);
    await addUser(file, 'bob', 'bob-password', ['team/*:pull,push']);
    await addUser(file, 'reader', 'reader-password', ['team/*:pull']);
    auth = await loadAuth(new FileAuthStore(file), 300, createLogger('silent'));
  });
  afterAll(async () => {
    s3?.destroy();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function setup(
    options: {
      auth?: boolean;
      syncVerifyLimit?: number;
      ttl?: number;
      dispatch?: (j: VerificationJob) => Promise<void>;
    } = {},
  ): Setup {
    const prefix = randomUUID();
    const storage = new S3Driver({ client: s3, bucket: server.bucket, prefix });
    const registry = new Registry({
      storage,
      hashes: new SerializedHashStates(),
      limits: { maxBlobSize: 1024 * MiB, partSize: 5 * MiB, leaseMs: 60_000 },
      mountWithoutFrom: false,
      direct: {
        presignTtlSeconds: options.ttl ?? 900,
        syncVerifyLimit: options.syncVerifyLimit ?? 1024 * MiB,
        ...(options.dispatch && { dispatch: options.dispatch }),
      },
    });
    const app = createApp({
      registry,
      logger: createLogger('silent'),
      redirect: { enabled: false, ttlSeconds: 900 },
      browse: new Browse({ registry, storage }),
      ...(options.auth && { auth }),
    });
    return {
      registry,
      storage,
      prefix,
      request: async (path, init) =>
        app.request(`http://registry.test${path}`, init, { incoming: { url: path } }),
    };
  }

  async function tokenFor(r: Setup, user: string, scope = 'repository:team/app:pull,push'): Promise<string> {
    const res = await r.request(`/token?service=berth&scope=${encodeURIComponent(scope)}`, {
      headers: { Authorization: `Basic ${Buffer.from(`${user}:${user}-password`).toString('base64')}` },
    });
    return `Bearer ${((await res.json()) as { token: string }).token}`;
  }

  async function open(r: Setup, headers: Record<string, string> = {}): Promise<string> {
    const res = await r.request('/v2/team/app/blobs/uploads/', { method: 'POST', headers });
    expect(res.status).toBe(202);
    // The Location's last segment: the id, then the signed state (the session is not written yet).
    const location = res.headers.get('Location')!;
    return location.slice(location.lastIndexOf('/') + 1);
  }

  async function urls(r: Setup, id: string, parts: number[], headers: Record<string, string> = {}) {
    const res = await r.request(`/v2/team/app/_berth/v1/uploads/${id}/parts`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify({ parts }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    const body = (await res.json()) as { parts: { partNumber: number; url: string }[] };
    // The part rules the client must keep to are S3's, as the store reports them.
    expect(body).toMatchObject({ minPartSize: 5 * MiB, maxPartSize: 5 * 1024 * MiB, maxParts: 10_000 });
    return body.parts.map((p) => p.url);
  }

  /** Uploads `blob` as parts of `partSize` straight to the store; returns the session id. */
  async function upload(
    r: Setup,
    blob: Uint8Array<ArrayBuffer>,
    partSize = 5 * MiB,
    headers: Record<string, string> = {},
  ) {
    const id = await open(r, headers);
    const count = Math.max(1, Math.ceil(blob.byteLength / partSize));
    const signed = await urls(
      r,
      id,
      Array.from({ length: count }, (_, i) => i + 1),
      headers,
    );
    await Promise.all(
      signed.map(async (url, i) => {
        const res = await fetch(url, {
          method: 'PUT',
          body: blob.subarray(i * partSize, (i + 1) * partSize),
        });
        expect(res.status).toBe(200);
      }),
    );
    return id;
  }

  function complete(
    r: Setup,
    id: string,
    digest: string,
    size?: number,
    headers: Record<string, string> = {},
  ) {
    return r.request(`/v2/team/app/_berth/v1/uploads/${id}/complete`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify({ digest, ...(size !== undefined && { size }) }),
    });
  }

  async function putManifest(r: Setup, layer: string, size: number): Promise<Response> {
    const config = await pushBlob(r as never, 'team/app', new TextEncoder().encode('{}'));
    return r.request('/v2/team/app/manifests/v1', {
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size }],
      }),
    });
  }

  /** What the registry left in the bucket, besides session-independent blobs of other tests. */
  /** What an upload left in the bucket (the key that signs upload URLs is the registry's, not the upload's). */
  async function leftovers(r: Setup): Promise<string[]> {
    const keys = (await bucketKeys(s3, server.bucket, r.prefix)).filter(
      (key) => key !== 'gc/upload-state.key',
    );
    return [
      ...(await liveSessions(r.registry, keys)),
      ...(await multipartUploads(s3, server.bucket, r.prefix)),
    ];
  }

  it('publishes a blob uploaded in parts straight to S3, verified within the completing request', async () => {
    const r = setup();
    const blob = bytes(11 * MiB + 123);
    const id = await upload(r, blob);
    expect((await r.request(`/v2/team/app/blobs/${sha256(blob)}`, { method: 'HEAD' })).status).toBe(404);
    const res = await complete(r, id, sha256(blob), blob.byteLength);
    expect(res.status).toBe(201);
    expect(res.headers.get('Location')).toBe(`/v2/team/app/blobs/${sha256(blob)}`);
    expect(res.headers.get('Docker-Content-Digest')).toBe(sha256(blob));
    const get = await r.request(`/v2/team/app/blobs/${sha256(blob)}`);
    expect(get.status).toBe(200);
    expect(Buffer.from(await get.arrayBuffer()).equals(blob)).toBe(true);
    expect((await r.request(`/v2/team/app/_berth/v1/uploads/${id}`)).status).toBe(404);
    expect((await putManifest(r, sha256(blob), blob.byteLength)).status).toBe(201);
  });

  async function objectUrl(r: Setup, id: string, digest: string, size: number): Promise<Response> {
    return r.request(`/v2/team/app/_berth/v1/uploads/${id}/object`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ digest, size }),
    });
  }

  /** Asks for the session's checked PUT and sends `body` there with the headers the answer names. */
  async function putChecked(r: Setup, id: string, digest: string, body: Uint8Array<ArrayBuffer>) {
    const res = await objectUrl(r, id, digest, body.byteLength);
    expect(res.status, await res.clone().text()).toBe(200);
    const answer = (await res.json()) as { url: string; method: string; headers: Record<string, string> };
    expect(answer.method).toBe('PUT');
    const put = await fetch(answer.url, { method: 'PUT', headers: answer.headers, body });
    return { answer, put };
  }

  describe('one checked PUT of the whole blob', () => {
    it('publishes the blob without reading it back: the store checked its SHA-256', async () => {
      const r = setup();
      const blob = bytes(7 * MiB + 3);
      const id = await open(r);
      const { put } = await putChecked(r, id, sha256(blob), blob);
      expect(put.status).toBe(200);
      expect((await r.request(`/v2/team/app/blobs/${sha256(blob)}`, { method: 'HEAD' })).status).toBe(404);
      const storage = r.storage;
      const reads: string[] = [];
      const getStream = storage.getStream.bind(storage);
      storage.getStream = (key, range) => {
        reads.push(key);
        return getStream(key, range);
      };
      const res = await complete(r, id, sha256(blob), blob.byteLength);
      storage.getStream = getStream;
      expect(res.status, await res.clone().text()).toBe(201);
      expect(res.headers.get('Docker-Content-Digest')).toBe(sha256(blob));
      expect(reads.filter((key) => key.startsWith('data/'))).toEqual([]);
      const get = await r.request(`/v2/team/app/blobs/${sha256(blob)}`);
      expect(Buffer.from(await get.arrayBuffer()).equals(blob)).toBe(true);
      expect((await putManifest(r, sha256(blob), blob.byteLength)).status).toBe(201);
      expect((await r.request(`/v2/team/app/_berth/v1/uploads/${id}`)).status).toBe(404);
    });

    it('is refused by the store for other bytes or without its header, and nothing is published', async () => {
      const r = setup();
      const blob = bytes(6 * MiB);
      const other = bytes(6 * MiB);
      const id = await open(r);
      const { answer, put } = await putChecked(r, id, sha256(blob), other);
      expect(put.status).toBe(400);
      const bare = await fetch(answer.url, { method: 'PUT', body: blob });
      expect([400, 403]).toContain(bare.status);
      const early = await complete(r, id, sha256(blob), blob.byteLength);
      expect(early.status).toBe(400);
      expect(await errorCode(early)).toBe('BLOB_UPLOAD_INVALID');
      expect((await r.request(`/v2/team/app/blobs/${sha256(blob)}`, { method: 'HEAD' })).status).toBe(404);
      expect((await r.request(`/v2/team/app/blobs/${sha256(other)}`, { method: 'HEAD' })).status).toBe(404);
      // The session still takes the right bytes.
      const again = await fetch(answer.url, { method: 'PUT', headers: answer.headers, body: blob });
      expect(again.status).toBe(200);
      expect((await complete(r, id, sha256(blob), blob.byteLength)).status).toBe(201);
    });

    it('keeps one blob and one way per session', async () => {
      const r = setup();
      const blob = bytes(5 * MiB);
      const id = await open(r);
      expect((await objectUrl(r, id, sha256(blob), blob.byteLength)).status).toBe(200);
      // A fresh URL for the same blob is fine; another blob, parts or PATCH are not.
      expect((await objectUrl(r, id, sha256(blob), blob.byteLength)).status).toBe(200);
      const another = await objectUrl(r, id, sha256('another'), 7);
      expect(another.status).toBe(400);
      expect(await errorCode(another)).toBe('BLOB_UPLOAD_INVALID');
      const parts = await r.request(`/v2/team/app/_berth/v1/uploads/${id}/parts`, {
        method: 'POST',
        body: JSON.stringify({ parts: [1] }),
      });
      expect(parts.status).toBe(400);
      expect(((await parts.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(
        /one checked PUT/,
      );
      const patch = await r.request(`/v2/team/app/blobs/uploads/${id}`, { method: 'PATCH', body: bytes(10) });
      expect(patch.status).toBe(400);
      const wrong = await complete(r, id, sha256('another'));
      expect(wrong.status).toBe(400);
      const direct = await open(r);
      await urls(r, direct, [1]);
      expect((await objectUrl(r, direct, sha256(blob), blob.byteLength)).status).toBe(400);
    });

    it('refuses what one checked PUT cannot carry, with the way to send it instead', async () => {
      const r = setup();
      const id = await open(r);
      const sha512 = await objectUrl(r, id, `sha512:${'a'.repeat(128)}`, 10);
      expect(sha512.status).toBe(400);
      expect(((await sha512.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(
        /sha256 digest.*in parts/,
      );
      const huge = await objectUrl(r, id, sha256('x'), 2048 * MiB);
      expect(huge.status).toBe(413);
      expect(await errorCode(huge)).toBe('SIZE_INVALID');
      const malformed = await r.request(`/v2/team/app/_berth/v1/uploads/${id}/object`, {
        method: 'POST',
        body: JSON.stringify({ digest: sha256('x') }),
      });
      expect(malformed.status).toBe(400);
      expect(await errorCode(malformed)).toBe('BLOB_UPLOAD_INVALID');
    });

    it('removes the uploaded object when the session is cancelled', async () => {
      const r = setup();
      const blob = bytes(5 * MiB + 1);
      const id = await open(r);
      expect((await putChecked(r, id, sha256(blob), blob)).put.status).toBe(200);
      const cancel = await r.request(`/v2/team/app/blobs/uploads/${id}`, { method: 'DELETE' });
      expect(cancel.status).toBe(204);
      expect(await leftovers(r)).toEqual([]);
      expect((await bucketKeys(s3, server.bucket, r.prefix)).filter((k) => k.startsWith('data/'))).toEqual(
        [],
      );
    });
  });

  it('refuses a lying digest with DIGEST_INVALID and keeps nothing', async () => {
    const r = setup();
    const blob = bytes(6 * MiB);
    const id = await upload(r, blob);
    const lie = sha256('something else');
    const res = await complete(r, id, lie);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('DIGEST_INVALID');
    expect(await leftovers(r)).toEqual([]);
    expect((await r.request(`/v2/team/app/blobs/${lie}`, { method: 'HEAD' })).status).toBe(404);
    expect((await r.request(`/v2/team/app/blobs/${sha256(blob)}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('keeps a large blob invisible while it is verified asynchronously, then publishes it', async () => {
    const jobs: VerificationJob[] = [];
    const r = setup({ syncVerifyLimit: 1024, dispatch: async (job) => void jobs.push(job) });
    const blob = bytes(5 * MiB + 10);
    const id = await upload(r, blob);
    const res = await complete(r, id, sha256(blob));
    expect(res.status).toBe(202);
    expect(res.headers.get('Location')).toBe(`/v2/team/app/_berth/v1/uploads/${id.split('.')[0]}`);
    expect(jobs).toHaveLength(1);

    expect((await r.request(`/v2/team/app/blobs/${sha256(blob)}`, { method: 'HEAD' })).status).toBe(404);
    const early = await putManifest(r, sha256(blob), blob.byteLength);
    expect(early.status).toBe(400);
    const error = ((await early.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
    expect(error.code).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(error.message).toMatch(/still being verified/);
    const status = await r.request(`/v2/team/app/_berth/v1/uploads/${id}`);
    expect(status.status).toBe(202);
    expect(await status.json()).toMatchObject({
      status: 'verifying',
      digest: sha256(blob),
      size: blob.byteLength,
    });

    expect(await r.registry.direct.verify(jobs[0]!)).toBe('verified');
    expect((await r.request(`/v2/team/app/blobs/${sha256(blob)}`, { method: 'HEAD' })).status).toBe(200);
    expect((await putManifest(r, sha256(blob), blob.byteLength)).status).toBe(201);
    // A job that runs again (a retried invocation) finds nothing to do.
    expect(await r.registry.direct.verify(jobs[0]!)).toBe('skipped');
  });

  it('deletes a lie found by the background verifier and tells the client once', async () => {
    const r = setup({ syncVerifyLimit: 1024 });
    const blob = bytes(5 * MiB + 10);
    const id = await upload(r, blob);
    expect((await complete(r, id, sha256('not it'))).status).toBe(202);
    await r.registry.direct.settled();
    const status = await r.request(`/v2/team/app/_berth/v1/uploads/${id}`);
    expect(status.status).toBe(400);
    expect(await errorCode(status)).toBe('DIGEST_INVALID');
    expect(await leftovers(r)).toEqual([]);
  });

  it('refuses to complete with parts missing, and completes once they are there', async () => {
    const r = setup();
    const blob = bytes(10 * MiB + 5);
    const id = await open(r);
    const [one, two, three] = await urls(r, id, [1, 2, 3]);
    await fetch(one!, { method: 'PUT', body: blob.subarray(0, 5 * MiB) });
    await fetch(three!, { method: 'PUT', body: blob.subarray(10 * MiB) });
    const early = await complete(r, id, sha256(blob), blob.byteLength);
    expect(early.status).toBe(400);
    expect(((await early.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(
      /part 2 is missing/,
    );
    const open2 = await r.request(`/v2/team/app/_berth/v1/uploads/${id}`);
    expect(await open2.json()).toMatchObject({
      status: 'open',
      parts: [{ partNumber: 1 }, { partNumber: 3 }],
    });
    await fetch(two!, { method: 'PUT', body: blob.subarray(5 * MiB, 10 * MiB) });
    expect((await complete(r, id, sha256(blob), blob.byteLength)).status).toBe(201);
  });

  it('keeps direct and streamed uploads apart on one session', async () => {
    const r = setup();
    const patched = await open(r);
    await r.request(`/v2/team/app/blobs/uploads/${patched}`, { method: 'PATCH', body: bytes(100) });
    const refused = await r.request(`/v2/team/app/_berth/v1/uploads/${patched}/parts`, {
      method: 'POST',
      body: JSON.stringify({ parts: [1] }),
    });
    expect(refused.status).toBe(400);
    const direct = await open(r);
    await urls(r, direct, [1]);
    const patch = await r.request(`/v2/team/app/blobs/uploads/${direct}`, {
      method: 'PATCH',
      body: bytes(100),
    });
    expect(patch.status).toBe(400);
    expect(await errorCode(patch)).toBe('BLOB_UPLOAD_INVALID');
  });

  it('signs URLs that expire', async () => {
    const r = setup({ ttl: 1 });
    const id = await open(r);
    const [url] = await urls(r, id, [1]);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const res = await fetch(url!, { method: 'PUT', body: bytes(1000) });
    expect(res.status).toBe(403);
  });

  it('needs push permission, and binds the session to the account that opened it', async () => {
    const r = setup({ auth: true });
    const alice = { Authorization: await tokenFor(r, 'alice') };
    const bob = { Authorization: await tokenFor(r, 'bob') };
    const reader = { Authorization: await tokenFor(r, 'reader') };
    const blob = bytes(1000);
    const id = await upload(r, blob, 5 * MiB, alice);

    const anonymous = await r.request(`/v2/team/app/_berth/v1/uploads/${id}/parts`, {
      method: 'POST',
      body: JSON.stringify({ parts: [1] }),
    });
    expect(anonymous.status).toBe(401);
    const denied = await r.request(`/v2/team/app/_berth/v1/uploads/${id}/parts`, {
      method: 'POST',
      headers: reader,
      body: JSON.stringify({ parts: [1] }),
    });
    expect(denied.status).toBe(403);
    expect(await errorCode(denied)).toBe('DENIED');

    for (const res of [
      await r.request(`/v2/team/app/_berth/v1/uploads/${id}/parts`, {
        method: 'POST',
        headers: bob,
        body: JSON.stringify({ parts: [1] }),
      }),
      await complete(r, id, sha256(blob), undefined, bob),
      await r.request(`/v2/team/app/_berth/v1/uploads/${id}`, { headers: bob }),
      await r.request(`/v2/team/app/blobs/uploads/${id}`, { method: 'DELETE', headers: bob }),
    ]) {
      expect(res.status).toBe(404);
      expect(await errorCode(res)).toBe('BLOB_UPLOAD_UNKNOWN');
    }
    const done = await complete(r, id, sha256(blob), blob.byteLength, alice);
    expect(done.status).toBe(201);
  });

  it('answers a malformed request with BLOB_UPLOAD_INVALID, not a 500', async () => {
    const r = setup();
    const id = await open(r);
    for (const body of ['not json', JSON.stringify({ parts: [0] }), JSON.stringify({ parts: [] })]) {
      const res = await r.request(`/v2/team/app/_berth/v1/uploads/${id}/parts`, { method: 'POST', body });
      expect(res.status).toBe(400);
      expect(await errorCode(res)).toBe('BLOB_UPLOAD_INVALID');
    }
    const noParts = await complete(r, id, sha256('x'));
    expect(noParts.status).toBe(400);
  });
});
