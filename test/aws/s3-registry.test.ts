import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { randomFillSync, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Driver } from '../../lib/storage/s3/index.ts';
import { errorCode, imageManifest, sha256, type TestRegistry } from '../http/harness.ts';
import { minioInstalled, startS3Server, testS3Client, type S3TestServer } from '../storage/s3-server.ts';
import { awsRegistry, bucketKeys, liveSessions, multipartUploads, type AwsTestOptions } from './harness.ts';
import { byCommand, bytesReceived, bytesSent, S3Meter, type S3Call } from './s3-meter.ts';
import { gc } from '../gc/harness.ts';
import { nextStoreSecond } from '../fsck/harness.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** S3's smallest non-last part: what a request's remainder must reach to go up as a part. */
const MIN_PART = 5 * MiB;

const bytes = (size: number) => randomFillSync(new Uint8Array(size));
/** A call on blob data rather than on upload session state (uploads/: the session and its tail). */
/** Tails are the few bytes short of a part (`data/<id>.tail-<n>`), not the blob's data. */
const isTail = (call: S3Call) => /^data\/[0-9a-f-]+\.tail-\d+(-[0-9a-f]+)?$/.test(call.key ?? '');
/** A read of blob data: not of session state, not of a tail. */
const isData = (call: S3Call) =>
  !call.key?.startsWith('uploads/') && !isTail(call) && call.key !== 'gc/upload-state.key';
const copies = (calls: readonly S3Call[]) =>
  calls.filter((c) => c.command === 'CopyObject' || c.command === 'UploadPartCopy');

/** Measured calls per operation, printed at the end with BERTH_S3_CALLS=1 (for BENCHMARKS.md). */
const table: string[] = [];
function record(operation: string, calls: readonly S3Call[]): void {
  const counts = Object.entries(byCommand(calls))
    .map(([command, n]) => `${command} ${n}`)
    .join(', ');
  table.push(
    `| ${operation} | ${calls.length} | ${counts} | ${bytesSent(calls)} | ${bytesReceived(calls)} |`,
  );
}

// Developers without MinIO may skip; CI must run these (setup-s3.sh installs it there).
describe.skipIf(!minioInstalled && !process.env.CI)('the registry on S3 (MinIO), S3 calls counted', () => {
  let server: S3TestServer;
  /** Uncounted: reads the bucket behind the registry's back. */
  let inspect: S3Client;
  const clients: S3Client[] = [];

  beforeAll(async () => {
    server = await startS3Server();
    inspect = client();
  });
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await server?.stop();
    if (process.env.BERTH_S3_CALLS) {
      console.log(['| operation | calls | by command | bytes sent | bytes received |', ...table].join('\n'));
    }
  });

  function client(): S3Client {
    const c = testS3Client(server);
    clients.push(c);
    return c;
  }

  /** A registry on its own prefix of the bucket (or on `prefix`, to share one), with a meter. */
  function setup(options: Omit<AwsTestOptions, 'storage'> & { prefix?: string } = {}) {
    const prefix = options.prefix ?? randomUUID();
    const s3 = client();
    const meter = new S3Meter(s3, prefix);
    const r = awsRegistry({
      ...options,
      storage: new S3Driver({ client: s3, bucket: server.bucket, prefix }),
    });
    return {
      r,
      meter,
      prefix,
      // The key that signs upload URLs (gc/upload-state.key) is the registry's, not any upload's.
      keys: (under = '') =>
        bucketKeys(inspect, server.bucket, prefix).then((k) =>
          k.filter((x) => x.startsWith(under) && x !== 'gc/upload-state.key'),
        ),
      multipart: () => multipartUploads(inspect, server.bucket, prefix),
    };
  }

  /** Docker's way: POST, one PATCH with the whole body (chunked: no Content-Length), PUT ?digest=. */
  async function dockerPush(r: TestRegistry, meter: S3Meter, repo: string, body: Uint8Array<ArrayBuffer>) {
    const digest = sha256(body);
    const post = await meter.measure(() => r.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' }));
    expect(post.result.status).toBe(202);
    const location = post.result.headers.get('Location')!;
    const patch = await meter.measure(() => r.request(location, { method: 'PATCH', body }));
    expect(patch.result.status).toBe(202);
    expect(patch.result.headers.get('Range')).toBe(`0-${body.byteLength - 1}`);
    const put = await meter.measure(() => r.request(`${location}?digest=${digest}`, { method: 'PUT' }));
    expect(put.result.status, await put.result.clone().text()).toBe(201);
    return { digest, post: post.calls, patch: patch.calls, put: put.calls };
  }

  /** OCI chunked upload: PATCHes with Content-Range and Content-Length, then PUT ?digest=. */
  async function chunkedPush(r: TestRegistry, repo: string, chunks: Uint8Array<ArrayBuffer>[]) {
    const start = await r.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    expect(start.status).toBe(202);
    const location = start.headers.get('Location')!;
    let offset = 0;
    for (const chunk of chunks) {
      const end = offset + chunk.byteLength - 1;
      const res = await r.request(location, {
        method: 'PATCH',
        headers: { 'Content-Range': `${offset}-${end}`, 'Content-Length': String(chunk.byteLength) },
        body: chunk,
      });
      expect(res.status, await res.clone().text()).toBe(202);
      expect(res.headers.get('Range')).toBe(`0-${end}`);
      offset = end + 1;
    }
    const whole = Buffer.concat(chunks);
    return r.request(`${location}?digest=${sha256(whole)}`, { method: 'PUT' });
  }

  /** GETs a blob through the registry; answers the digest of what came back. */
  async function pull(r: TestRegistry, repo: string, digest: string): Promise<string> {
    const res = await r.request(`/v2/${repo}/blobs/${digest}`);
    expect(res.status).toBe(200);
    return sha256(new Uint8Array(await res.arrayBuffer()));
  }

  describe('completing an upload costs O(1) in the blob size', () => {
    it('docker-style push: the bytes go up once, no copy, no read-back, and the PUT makes the same few calls at 12 and 40 MiB', async () => {
      const { r, meter } = setup();
      const puts: Record<number, readonly S3Call[]> = {};
      for (const mib of [12, 40]) {
        const body = bytes(mib * MiB);
        const push = await dockerPush(r, meter, 'app/layers', body);
        const all = [...push.post, ...push.patch, ...push.put];
        record(`docker-style push, ${mib} MiB (POST + PATCH + PUT)`, all);
        record(`  of which the PUT ?digest=, ${mib} MiB`, push.put);

        // Exactly the blob's bytes go up as parts; the rest is session state and the link.
        const parts = all.filter((c) => c.command === 'UploadPart');
        expect(bytesSent(parts)).toBe(body.byteLength);
        expect(bytesSent(all)).toBeLessThan(body.byteLength + 16 * KiB);
        // Nothing copied server-side, and the data is never read back: the only reads are of the
        // session state object, a few hundred bytes.
        expect(copies(all)).toEqual([]);
        expect(push.put.filter((c) => c.command === 'GetObject' && isData(c))).toEqual([]);
        expect(bytesReceived(all)).toBeLessThan(4 * KiB);
        expect(push.put.some((c) => c.command === 'UploadPart')).toBe(false);
        expect(await pull(r, 'app/layers', push.digest)).toBe(push.digest);
        puts[mib] = push.put;
      }
      expect(byCommand(puts[12]!)).toEqual(byCommand(puts[40]!));
      expect(puts[40]!.length).toBeLessThanOrEqual(8);
    });

    it('a remainder under 5 MiB is held as a tail object: the PUT sends it as the last part, from memory in the process that wrote it, a cost bounded by 5 MiB', async () => {
      const { r, meter } = setup();
      // 16 + 16 + 2 MiB: the last 2 MiB cannot go up as a non-last part, so they wait in a tail.
      const body = bytes(34 * MiB);
      const push = await dockerPush(r, meter, 'app/tail', body);
      const all = [...push.post, ...push.patch, ...push.put];
      record('docker-style push, 34 MiB (16+16+2: 2 MiB tail)', all);
      record('  of which the PUT ?digest=, 34 MiB', push.put);
      const tail = 2 * MiB;
      expect(bytesSent(all.filter((c) => c.command === 'UploadPart'))).toBe(body.byteLength);
      expect(bytesSent(all)).toBeLessThan(body.byteLength + tail + 16 * KiB);
      expect(copies(all)).toEqual([]);
      const reads = push.put.filter((c) => c.command === 'GetObject');
      expect(reads.every((c) => c.key?.startsWith('uploads/') || isTail(c))).toBe(true);
      expect(bytesReceived(push.put)).toBeLessThan(tail + 4 * KiB);
      // Against a push with no tail: the tail's UploadPart and its DELETE. The tail's bytes come from
      // this process's memory (it wrote them); another process would read them back once.
      const even = await dockerPush(r, meter, 'app/tail', bytes(32 * MiB));
      const extra = byCommand(push.put);
      for (const [command, n] of Object.entries(byCommand(even.put)))
        extra[command] = (extra[command] ?? 0) - n;
      expect(Object.fromEntries(Object.entries(extra).filter(([, n]) => n !== 0))).toEqual({
        UploadPart: 1,
        DeleteObject: 1,
      });
      expect(await pull(r, 'app/tail', push.digest)).toBe(push.digest);
    });
  });

  it('a docker-style push of a 1 MiB layer: its bytes go up once, in the PATCH, and the PUT moves none', async () => {
    const { r, meter } = setup();
    const body = bytes(MiB);
    const push = await dockerPush(r, meter, 'app/small', body);
    record('docker-style push, 1 MiB (POST + PATCH + PUT)', [...push.post, ...push.patch, ...push.put]);
    record('  of which the PUT ?digest=, 1 MiB', push.put);
    // The PATCH writes the bytes as the session's tail; the PUT makes that object the blob's data.
    expect(push.patch.filter((c) => c.sent >= body.byteLength).map((c) => c.command)).toEqual(['PutObject']);
    expect(bytesSent(push.put)).toBeLessThan(4 * KiB);
    expect(bytesReceived(push.put)).toBeLessThan(4 * KiB);
    expect(copies(push.put)).toEqual([]);
    expect(await pull(r, 'app/small', push.digest)).toBe(push.digest);
  });

  it('a monolithic push of 1 MiB is one checksummed PutObject of the data, plus the link', async () => {
    const { r, meter, prefix } = setup();
    const body = bytes(MiB);
    const digest = sha256(body);
    const base64 = Buffer.from(digest.slice('sha256:'.length), 'hex').toString('base64');
    const { result: res, calls } = await meter.measure(() =>
      r.request(`/v2/app/mono/blobs/uploads/?digest=${digest}`, {
        method: 'POST',
        headers: { 'Content-Length': String(body.byteLength) },
        body,
      }),
    );
    expect(res.status).toBe(201);
    record('monolithic push, 1 MiB (POST ?digest= with Content-Length)', calls);
    const data = calls.filter((c) => c.sent > 0);
    expect(data).toHaveLength(1);
    expect(data[0]).toMatchObject({
      command: 'PutObject',
      key: `blobs/${digest.replace(':', '/')}`,
      sent: body.byteLength,
      input: { ChecksumSHA256: base64, IfNoneMatch: '*' },
    });
    expect(byCommand(calls)).toEqual({ PutObject: 2 });
    // S3 verified and kept the checksum.
    const head = await inspect.send(
      new HeadObjectCommand({
        Bucket: server.bucket,
        Key: `${prefix}/blobs/${digest.replace(':', '/')}`,
        ChecksumMode: 'ENABLED',
      }),
    );
    expect(head.ChecksumSHA256).toBe(base64);
    expect(await pull(r, 'app/mono', digest)).toBe(digest);
  });

  it('a layer pushed to two repositories is stored once, and both serve it', async () => {
    const { r, meter, keys } = setup();
    const layer = bytes(6 * MiB);
    const first = await dockerPush(r, meter, 'team/a', layer);
    const second = await dockerPush(r, meter, 'team/b', layer);
    expect(second.digest).toBe(first.digest);
    expect(await keys('blobs/')).toEqual([`blobs/${first.digest.replace(':', '/')}`]);
    expect(await keys('data/')).toHaveLength(1);
    expect(await liveSessions(r.registry, await keys('uploads/'))).toEqual([]);
    for (const repo of ['team/a', 'team/b']) {
      expect(await keys(`repos/${repo}/_layers/`)).toHaveLength(1);
      expect(await pull(r, repo, first.digest)).toBe(first.digest);
    }
  });

  it('pull path: manifest by tag or digest and blob HEAD are one S3 call each; blob GET is one HEAD and a presigned 307; none for a blob this process linked', async () => {
    const { r, meter, prefix } = setup({ redirect: true });
    const repo = 'app/pull';
    const config = new TextEncoder().encode('{"architecture":"amd64","os":"linux"}');
    const configPush = await meter.measure(() =>
      r.request(`/v2/${repo}/blobs/uploads/?digest=${sha256(config)}`, {
        method: 'POST',
        headers: { 'Content-Length': String(config.byteLength) },
        body: config,
      }),
    );
    expect(configPush.result.status).toBe(201);
    const layers = [bytes(6 * MiB), bytes(300 * KiB)];
    const layerDigests: string[] = [];
    for (const layer of layers) layerDigests.push((await dockerPush(r, meter, repo, layer)).digest);
    const manifest = imageManifest(config, layers);
    const manifestDigest = sha256(manifest);
    const put = await meter.measure(() =>
      r.request(`/v2/${repo}/manifests/v1`, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
        body: manifest,
      }),
    );
    expect(put.result.status).toBe(201);
    record('manifest PUT by tag (config + 2 layers)', put.calls);
    // No HEAD of the blobs' links: this process wrote them when the uploads completed, and counts
    // them as facts (lib/registry/immutable-facts.ts); the manifest and the catalog entry, with the
    // config's bytes read for the tag's summary; the tag, with its summary; then one HEAD of the
    // manifest after the tag (a DELETE racing the push must not leave the tag naming nothing)
    // (docs/architecture.md, "The manifest PUT's critical path").
    expect(byCommand(put.calls)).toEqual({ HeadObject: 1, GetObject: 1, PutObject: 3 });

    const one = async (operation: string, path: string, method: 'GET' | 'HEAD', command: string) => {
      const { result: res, calls } = await meter.measure(() => r.request(path, { method }));
      record(operation, calls);
      expect(calls.map((c) => c.command)).toEqual([command]);
      return res;
    };
    for (const ref of ['v1', manifestDigest]) {
      const by = ref === 'v1' ? 'tag' : 'digest';
      const get = await one(`manifest GET by ${by}`, `/v2/${repo}/manifests/${ref}`, 'GET', 'GetObject');
      expect(get.status).toBe(200);
      expect(get.headers.get('Docker-Content-Digest')).toBe(manifestDigest);
      expect(Buffer.from(await get.arrayBuffer())).toEqual(Buffer.from(manifest));
      const head = await one(`manifest HEAD by ${by}`, `/v2/${repo}/manifests/${ref}`, 'HEAD', 'HeadObject');
      expect(head.status).toBe(200);
      expect(head.headers.get('Docker-Content-Digest')).toBe(manifestDigest);
      expect(head.headers.get('Content-Length')).toBe(String(manifest.byteLength));
    }

    const layer = layers[0]!;
    const blobPath = `/v2/${repo}/blobs/${layerDigests[0]}`;
    // This process wrote the link when the upload completed: a blob HEAD or GET uses that fact
    // (lib/http/routes/blobs.ts) and asks S3 nothing; the GET's presigning is no S3 call either.
    for (const method of ['HEAD', 'GET'] as const) {
      const { result: res, calls } = await meter.measure(() => r.request(blobPath, { method }));
      record(`blob ${method} of a blob this process linked`, calls);
      expect(calls).toEqual([]);
      expect(res.status).toBe(method === 'HEAD' ? 200 : 307);
    }
    // Another process on the same bucket (another Lambda container) reads the link: one HEAD.
    const other = setup({ redirect: true, prefix });
    const head = await other.meter.measure(() => other.r.request(blobPath, { method: 'HEAD' }));
    record('blob HEAD', head.calls);
    expect(head.calls.map((c) => c.command)).toEqual(['HeadObject']);
    expect(head.result.status).toBe(200);
    expect(head.result.headers.get('Content-Length')).toBe(String(layer.byteLength));

    const cold = setup({ redirect: true, prefix });
    const presignedBefore = cold.meter.presigned;
    const { result: get, calls: getCalls } = await cold.meter.measure(() => cold.r.request(blobPath));
    record('blob GET, redirect on (+ presign, no S3 call)', getCalls);
    expect(getCalls.map((c) => c.command)).toEqual(['HeadObject']);
    expect(cold.meter.presigned - presignedBefore).toBe(1);
    expect(get.status).toBe(307);
    expect(get.headers.get('Docker-Content-Digest')).toBe(layerDigests[0]);
    const location = get.headers.get('Location')!;
    expect(location.startsWith(`${server.endpoint}/${server.bucket}/${prefix}/data/`)).toBe(true);
    const download = await fetch(location);
    expect(download.status).toBe(200);
    expect(sha256(new Uint8Array(await download.arrayBuffer()))).toBe(layerDigests[0]);
    const ranged = await fetch(location, { headers: { Range: 'bytes=5242000-5243999' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('Content-Range')).toBe(`bytes 5242000-5243999/${layer.byteLength}`);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(layer.subarray(5242000, 5244000))).toBe(true);

    // The same registry with redirects off streams the bytes through: one HEAD and one GET.
    const through = setup({ prefix });
    const streamed = await through.meter.measure(() => pull(through.r, repo, layerDigests[0]!));
    expect(streamed.result).toBe(layerDigests[0]);
    record('blob GET, redirect off (streamed through)', streamed.calls);
    expect(streamed.calls.map((c) => c.command)).toEqual(['HeadObject', 'GetObject']);
  });

  describe('chunks under 5 MiB are joined on S3', () => {
    it.each([
      ['7 chunks of 1 MiB and one of 3 bytes', [...Array<number>(7).fill(MiB), 3]],
      ['the conformance sizes, 22 and 20 bytes', [22, 20]],
      ['a single 1-byte chunk', [1]],
    ])('%s: the right blob, nothing left after a collection', async (name, sizes) => {
      const { r, meter, keys, multipart, prefix } = setup();
      const chunks = sizes.map(bytes);
      const whole = Buffer.concat(chunks);
      const { result: put, calls } = await meter.measure(() => chunkedPush(r, 'app/chunks', chunks));
      expect(put.status, await put.clone().text()).toBe(201);
      record(`chunked push: ${name} (all requests)`, calls);
      expect(copies(calls)).toEqual([]);
      const digest = sha256(whole);
      expect(await pull(r, 'app/chunks', digest)).toBe(digest);
      expect(await liveSessions(r.registry, await keys('uploads/'))).toEqual([]);
      expect(await multipart()).toEqual([]);
      // The tails of the earlier chunks each held the whole upload when written: a completion racing
      // the next chunk may have made one a blob's data, so they are left to garbage collection
      // (docs/architecture.md, "Completion without a claim"), which removes them and keeps the blob.
      const earlier = sizes
        .slice(0, -1)
        .filter((_, i) => sizes.slice(0, i + 1).reduce((a, b) => a + b) < MIN_PART);
      expect((await keys('data/')).filter((key) => key.includes('.tail-'))).toHaveLength(
        earlier.length + (whole.byteLength >= MIN_PART ? 0 : 1),
      );
      await nextStoreSecond(r.storage);
      // As once the tails are older than the orphan minimum age (MinIO's clock cannot be moved).
      await gc(r, { uploadTtlMs: 0, graceMs: 3600_000, orphanMinAgeMs: 0 });
      expect(await pull(r, 'app/chunks', digest)).toBe(digest);
      const data = await keys('data/');
      if (whole.byteLength >= MIN_PART) {
        // Two parts: the first five 1 MiB chunks joined, then the rest.
        expect(data).toHaveLength(1);
        const head = await inspect.send(
          new HeadObjectCommand({ Bucket: server.bucket, Key: `${prefix}/${data[0]}` }),
        );
        expect(head.ContentLength).toBe(whole.byteLength);
        expect(head.ETag).toMatch(/-2"$/);
      } else {
        // Never reached a part: the last tail is the blob's data, as it is; the blob key points at it.
        expect(data).toEqual([expect.stringMatching(/^data\/[0-9a-f-]+\.tail-\d+(-[0-9a-f]+)?$/)]);
        expect(await keys('blobs/')).toEqual([`blobs/${digest.replace(':', '/')}`]);
        const pointer = await inspect.send(
          new HeadObjectCommand({
            Bucket: server.bucket,
            Key: `${prefix}/blobs/${digest.replace(':', '/')}`,
          }),
        );
        expect(pointer.Metadata?.['data-key']).toBe(data[0]);
      }
    });
  });

  it('two PATCHes racing on one session: S3 refuses the second conditional write, one 202 and one 416, the blob intact', async () => {
    const { r, meter, keys } = setup();
    const start = await r.request('/v2/app/race/blobs/uploads/', { method: 'POST' });
    const location = start.headers.get('Location')!;
    const session = `uploads/${start.headers.get('Docker-Upload-UUID')}.json`;
    // Both requests have read the session before either claims it: both claims carry If-Match with
    // the same ETag, and S3 itself decides which wins.
    const held: (() => void)[] = [];
    meter.gate = (call) =>
      call.command !== 'PutObject' || call.key !== session
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            held.push(resolve);
            if (held.length === 2) {
              meter.gate = undefined;
              for (const release of held) release();
            }
          });
    const bodies = [bytes(MiB), bytes(MiB)];
    const mark = meter.mark();
    const answers = await Promise.all(
      bodies.map((body) =>
        r.request(location, {
          method: 'PATCH',
          headers: { 'Content-Range': `0-${MiB - 1}`, 'Content-Length': String(MiB) },
          body,
        }),
      ),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([202, 416]);
    // The two claims went to S3 with the same If-Match: one written, one refused with 412.
    const writes = meter.since(mark).filter((c) => c.command === 'PutObject' && c.key === session);
    const claims = writes.filter((c) => c.input.IfMatch === writes[0]?.input.IfMatch);
    expect(claims.map((c) => c.status).sort()).toEqual([200, 412]);
    const loser = answers.find((a) => a.status === 416)!;
    expect(await errorCode(loser)).toBe('BLOB_UPLOAD_INVALID');

    const winner = bodies[answers.findIndex((a) => a.status === 202)]!;
    const put = await r.request(`${location}?digest=${sha256(winner)}`, { method: 'PUT' });
    expect(put.status).toBe(201);
    expect(await pull(r, 'app/race', sha256(winner))).toBe(sha256(winner));
    expect(await liveSessions(r.registry, await keys('uploads/'))).toEqual([]);
  });

  describe('a wrong digest leaves nothing in the bucket', () => {
    const nothing = async ({ r, keys, multipart }: ReturnType<typeof setup>) => {
      expect(await liveSessions(r.registry, await keys())).toEqual([]);
      expect(await multipart()).toEqual([]);
    };

    it('after chunks that made a part and a tail', async () => {
      const env = setup();
      const start = await env.r.request('/v2/app/bad/blobs/uploads/', { method: 'POST' });
      // Each request goes to the Location the last answer gave (it carries the session's state).
      let location = start.headers.get('Location')!;
      for (const body of [bytes(6 * MiB), bytes(MiB)]) {
        const res = await env.r.request(location, { method: 'PATCH', body });
        expect(res.status).toBe(202);
        location = res.headers.get('Location')!;
      }
      // The helpers see what is there: the session, its tail, the multipart upload.
      expect(await env.keys('uploads/')).toHaveLength(1);
      expect(await env.keys('data/')).toHaveLength(1);
      expect(await env.multipart()).toHaveLength(1);
      const put = await env.r.request(`${location}?digest=${sha256('something else')}`, { method: 'PUT' });
      expect(put.status).toBe(400);
      expect(await errorCode(put)).toBe('DIGEST_INVALID');
      await nothing(env);
    });

    it('when the digest is only known after reading the data back (hash state lost)', async () => {
      const env = setup();
      const start = await env.r.request('/v2/app/bad/blobs/uploads/', { method: 'POST' });
      const location = start.headers.get('Location')!;
      expect((await env.r.request(location, { method: 'PATCH', body: bytes(6 * MiB) })).status).toBe(202);
      // Another process, without the in-memory hash: it must complete the upload, then read it back.
      const other = setup({ prefix: env.prefix });
      const put = await other.meter.measure(() =>
        other.r.request(`${location}?digest=${sha256('something else')}`, { method: 'PUT' }),
      );
      expect(put.result.status).toBe(400);
      expect(await errorCode(put.result)).toBe('DIGEST_INVALID');
      expect(put.calls.some((c) => c.command === 'GetObject' && c.key?.startsWith('data/'))).toBe(true);
      await nothing(env);
    });

    it('monolithic', async () => {
      const env = setup();
      const body = bytes(100 * KiB);
      const res = await env.r.request(`/v2/app/bad/blobs/uploads/?digest=${sha256('something else')}`, {
        method: 'POST',
        headers: { 'Content-Length': String(body.byteLength) },
        body,
      });
      expect(res.status).toBe(400);
      expect(await errorCode(res)).toBe('DIGEST_INVALID');
      await nothing(env);
    });
  });

  describe('serialized hash state (Lambda): a session continued by another process', () => {
    /** PATCHes alternate between two registries over one prefix, and the second one completes. */
    async function alternate(hashes: 'memory' | 'serialized') {
      const a = setup({ hashes });
      const b = setup({ hashes, prefix: a.prefix });
      const chunks = [bytes(6 * MiB), bytes(3 * MiB), bytes(2 * MiB)];
      const whole = Buffer.concat(chunks);
      const start = await a.r.request('/v2/app/lambda/blobs/uploads/', { method: 'POST' });
      let location = start.headers.get('Location')!;
      const markA = a.meter.mark();
      const markB = b.meter.mark();
      for (const [i, body] of chunks.entries()) {
        const res = await (i % 2 === 0 ? a : b).r.request(location, { method: 'PATCH', body });
        expect(res.status).toBe(202);
        location = res.headers.get('Location')!;
      }
      const put = await b.r.request(`${location}?digest=${sha256(whole)}`, { method: 'PUT' });
      expect(put.status).toBe(201);
      const calls = [...a.meter.since(markA), ...b.meter.since(markB)];
      expect(await pull(a.r, 'app/lambda', sha256(whole))).toBe(sha256(whole));
      return { calls, size: whole.byteLength };
    }

    it('completes without reading the data back; only session and tail objects are read', async () => {
      const { calls, size } = await alternate('serialized');
      record('3 PATCHes alternating between 2 processes + PUT, 11 MiB, serialized hash', calls);
      expect(calls.filter((c) => c.command === 'GetObject' && isData(c))).toEqual([]);
      expect(copies(calls)).toEqual([]);
      // The hash state rides in the session object: still a small object.
      const sessionWrites = calls.filter((c) => c.command === 'PutObject' && c.key?.endsWith('.json'));
      expect(Math.max(...sessionWrites.map((c) => c.sent))).toBeLessThan(2 * KiB);
      expect(bytesSent(calls.filter((c) => c.command === 'UploadPart'))).toBe(size);
    });

    it('(control) the in-memory hash cannot follow the session, so that completion reads the data back once', async () => {
      const { calls, size } = await alternate('memory');
      record('3 PATCHes alternating between 2 processes + PUT, 11 MiB, in-memory hash', calls);
      const readBack = calls.filter((c) => c.command === 'GetObject' && isData(c));
      expect(readBack).toHaveLength(1);
      expect(readBack[0]).toMatchObject({ key: expect.stringMatching(/^data\//), received: size });
    });
  });
});
