import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { FilesystemDriver } from '../../lib/storage/filesystem/index.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { StorageUnavailable, type StorageDriver } from '../../lib/storage/port.ts';
import { parseDigest } from '../../lib/oci/digest.ts';
import { keys } from '../../lib/registry/keys.ts';
import type { RepositoryName } from '../../lib/oci/names.ts';
import { gc } from '../gc/harness.ts';
import {
  errorCode,
  pushBlob,
  randomBytes,
  sha256,
  testRegistry,
  testRegistry as baseRegistry,
  type TestOptions,
  type TestRegistry,
} from './harness.ts';

const MiB = 1024 * 1024;

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/**
 * The upload path differs by store: S3-like stores get whole parts gathered in memory, stores with
 * `openPart` (the filesystem) get parts streamed into them as they arrive.
 */
const STORES: { name: string; make: () => StorageDriver }[] = [
  { name: 'memory (whole parts, as S3)', make: () => new MemoryDriver() },
  { name: 'memory (streamed parts)', make: () => new MemoryDriver({ streaming: true }) },
  {
    name: 'filesystem',
    make: () => {
      const dir = mkdtempSync(join(tmpdir(), 'berth-uploads-'));
      dirs.push(dir);
      return new FilesystemDriver({ root: dir });
    },
  },
];

async function begin(r: TestRegistry, repo = 'foo'): Promise<string> {
  const res = await r.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(res.status).toBe(202);
  expect(res.headers.get('Range')).toBe('0-0');
  expect(res.headers.get('Docker-Upload-UUID')).toBeTruthy();
  return res.headers.get('Location')!;
}

/**
 * Every key in the store but the one that signs upload URLs (written once, on the first upload) and
 * the `ended` markers of sessions that are over (kept while the POST's URL could still be used, then
 * removed by the stale-session sweep: docs/architecture.md, "A POST writes nothing").
 */
async function layoutKeys(r: TestRegistry): Promise<string[]> {
  const all = (await r.storage.list('')).keys.filter((key) => key !== keys.uploadStateKey);
  const ended = async (key: string) => {
    const id = /^uploads\/([0-9a-f-]{36})\.json$/.exec(key)?.[1];
    return id !== undefined && (await r.registry.sessions.read(id))?.state.status === 'ended';
  };
  const kept: string[] = [];
  for (const key of all) if (!(await ended(key))) kept.push(key);
  return kept;
}

async function blobBytes(r: TestRegistry, repo: string, digest: string): Promise<Uint8Array> {
  const res = await r.request(`/v2/${repo}/blobs/${digest}`);
  expect(res.status).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
}

function chunkPatch(
  r: TestRegistry,
  location: string,
  bytes: Uint8Array<ArrayBuffer>,
  start: number,
): Promise<Response> {
  return r.request(location, {
    method: 'PATCH',
    headers: {
      'Content-Type': 'application/octet-stream',
      'Content-Range': `${start}-${start + bytes.byteLength - 1}`,
      'Content-Length': String(bytes.byteLength),
    },
    body: bytes,
  });
}

/** Failures to order: the next store of part `failPart` (either way of storing parts), the next link. */
function withFaults(storage: StorageDriver): { failPart?: number; failLink?: boolean } {
  const faults: { failPart?: number; failLink?: boolean } = {};
  const fail = () => new StorageUnavailable('injected storage failure');
  const multipart = storage.multipart;
  const uploadPart = multipart.uploadPart.bind(multipart);
  multipart.uploadPart = async (key, uploadId, partNumber, body, size) => {
    if (faults.failPart === partNumber) {
      faults.failPart = undefined;
      throw fail();
    }
    return uploadPart(key, uploadId, partNumber, body, size);
  };
  const openPart = multipart.openPart?.bind(multipart);
  if (openPart) {
    multipart.openPart = async (key, uploadId, partNumber) => {
      const sink = await openPart(key, uploadId, partNumber);
      return {
        write: (chunk) => sink.write(chunk),
        abort: () => sink.abort(),
        end: async (options) => {
          if (faults.failPart === partNumber) {
            faults.failPart = undefined;
            await sink.abort();
            throw fail();
          }
          return sink.end(options);
        },
      };
    };
  }
  const put = storage.put.bind(storage);
  storage.put = async (key, body, options) => {
    if (faults.failLink && key.includes('/_layers/')) {
      faults.failLink = false;
      throw fail();
    }
    return put(key, body, options);
  };
  return faults;
}

describe.each(STORES)('uploads on the $name store', ({ make }) => {
  const testRegistry = (options: TestOptions = {}) => baseRegistry({ storage: make(), ...options });

  it('streamed: POST, one PATCH without Content-Range, PUT ?digest=', async () => {
    const r = testRegistry();
    const bytes = randomBytes(12 * MiB + 17);
    const digest = await pushBlob(r, 'foo', bytes);
    expect(sha256(await blobBytes(r, 'foo', digest))).toBe(sha256(bytes));
  });

  it('chunked: Content-Range chunks of any size, status, and the original Location stays valid', async () => {
    const r = testRegistry();
    const bytes = randomBytes(11 * MiB + 5, 9);
    const digest = sha256(bytes);
    const location = await begin(r);
    const cuts = [0, 1, 1000, 3 * MiB, 3 * MiB + 1, 9 * MiB, bytes.byteLength];
    let current = location;
    for (let i = 0; i + 1 < cuts.length; i++) {
      const res = await chunkPatch(r, current, bytes.subarray(cuts[i], cuts[i + 1]), cuts[i]!);
      expect(res.status).toBe(202);
      expect(res.headers.get('Range')).toBe(`0-${cuts[i + 1]! - 1}`);
      current = res.headers.get('Location')!;
    }
    const status = await r.request(location);
    expect(status.status).toBe(204);
    expect(status.headers.get('Range')).toBe(`0-${bytes.byteLength - 1}`);
    const put = await r.request(`${location}?digest=${digest}`, { method: 'PUT' });
    expect(put.status).toBe(201);
    expect(put.headers.get('Location')).toBe(`/v2/foo/blobs/${digest}`);
    expect(sha256(await blobBytes(r, 'foo', digest))).toBe(sha256(bytes));
  });

  it('answers an out-of-order chunk with 416 and the current Range, keeping the upload intact', async () => {
    const r = testRegistry();
    const bytes = randomBytes(300);
    const location = await begin(r);
    expect((await chunkPatch(r, location, bytes.subarray(0, 100), 0)).status).toBe(202);
    const replay = await chunkPatch(r, location, bytes.subarray(0, 100), 0);
    expect(replay.status).toBe(416);
    expect(replay.headers.get('Range')).toBe('0-99');
    expect(await errorCode(replay)).toBe('BLOB_UPLOAD_INVALID');
    const gap = await chunkPatch(r, location, bytes.subarray(200), 200);
    expect(gap.status).toBe(416);
    expect((await chunkPatch(r, location, bytes.subarray(100), 100)).status).toBe(202);
    const put = await r.request(`${location}?digest=${sha256(bytes)}`, { method: 'PUT' });
    expect(put.status).toBe(201);
  });

  it('monolithic: POST ?digest= with the body', async () => {
    const r = testRegistry();
    const bytes = randomBytes(2048);
    const digest = sha256(bytes);
    const res = await r.request(`/v2/foo/blobs/uploads/?digest=${digest}`, { method: 'POST', body: bytes });
    expect(res.status).toBe(201);
    expect(res.headers.get('Docker-Content-Digest')).toBe(digest);
    expect(sha256(await blobBytes(r, 'foo', digest))).toBe(sha256(bytes));
  });

  it('monolithic: POST then PUT ?digest= carrying the whole body, or the last chunk', async () => {
    const r = testRegistry();
    const bytes = randomBytes(7 * MiB, 4);
    const digest = sha256(bytes);
    const whole = await begin(r);
    expect((await r.request(`${whole}?digest=${digest}`, { method: 'PUT', body: bytes })).status).toBe(201);
    const r2 = testRegistry();
    const location = await begin(r2);
    const first = await chunkPatch(r2, location, bytes.subarray(0, 6 * MiB), 0);
    const put = await r2.request(`${first.headers.get('Location')}?digest=${digest}`, {
      method: 'PUT',
      headers: { 'Content-Range': `${6 * MiB}-${bytes.byteLength - 1}` },
      body: bytes.subarray(6 * MiB),
    });
    expect(put.status).toBe(201);
    expect(sha256(await blobBytes(r2, 'foo', digest))).toBe(sha256(bytes));
  });

  it('sha512 digests are accepted', async () => {
    const r = testRegistry();
    const bytes = randomBytes(6 * MiB + 3, 5);
    const { createHash } = await import('node:crypto');
    const digest = `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
    const mono = await r.request(`/v2/foo/blobs/uploads/?digest=${digest}`, { method: 'POST', body: bytes });
    expect(mono.status).toBe(201);
    const r2 = testRegistry();
    const location = await begin(r2);
    await r2.request(location, { method: 'PATCH', body: bytes });
    expect((await r2.request(`${location}?digest=${digest}`, { method: 'PUT' })).status).toBe(201);
    expect(sha256(await blobBytes(r2, 'foo', digest))).toBe(sha256(bytes));
  });

  it.each([
    ['small, without a publish window', 100, 0],
    ['multipart', 8 * MiB, undefined],
  ])('a wrong digest (%s) is DIGEST_INVALID and stores nothing', async (_what, size, publishWindowMs) => {
    const r = testRegistry(publishWindowMs === undefined ? {} : { publishWindowMs });
    const bytes = randomBytes(size);
    const location = await begin(r);
    await r.request(location, { method: 'PATCH', body: bytes });
    const wrong = sha256('something else');
    const put = await r.request(`${location}?digest=${wrong}`, { method: 'PUT' });
    expect(put.status).toBe(400);
    expect(await errorCode(put)).toBe('DIGEST_INVALID');
    expect((await r.request(`/v2/foo/blobs/${wrong}`, { method: 'HEAD' })).status).toBe(404);
    expect((await r.request(`/v2/foo/blobs/${sha256(bytes)}`, { method: 'HEAD' })).status).toBe(404);
    expect(await layoutKeys(r)).toEqual([]);
  });

  it('a wrong digest on a young small upload keeps only its tail, which garbage collection removes', async () => {
    // A completion racing this one from the same state may have made the tail a blob's data without
    // a claim (docs/architecture.md, "Completion without a claim"): the request leaves it, and the
    // collection, which sees every blob that names a tail, removes it when none does.
    const r = testRegistry();
    const bytes = randomBytes(100);
    const location = await begin(r);
    await r.request(location, { method: 'PATCH', body: bytes });
    const put = await r.request(`${location}?digest=${sha256('something else')}`, { method: 'PUT' });
    expect(put.status).toBe(400);
    expect((await r.request(`/v2/foo/blobs/${sha256(bytes)}`, { method: 'HEAD' })).status).toBe(404);
    expect(await layoutKeys(r)).toEqual([expect.stringMatching(/^data\/[0-9a-f-]{36}\.tail-1-/)]);
    await new Promise((resolve) => setTimeout(resolve, 5)); // the store's clock moves past the tail's write
    // As once the tail is older than the orphan minimum age (ORPHAN_MIN_AGE_MS, 10 minutes).
    const result = await gc(r, { uploadTtlMs: 0, orphanMinAgeMs: 0 });
    expect(result.deleted.filter((d) => d.kind === 'tail')).toHaveLength(1);
    expect((await layoutKeys(r)).filter((key) => !key.startsWith('gc/'))).toEqual([]);
  });

  it.each([
    ['small', 100],
    ['3 MiB', 3 * MiB],
  ])(
    'POST, then PUT with the bytes (%s) and a wrong digest: DIGEST_INVALID, nothing stored, the URL dead',
    async (_what, size) => {
      // The conformance suite's "bad digest post+put": the POST stored no session (its state is in
      // the URL), so the refused completion must not take the missing session for a lost race.
      const r = testRegistry();
      await begin(r); // the process's first POST writes its session while it loads the URL-signing key
      const location = await begin(r);
      const stored = await layoutKeys(r);
      const wrong = sha256('something else');
      const url = `${location}${location.includes('?') ? '&' : '?'}digest=${wrong}`;
      const put = await r.request(url, { method: 'PUT', body: randomBytes(size) });
      expect(put.status).toBe(400);
      expect(await errorCode(put)).toBe('DIGEST_INVALID');
      const left = (await layoutKeys(r)).filter((key) => !stored.includes(key));
      expect(left.filter((key) => !key.startsWith('uploads/'))).toEqual([]);
      const again = await r.request(url, { method: 'PUT', body: randomBytes(size) });
      expect(again.status).toBe(404);
      expect(await errorCode(again)).toBe('BLOB_UPLOAD_UNKNOWN');
    },
  );

  it('a monolithic POST with a wrong digest is DIGEST_INVALID and stores nothing', async () => {
    const r = testRegistry();
    const bytes = randomBytes(100);
    const res = await r.request(`/v2/foo/blobs/uploads/?digest=${sha256('other')}`, {
      method: 'POST',
      headers: { 'Content-Length': '100' },
      body: bytes,
    });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('DIGEST_INVALID');
    expect(await layoutKeys(r)).toEqual([]);
  });

  it('a second PUT on a finished upload and unknown upload ids are BLOB_UPLOAD_UNKNOWN', async () => {
    const r = testRegistry();
    const bytes = randomBytes(10);
    const location = await begin(r);
    await r.request(location, { method: 'PATCH', body: bytes });
    expect((await r.request(`${location}?digest=${sha256(bytes)}`, { method: 'PUT' })).status).toBe(201);
    const again = await r.request(`${location}?digest=${sha256(bytes)}`, { method: 'PUT' });
    expect(again.status).toBe(404);
    expect(await errorCode(again)).toBe('BLOB_UPLOAD_UNKNOWN');
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', '..%2f..%2fetc']) {
      const res = await r.request(`/v2/foo/blobs/uploads/${id}`);
      expect(res.status).toBe(404);
      expect(await errorCode(res)).toBe('BLOB_UPLOAD_UNKNOWN');
    }
  });

  it('an upload is only reachable through the repository it was started in', async () => {
    const r = testRegistry();
    const location = await begin(r, 'foo');
    const res = await r.request(location.replace('/v2/foo/', '/v2/bar/'));
    expect(res.status).toBe(404);
  });

  it('DELETE cancels an upload and leaves nothing behind', async () => {
    const r = testRegistry();
    const location = await begin(r);
    await r.request(location, { method: 'PATCH', body: randomBytes(7 * MiB) });
    const del = await r.request(location, { method: 'DELETE' });
    expect(del.status).toBe(204);
    expect((await r.request(location)).status).toBe(404);
    expect(await layoutKeys(r)).toEqual([]);
  });

  it('a body that disagrees with its Content-Range or Content-Length is refused and the upload continues', async () => {
    const r = testRegistry();
    const bytes = randomBytes(200);
    const location = await begin(r);
    const lying = await r.request(location, {
      method: 'PATCH',
      headers: { 'Content-Range': '0-49' },
      body: bytes.subarray(0, 100),
    });
    expect(lying.status).toBe(400);
    expect(await errorCode(lying)).toBe('BLOB_UPLOAD_INVALID');
    const mismatch = await r.request(location, {
      method: 'PATCH',
      headers: { 'Content-Range': '0-49', 'Content-Length': '60' },
      body: bytes.subarray(0, 60),
    });
    expect(mismatch.status).toBe(400);
    expect((await chunkPatch(r, location, bytes, 0)).status).toBe(202);
    expect((await r.request(`${location}?digest=${sha256(bytes)}`, { method: 'PUT' })).status).toBe(201);
  });

  it('refuses a blob larger than the configured limit with 413', async () => {
    const r = testRegistry({ maxBlobSize: 1000 });
    const location = await begin(r);
    const res = await r.request(location, { method: 'PATCH', body: randomBytes(1001) });
    expect(res.status).toBe(413);
    expect(await errorCode(res)).toBe('SIZE_INVALID');
  });

  it('racing PATCHes on one session: one 202, one 416, and the blob is intact', async () => {
    const r = testRegistry();
    const a = randomBytes(6 * MiB, 1);
    const b = randomBytes(6 * MiB, 2);
    const location = await begin(r);
    const results = await Promise.all([chunkPatch(r, location, a, 0), chunkPatch(r, location, b, 0)]);
    expect(results.map((res) => res.status).sort()).toEqual([202, 416]);
    const winner = results[0]!.status === 202 ? a : b;
    const put = await r.request(`${location}?digest=${sha256(winner)}`, { method: 'PUT' });
    expect(put.status).toBe(201);
    expect(sha256(await blobBytes(r, 'foo', sha256(winner)))).toBe(sha256(winner));
  });

  it('continues a session in another process from serialized hash state (the Lambda way)', async () => {
    const first = testRegistry({ hashes: 'serialized' });
    const bytes = randomBytes(8 * MiB + 100, 6);
    const location = await begin(first);
    await chunkPatch(first, location, bytes.subarray(0, 3 * MiB), 0);
    const second = testRegistry({ hashes: 'serialized', storage: first.storage });
    await chunkPatch(second, location, bytes.subarray(3 * MiB), 3 * MiB);
    const put = await second.request(`${location}?digest=${sha256(bytes)}`, { method: 'PUT' });
    expect(put.status).toBe(201);
    expect(sha256(await blobBytes(second, 'foo', sha256(bytes)))).toBe(sha256(bytes));
  });

  it('verifies by reading back when the hash state was lost (server restart)', async () => {
    const first = testRegistry();
    const bytes = randomBytes(6 * MiB, 8);
    const location = await begin(first);
    await first.request(location, { method: 'PATCH', body: bytes });
    const restarted = testRegistry({ storage: first.storage });
    const wrong = await restarted.request(`${location}?digest=${sha256('x')}`, { method: 'PUT' });
    expect(wrong.status).toBe(400);
    const location2 = await begin(first);
    await first.request(location2, { method: 'PATCH', body: bytes });
    const restarted2 = testRegistry({ storage: first.storage });
    const ok = await restarted2.request(`${location2}?digest=${sha256(bytes)}`, { method: 'PUT' });
    expect(ok.status).toBe(201);
    expect(sha256(await blobBytes(restarted2, 'foo', sha256(bytes)))).toBe(sha256(bytes));
  });

  it('a part that fails to store while the next is received: 503, the session keeps its offset, and a retry completes the blob', async () => {
    const storage = make();
    const faults = withFaults(storage);
    const r = testRegistry({ storage, partSize: 5 * MiB });
    const bytes = randomBytes(17 * MiB + 3, 21);
    const location = await begin(r);
    const first = await chunkPatch(r, location, bytes.subarray(0, 2 * MiB), 0);
    expect(first.status).toBe(202);
    faults.failPart = 2;
    // The spec's way: each request goes to the Location the last answer gave (it carries the state).
    const failed = await r.request(first.headers.get('Location')!, {
      method: 'PATCH',
      body: bytes.subarray(2 * MiB),
    });
    expect(failed.status).toBe(503);
    expect(await errorCode(failed)).toBe('UNAVAILABLE');
    const status = await r.request(location);
    expect(status.headers.get('Range')).toBe(`0-${2 * MiB - 1}`);
    const retry = await chunkPatch(r, location, bytes.subarray(2 * MiB), 2 * MiB);
    expect(retry.status).toBe(202);
    const put = await r.request(`${location}?digest=${sha256(bytes)}`, { method: 'PUT' });
    expect(put.status).toBe(201);
    expect(sha256(await blobBytes(r, 'foo', sha256(bytes)))).toBe(sha256(bytes));
  });

  it('a small blob (PATCH, then PUT without a body) keeps its bytes where the PATCH wrote them', async () => {
    const storage = make();
    const r = testRegistry({ storage });
    const bytes = randomBytes(300 * 1024, 22);
    const digest = await pushBlob(r, 'foo', bytes);
    const info = await r.registry.blobs.stat('foo' as RepositoryName, parseDigest(digest));
    expect(info?.dataKey).toMatch(/^data\/[0-9a-f-]+\.tail-1-[0-9a-f]{8}$/);
    expect((await storage.head(info!.dataKey))?.size).toBe(bytes.byteLength);
    expect(sha256(await blobBytes(r, 'foo', digest))).toBe(digest);
  });

  it('a completion that fails after naming the tail as the blob data: the retry succeeds, and a cancel after the failure keeps the data', async () => {
    const storage = make();
    const faults = withFaults(storage);
    const r = testRegistry({ storage });
    const bytes = randomBytes(1000, 23);
    const digest = sha256(bytes);
    // Retried: the second PUT links what the first one stored.
    const location = await begin(r);
    expect((await r.request(location, { method: 'PATCH', body: bytes })).status).toBe(202);
    faults.failLink = true;
    const failed = await r.request(`${location}?digest=${digest}`, { method: 'PUT' });
    expect(failed.status).toBe(503);
    const put = await r.request(`${location}?digest=${digest}`, { method: 'PUT' });
    expect(put.status).toBe(201);
    expect(sha256(await blobBytes(r, 'foo', digest))).toBe(digest);
    // Given up: the client cancels; the blob it had half stored stays whole for the next push.
    const other = randomBytes(1000, 24);
    const location2 = await begin(r, 'bar');
    expect((await r.request(location2, { method: 'PATCH', body: other })).status).toBe(202);
    faults.failLink = true;
    expect((await r.request(`${location2}?digest=${sha256(other)}`, { method: 'PUT' })).status).toBe(503);
    expect((await r.request(location2, { method: 'DELETE' })).status).toBe(204);
    await pushBlob(r, 'baz', other);
    expect(sha256(await blobBytes(r, 'baz', sha256(other)))).toBe(sha256(other));
  });

  it('PUT without ?digest= is DIGEST_INVALID', async () => {
    const r = testRegistry();
    const location = await begin(r);
    const res = await r.request(location, { method: 'PUT' });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('DIGEST_INVALID');
  });
});

describe('a session the POST did not write (docs/architecture.md, "A POST writes nothing")', () => {
  async function opened(r: TestRegistry): Promise<string> {
    await begin(r); // the process's first POST loads the key that signs upload URLs
    return begin(r);
  }

  const sessionKeys = async (r: TestRegistry) => (await r.storage.list('uploads/')).keys;

  it('is known by its URL alone: GET answers its offset, and its first PATCH writes it', async () => {
    const r = baseRegistry();
    const location = await opened(r);
    const id = location.slice(location.lastIndexOf('/') + 1).split('.')[0]!;
    expect(await sessionKeys(r)).not.toContain(keys.session(id));
    const status = await r.request(location);
    expect(status.status).toBe(204);
    expect(status.headers.get('Range')).toBe('0-0');
    const bytes = randomBytes(300);
    const patched = await r.request(location, { method: 'PATCH', body: bytes });
    expect(patched.status).toBe(202);
    expect(await sessionKeys(r)).toContain(keys.session(id));
    const put = await r.request(`${patched.headers.get('Location')}?digest=${sha256(bytes)}`, {
      method: 'PUT',
    });
    expect(put.status).toBe(201);
  });

  it('once cancelled, its URL is unknown: no request can start it again', async () => {
    const r = baseRegistry();
    const location = await opened(r);
    expect((await r.request(location, { method: 'DELETE' })).status).toBe(204);
    expect((await r.request(location)).status).toBe(404);
    const again = await r.request(location, { method: 'PATCH', body: randomBytes(10) });
    expect(again.status).toBe(404);
    expect(await errorCode(again)).toBe('BLOB_UPLOAD_UNKNOWN');
    expect((await r.request(location, { method: 'DELETE' })).status).toBe(404);
  });

  it('once completed, the POST URL cannot start it again', async () => {
    const r = baseRegistry();
    const location = await opened(r);
    const bytes = randomBytes(300);
    const patched = await r.request(location, { method: 'PATCH', body: bytes });
    const put = await r.request(`${patched.headers.get('Location')}?digest=${sha256(bytes)}`, {
      method: 'PUT',
    });
    expect(put.status).toBe(201);
    for (const method of ['GET', 'PATCH', 'DELETE']) {
      const res = await r.request(location, { method, ...(method === 'PATCH' && { body: randomBytes(10) }) });
      expect(res.status, method).toBe(404);
    }
  });

  it('a POST URL an hour old starts nothing: the client opens a new upload', async () => {
    const r = baseRegistry();
    const location = await opened(r);
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 61 * 60_000 });
    try {
      expect((await r.request(location)).status).toBe(404);
      expect((await r.request(location, { method: 'PATCH', body: randomBytes(10) })).status).toBe(404);
    } finally {
      vi.useRealTimers();
    }
  });

  it('its ended marker goes with the stale-session sweep once the POST URL is too old to use', async () => {
    const r = baseRegistry();
    const location = await opened(r);
    const marker = keys.session(location.slice(location.lastIndexOf('/') + 1).split('.')[0]!);
    expect((await r.request(location, { method: 'DELETE' })).status).toBe(204);
    expect(await sessionKeys(r)).toContain(marker);
    expect((await r.registry.sessions.read(marker.slice(8, -5)))?.state.status).toBe('ended');
    // Younger than the upload TTL, but past the hour and the 5 minutes allowed for clocks; the first
    // POST's session (written, open) is younger than the TTL and stays.
    expect(await r.registry.uploads.purgeStale(24 * 3600_000, Date.now() + 66 * 60_000)).toBe(0);
    expect(await sessionKeys(r)).toHaveLength(1);
    expect(await sessionKeys(r)).not.toContain(marker);
  });
});

describe('stale upload sessions', () => {
  it('are cancelled after the TTL, with their parts and tail, and fresh ones are kept', async () => {
    const r = testRegistry();
    const stale = await begin(r);
    await r.request(stale, { method: 'PATCH', body: randomBytes(6 * MiB + 10) });
    expect(await r.registry.uploads.purgeStale(60_000)).toBe(0);
    expect((await r.request(stale)).status).toBe(204);
    expect(await r.registry.uploads.purgeStale(60_000, Date.now() + 120_000)).toBe(1);
    expect((await r.request(stale)).status).toBe(404);
    // Nothing of the session is left; the purge read the store's clock (keys.clock, an empty object).
    expect(await layoutKeys(r)).toEqual([keys.clock]);
  });
});

describe('cross-repository mount', () => {
  it('mounts from a repository that has the blob with 201 and the exact Location', async () => {
    const r = testRegistry();
    const digest = await pushBlob(r, 'source', randomBytes(500));
    const res = await r.request(`/v2/target/blobs/uploads/?mount=${digest}&from=source`, { method: 'POST' });
    expect(res.status).toBe(201);
    expect(res.headers.get('Location')).toBe(`/v2/target/blobs/${digest}`);
    expect((await r.request(`/v2/target/blobs/${digest}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('falls back to a new upload session (202) when the source lacks the blob', async () => {
    const r = testRegistry();
    const digest = await pushBlob(r, 'other', randomBytes(500));
    const res = await r.request(`/v2/target/blobs/uploads/?mount=${digest}&from=source`, { method: 'POST' });
    expect(res.status).toBe(202);
    expect(res.headers.get('Location')).toMatch(/^\/v2\/target\/blobs\/uploads\//);
    const cancel = await r.request(res.headers.get('Location')!, { method: 'DELETE' });
    expect(cancel.status).toBe(204);
  });

  it('mounts without from only when the registry is configured to', async () => {
    const closed = testRegistry();
    const digest = await pushBlob(closed, 'source', randomBytes(500));
    expect(
      (await closed.request(`/v2/target/blobs/uploads/?mount=${digest}`, { method: 'POST' })).status,
    ).toBe(202);
    const open = testRegistry({ mountWithoutFrom: true });
    await pushBlob(open, 'source', randomBytes(500));
    expect((await open.request(`/v2/target/blobs/uploads/?mount=${digest}`, { method: 'POST' })).status).toBe(
      201,
    );
  });
});
