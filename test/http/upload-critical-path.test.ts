import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { DepthRecorder } from '../support/storage-depth.ts';
import { randomBytes, sha256, testRegistry, type TestRegistry } from './harness.ts';

/**
 * How many storage calls each upload route makes one after another before it answers:
 * on S3 each costs 10-30 ms, so this is what a pusher waits for per layer. Counts, not times: a
 * change that adds a round trip to one of these routes fails here. The figures, and the targets
 * they meet or miss, are in docs/architecture.md ("Upload sessions").
 */

function setup(): { r: TestRegistry; recorder: DepthRecorder } {
  const recorder = new DepthRecorder(new MemoryDriver());
  recorder.start();
  const r = testRegistry({ storage: recorder.storage });
  return { r, recorder };
}

/** A POST whose answer carries the signed state (the signing key is loaded by the first upload). */
async function begin(r: TestRegistry, recorder: DepthRecorder): Promise<string> {
  const res = await r.request('/v2/app/blobs/uploads/', { method: 'POST' });
  expect(res.status).toBe(202);
  recorder.take();
  const location = res.headers.get('Location')!;
  expect(location).toMatch(/^\/v2\/app\/blobs\/uploads\/[0-9a-f-]{36}\.[\w-]+\.[\w-]+$/);
  return location;
}

async function warm(r: TestRegistry, recorder: DepthRecorder): Promise<void> {
  await r.request('/v2/app/blobs/uploads/', { method: 'POST' });
  recorder.take();
}

describe('sequential storage calls per upload route', () => {
  it("POST (start): 0, the session's state in its URL only (the process's first loads the signing key)", async () => {
    const { r, recorder } = setup();
    const first = await r.request('/v2/app/blobs/uploads/', { method: 'POST' });
    expect(first.status).toBe(202);
    // On a fresh store the key is read, then created; the session is written alongside.
    expect(recorder.take().sequential).toBe(2);
    const res = await r.request('/v2/app/blobs/uploads/', { method: 'POST' });
    expect(res.status).toBe(202);
    expect(recorder.take().sequential).toBe(0);
    // Nothing written, yet the session is there for whoever holds its URL.
    const status = await r.request(res.headers.get('Location')!);
    expect(status.status).toBe(204);
    expect(status.headers.get('Range')).toBe('0-0');
  });

  it('monolithic POST ?digest= with the bytes: 2 (blob, then link)', async () => {
    const { r, recorder } = setup();
    const bytes = randomBytes(2000, 1);
    const res = await r.request(`/v2/app/blobs/uploads/?digest=${sha256(bytes)}`, {
      method: 'POST',
      body: bytes,
      headers: { 'Content-Length': String(bytes.byteLength) },
    });
    expect(res.status).toBe(201);
    const { sequential: depth, calls } = recorder.take();
    expect(depth).toBe(2);
    // The link never comes before the blob it names.
    expect(calls.find((c) => c.key.includes('/_layers/'))!.depth).toBe(2);
  });

  it('POST, then PUT ?digest= with the bytes: the PUT makes 2 (claim and blob together, then link)', async () => {
    const { r, recorder } = setup();
    await warm(r, recorder);
    const location = await begin(r, recorder);
    const bytes = randomBytes(3000, 2);
    const res = await r.request(`${location}?digest=${sha256(bytes)}`, { method: 'PUT', body: bytes });
    expect(res.status).toBe(201);
    const { sequential: depth, calls } = recorder.take();
    expect(depth).toBe(2);
    expect(calls.find((c) => c.key.startsWith('blobs/'))!.depth).toBe(1);
    expect(calls.find((c) => c.key.includes('/_layers/'))!.depth).toBe(2);
    expect((await r.request(`/v2/app/blobs/${sha256(bytes)}`)).status).toBe(200);
  });

  it('PATCH of a small blob on a new session: 2 (tail, then the state)', async () => {
    const { r, recorder } = setup();
    await warm(r, recorder);
    const location = await begin(r, recorder);
    const res = await r.request(location, { method: 'PATCH', body: randomBytes(128 * 1024, 3) });
    expect(res.status).toBe(202);
    expect(recorder.take().sequential).toBe(2);
  });

  it('PATCH of the next chunk: 2 when this process wrote the previous tail (new tail, state)', async () => {
    const { r, recorder } = setup();
    await warm(r, recorder);
    const location = await begin(r, recorder);
    const first = await r.request(location, { method: 'PATCH', body: randomBytes(1000, 4) });
    recorder.take();
    const second = randomBytes(1000, 5);
    const res = await r.request(first.headers.get('Location')!, {
      method: 'PATCH',
      body: second,
      headers: { 'Content-Range': '1000-1999' },
    });
    expect(res.status).toBe(202);
    const { sequential, calls } = recorder.take();
    expect(sequential).toBe(2);
    // The previous tail is neither read (its bytes are kept in this process) nor deleted (a
    // completion racing this PATCH may have made it a blob's data; garbage collection removes it).
    expect(calls.filter((c) => c.key.includes('.tail-1-')).map((c) => c.op)).toEqual([]);
    const whole = new Uint8Array([...randomBytes(1000, 4), ...second]);
    expect(
      (await r.request(`${res.headers.get('Location')!}?digest=${sha256(whole)}`, { method: 'PUT' })).status,
    ).toBe(201);
    expect(new Uint8Array(await (await r.request(`/v2/app/blobs/${sha256(whole)}`)).arrayBuffer())).toEqual(
      whole,
    );
  });

  it('PATCH of the next chunk in another process: 3 (previous tail read, new tail, state)', async () => {
    const { r, recorder } = setup();
    await warm(r, recorder);
    const location = await begin(r, recorder);
    const first = await r.request(location, { method: 'PATCH', body: randomBytes(1000, 4) });
    // Another process of the same store (another Lambda container) gets the next chunk.
    const other = testRegistry({ storage: recorder.storage });
    await warm(other, recorder);
    const res = await other.request(first.headers.get('Location')!, {
      method: 'PATCH',
      body: randomBytes(1000, 5),
      headers: { 'Content-Range': '1000-1999' },
    });
    expect(res.status).toBe(202);
    expect(recorder.take().sequential).toBe(3);
  });

  it('PUT ?digest= without a body after a PATCH (docker, skopeo): 2 (blob and claim together, then link with the session removed)', async () => {
    const { r, recorder } = setup();
    await warm(r, recorder);
    const location = await begin(r, recorder);
    const bytes = randomBytes(128 * 1024, 6);
    const patched = await r.request(location, { method: 'PATCH', body: bytes });
    recorder.take();
    const res = await r.request(`${patched.headers.get('Location')!}?digest=${sha256(bytes)}`, {
      method: 'PUT',
    });
    expect(res.status).toBe(201);
    const { sequential: depth, calls } = recorder.take();
    expect(depth).toBe(2);
    expect(calls.find((c) => c.key.startsWith('blobs/'))!.depth).toBe(1);
    expect(calls.find((c) => c.key.includes('/_layers/'))!.depth).toBe(2);
    expect((await r.request(`/v2/app/blobs/${sha256(bytes)}`)).status).toBe(200);
  });

  it('without a publish window (an upload TTL under 15 minutes) the completion claims first: 3', async () => {
    const storage = new DepthRecorder(new MemoryDriver());
    storage.start();
    const r = testRegistry({ storage: storage.storage, publishWindowMs: 0 });
    await warm(r, storage);
    const location = await begin(r, storage);
    const bytes = randomBytes(4096, 9);
    const patched = await r.request(location, { method: 'PATCH', body: bytes });
    storage.take();
    const res = await r.request(`${patched.headers.get('Location')!}?digest=${sha256(bytes)}`, {
      method: 'PUT',
    });
    expect(res.status).toBe(201);
    const { sequential, calls } = storage.take();
    expect(sequential).toBe(3);
    expect(calls.find((c) => c.key.startsWith('uploads/'))!.depth).toBe(1);
    expect(calls.find((c) => c.key.startsWith('blobs/'))!.depth).toBe(2);
  });

  it('an upload URL without the state (or with a forged one) costs one more read, and works once the session is stored', async () => {
    const { r, recorder } = setup();
    await warm(r, recorder);
    const location = await begin(r, recorder);
    const plain = location.slice(0, location.indexOf('.'));
    // Never written yet: the session is known only by the URL that carries its state.
    const unknown = await r.request(plain, { method: 'PATCH', body: randomBytes(10, 6) });
    expect(unknown.status).toBe(404);
    recorder.take();
    const bytes = randomBytes(1000, 7);
    expect((await r.request(location, { method: 'PATCH', body: bytes })).status).toBe(202);
    recorder.take();
    const more = randomBytes(500, 8);
    const res = await r.request(plain, {
      method: 'PATCH',
      body: more,
      headers: { 'Content-Range': '1000-1499' },
    });
    expect(res.status).toBe(202);
    // The session read, then the previous tail's bytes (from memory), the new tail and the state.
    expect(recorder.take().sequential).toBe(3);
    // A state edited by the client (here: another offset) fails its signature and is not used.
    const [id, payload, mac] = location.slice(location.lastIndexOf('/') + 1).split('.');
    const state = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as { s: { offset: number } };
    state.s.offset = 1500;
    const forged = `/v2/app/blobs/uploads/${id}.${Buffer.from(JSON.stringify(state)).toString('base64url')}.${mac}`;
    const last = randomBytes(500, 9);
    const forgedRes = await r.request(forged, { method: 'PATCH', body: last });
    expect(forgedRes.status).toBe(202);
    expect(forgedRes.headers.get('Range')).toBe('0-1999');
    const whole = new Uint8Array([...bytes, ...more, ...last]);
    expect(
      (await r.request(`${forgedRes.headers.get('Location')}?digest=${sha256(whole)}`, { method: 'PUT' }))
        .status,
    ).toBe(201);
  });
});
