import { describe, expect, it } from 'vitest';
import { errorCode, pushBlob, randomBytes, sha256, testRegistry } from './harness.ts';

describe('blobs', () => {
  it('HEAD and GET return the bytes with length, digest and type', async () => {
    const r = testRegistry();
    const bytes = randomBytes(3000);
    const digest = await pushBlob(r, 'foo', bytes);
    const head = await r.request(`/v2/foo/blobs/${digest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('Content-Length')).toBe('3000');
    expect(head.headers.get('Docker-Content-Digest')).toBe(digest);
    const get = await r.request(`/v2/foo/blobs/${digest}`);
    expect(get.status).toBe(200);
    expect(get.headers.get('Content-Type')).toBe('application/octet-stream');
    expect(new Uint8Array(await get.arrayBuffer())).toEqual(bytes);
  });

  it('serves single ranges with 206 and refuses unsatisfiable ones with 416', async () => {
    const r = testRegistry();
    const bytes = randomBytes(1000);
    const digest = await pushBlob(r, 'foo', bytes);
    const part = await r.request(`/v2/foo/blobs/${digest}`, { headers: { Range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('Content-Range')).toBe('bytes 10-19/1000');
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(bytes.subarray(10, 20));
    const suffix = await r.request(`/v2/foo/blobs/${digest}`, { headers: { Range: 'bytes=-5' } });
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(bytes.subarray(995));
    const open = await r.request(`/v2/foo/blobs/${digest}`, { headers: { Range: 'bytes=990-' } });
    expect(open.headers.get('Content-Range')).toBe('bytes 990-999/1000');
    const beyond = await r.request(`/v2/foo/blobs/${digest}`, { headers: { Range: 'bytes=1000-1001' } });
    expect(beyond.status).toBe(416);
  });

  it('does not serve a blob to a repository that has no link to it', async () => {
    const r = testRegistry();
    const digest = await pushBlob(r, 'foo', randomBytes(100));
    const res = await r.request(`/v2/bar/blobs/${digest}`);
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe('BLOB_UNKNOWN');
  });

  it('stores a blob pushed to two repositories once', async () => {
    const r = testRegistry();
    const bytes = randomBytes(6 * 1024 * 1024, 3);
    await pushBlob(r, 'one', bytes);
    await pushBlob(r, 'two', bytes);
    const blobs = await r.storage.list('blobs/');
    const data = await r.storage.list('data/');
    expect(blobs.keys).toHaveLength(1);
    expect(data.keys).toHaveLength(1);
  });

  it('DELETE removes the blob from the repository only', async () => {
    const r = testRegistry();
    const bytes = randomBytes(100);
    const digest = await pushBlob(r, 'foo', bytes);
    await pushBlob(r, 'bar', bytes);
    const del = await r.request(`/v2/foo/blobs/${digest}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    expect((await r.request(`/v2/foo/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);
    expect((await r.request(`/v2/bar/blobs/${digest}`, { method: 'HEAD' })).status).toBe(200);
    const again = await r.request(`/v2/foo/blobs/${digest}`, { method: 'DELETE' });
    expect(again.status).toBe(404);
  });

  it.each([
    ['wrong length', 'sha256:abc'],
    ['unknown algorithm', `md5:${'a'.repeat(32)}`],
    ['upper-case hex', `sha256:${'A'.repeat(64)}`],
    ['no algorithm', 'a'.repeat(64)],
  ])('refuses a digest with %s as DIGEST_INVALID', async (_what, digest) => {
    const r = testRegistry();
    const res = await r.request(`/v2/foo/blobs/${digest}`);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('DIGEST_INVALID');
  });

  it('HEAD of a missing blob is 404 with no body', async () => {
    const r = testRegistry();
    const res = await r.request(`/v2/foo/blobs/${sha256('nothing')}`, { method: 'HEAD' });
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('');
  });
});
