import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../lib/config/config.ts';
import { parseDigest } from '../../lib/oci/digest.ts';
import type { RepositoryName } from '../../lib/oci/names.ts';
import { keys } from '../../lib/registry/keys.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { randomBytes, sha256, testRegistry, type TestRegistry } from '../http/harness.ts';
import { gc, gcDrivers } from '../gc/harness.ts';
import { nextStoreSecond } from '../fsck/harness.ts';
import { ControlledStore, pauseAt, runAs, writes } from '../sim/controlled-store.ts';

/**
 * Upload sessions under races and crashes, on every store (RELIABILITY.md, findings 1 and 5). Each race is
 * placed exactly: one request is held at a storage call (test/sim/controlled-store.ts) while the
 * other runs whole.
 */

async function begin(r: TestRegistry, repo = 'app'): Promise<string> {
  const res = await r.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(res.status).toBe(202);
  return res.headers.get('Location')!;
}

async function blobBytes(r: TestRegistry, repo: string, digest: string): Promise<Response> {
  return r.request(`/v2/${repo}/blobs/${digest}`);
}

async function expectBlob(r: TestRegistry, repo: string, bytes: Uint8Array): Promise<void> {
  const res = await blobBytes(r, repo, sha256(bytes));
  expect(res.status, `GET blob in ${repo}`).toBe(200);
  expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(sha256(bytes));
}

/** docker's push of a small layer: POST, PATCH with all bytes, PUT ?digest= without a body. */
async function pushSmall(r: TestRegistry, repo: string, bytes: Uint8Array<ArrayBuffer>): Promise<void> {
  const location = await begin(r, repo);
  expect((await r.request(location, { method: 'PATCH', body: bytes })).status).toBe(202);
  expect((await r.request(`${location}?digest=${sha256(bytes)}`, { method: 'PUT' })).status).toBe(201);
}

for (const driver of gcDrivers()) {
  describe.skipIf(!driver.available)(`upload sessions under races and crashes on ${driver.name}`, () => {
    beforeAll(() => driver.setup(), 30_000);
    afterAll(() => driver.teardown());
    afterEach(() => vi.useRealTimers());

    it('a cancel that read the session before a completion published its bytes cannot delete them', async () => {
      const store = new ControlledStore(await driver.make());
      const r = testRegistry({ storage: store });
      const bytes = randomBytes(3000, 11);
      const location = await begin(r);
      expect((await r.request(location, { method: 'PATCH', body: bytes })).status).toBe(202);
      // The cancel has read the session and is about to remove what it names; the completion runs whole.
      const held = pauseAt(store, (c) => c.actor?.name === 'cancel' && writes(c.op));
      const cancel = runAs({ container: 'a', name: 'cancel' }, () =>
        r.request(location, { method: 'DELETE' }),
      );
      await held.reached;
      const put = await r.request(`${location}?digest=${sha256(bytes)}`, { method: 'PUT' });
      expect(put.status).toBe(201);
      held.release();
      const cancelled = await cancel;
      expect(cancelled.status).toBe(404);
      expect(((await cancelled.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(
        'BLOB_UPLOAD_UNKNOWN',
      );
      await expectBlob(r, 'app', bytes);
      // And for everyone else who pushes the same bytes.
      await pushSmall(r, 'other', bytes);
      await expectBlob(r, 'other', bytes);
    });

    it('a cancel while a completion holds the session is refused (409) and the blob is stored', async () => {
      const store = new ControlledStore(await driver.make());
      const r = testRegistry({ storage: store });
      const bytes = randomBytes(3000, 12);
      const location = await begin(r);
      expect((await r.request(location, { method: 'PATCH', body: bytes })).status).toBe(202);
      // Held at the session's end (with the link; its removal, or the `ended` marker that replaces
      // it while the POST's URL may still be used): the blob and the claim are written by then.
      let sessionWrites = 0;
      const held = pauseAt(store, (c) => {
        if (c.actor?.name !== 'put' || !c.key.startsWith('uploads/')) return false;
        if (c.op === 'delete') return true;
        return c.op === 'put' && ++sessionWrites === 2;
      });
      const put = runAs({ container: 'a', name: 'put' }, () =>
        r.request(`${location}?digest=${sha256(bytes)}`, { method: 'PUT' }),
      );
      await held.reached;
      const cancelled = await r.request(location, { method: 'DELETE' });
      expect(cancelled.status).toBe(409);
      expect(((await cancelled.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(
        /another request is writing to or completing this upload/,
      );
      held.release();
      expect((await put).status).toBe(201);
      await expectBlob(r, 'app', bytes);
    });

    it('a cancel that wins over a completion publishing without a claim leaves the blob it wrote whole', async () => {
      // The completion writes the blob (naming the session's tail) and its claim together. Another
      // push of the same bytes links that blob; then the cancel takes the session, so the claim fails
      // and the completion links nothing. The cancel must not delete the tail: the blob is someone's.
      const store = new ControlledStore(await driver.make());
      const r = testRegistry({ storage: store });
      const bytes = randomBytes(3000, 21);
      const location = await begin(r);
      const patched = await r.request(location, { method: 'PATCH', body: bytes });
      expect(patched.status).toBe(202);
      const claim = pauseAt(
        store,
        (c) => c.actor?.name === 'put' && c.op === 'put' && c.key.startsWith('uploads/'),
      );
      const put = runAs({ container: 'a', name: 'put' }, () =>
        r.request(`${patched.headers.get('Location')!}?digest=${sha256(bytes)}`, { method: 'PUT' }),
      );
      await claim.reached;
      await pushSmall(r, 'other', bytes);
      expect((await r.request(location, { method: 'DELETE' })).status).toBe(204);
      claim.release();
      const answer = await put;
      expect(answer.status).toBe(404);
      expect(((await answer.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(
        'BLOB_UPLOAD_UNKNOWN',
      );
      expect((await r.request(`/v2/app/blobs/${sha256(bytes)}`, { method: 'HEAD' })).status).toBe(404);
      await expectBlob(r, 'other', bytes);
      // Served by another process too (nothing of this one's cached).
      await expectBlob(testRegistry({ storage: store }), 'other', bytes);
    });

    it('a PATCH that wins over a completion publishing without a claim keeps the tail that completion named', async () => {
      // The completion's blob names the first tail; another push links that blob before the PATCH
      // replaces the tail. The PATCH must not delete the tail it replaced: the blob is someone's now.
      const store = new ControlledStore(await driver.make());
      const r = testRegistry({ storage: store });
      const first = randomBytes(3000, 22);
      const location = await begin(r);
      const patched = await r.request(location, { method: 'PATCH', body: first });
      expect(patched.status).toBe(202);
      const next = patched.headers.get('Location')!;
      const claim = pauseAt(
        store,
        (c) => c.actor?.name === 'put' && c.op === 'put' && c.key.startsWith('uploads/'),
      );
      const put = runAs({ container: 'a', name: 'put' }, () =>
        r.request(`${next}?digest=${sha256(first)}`, { method: 'PUT' }),
      );
      await claim.reached;
      await pushSmall(r, 'other', first);
      const more = await r.request(next, {
        method: 'PATCH',
        body: randomBytes(1000, 23),
        headers: { 'Content-Range': '3000-3999' },
      });
      expect(more.status).toBe(202);
      claim.release();
      // The completion lost its session to the PATCH; whatever it answers, nothing of it is linked.
      expect([201, 400, 404, 416]).toContain((await put).status);
      await expectBlob(r, 'other', first);
      const fresh = testRegistry({ storage: store });
      await expectBlob(fresh, 'other', first);
    });

    it("a collection whose snapshot fell between a first PATCH's tail and its session write keeps the tail", async () => {
      // The POST wrote nothing; the first PATCH writes its tail, then creates the session. A
      // collection with a TTL of 0 (what an operator's `berth gc --upload-ttl 0` or the
      // simulation's quiet phase runs) takes its session snapshot in between: the tail is young and
      // no session owns it yet. It must stay, or the completion links a blob whose data is gone.
      const store = new ControlledStore(await driver.make());
      const r = testRegistry({ storage: store });
      const bytes = randomBytes(3000, 26);
      // The process's first POST writes its session while it loads the URL-signing key; this one does not.
      await begin(r, 'warm');
      const location = await begin(r);
      expect(await store.list('uploads/')).toMatchObject({ keys: [expect.stringContaining('uploads/')] });
      const session = pauseAt(
        store,
        (c) => c.actor?.name === 'patch' && c.op === 'put' && c.key.startsWith('uploads/'),
      );
      const patch = runAs({ container: 'a', name: 'patch' }, () =>
        r.request(location, { method: 'PATCH', body: bytes }),
      );
      await session.reached;
      // Whole seconds on S3: the tail is older than the snapshot, as it would be after any delay.
      await nextStoreSecond(store);
      const collected = await gc(r, { uploadTtlMs: 0 });
      expect(collected.deleted.filter((d) => d.kind === 'tail')).toEqual([]);
      session.release();
      const patched = await patch;
      expect(patched.status, await patched.clone().text()).toBe(202);
      const put = await r.request(`${patched.headers.get('Location')!}?digest=${sha256(bytes)}`, {
        method: 'PUT',
      });
      expect(put.status).toBe(201);
      await expectBlob(r, 'app', bytes);
      await expectBlob(testRegistry({ storage: store }), 'app', bytes);
    });

    it('removing a stale session deletes its old tail unless a blob names it', async () => {
      // A completion wrote the blob naming the tail, then its claim failed (the store refused it):
      // the session stayed as it was, and another push linked that blob. When the session is
      // removed as stale, long after any completion could still name its tail, the tail is looked
      // up under its digest: it is the blob's data now, so it stays. A second stale session's tail,
      // which nothing names, goes with it.
      const store = new ControlledStore(await driver.make());
      const r = testRegistry({ storage: store });
      const named = randomBytes(3000, 24);
      const location = await begin(r);
      const patched = await r.request(location, { method: 'PATCH', body: named });
      const claim = pauseAt(
        store,
        (c) => c.actor?.name === 'put' && c.op === 'put' && c.key.startsWith('uploads/'),
      );
      const put = runAs({ container: 'a', name: 'put' }, () =>
        r.request(`${patched.headers.get('Location')!}?digest=${sha256(named)}`, { method: 'PUT' }),
      );
      await claim.reached;
      claim.release('fail');
      expect((await put).status).toBeGreaterThanOrEqual(500);
      await pushSmall(r, 'other', named);
      const unnamed = randomBytes(2000, 25);
      const second = await begin(r);
      expect((await r.request(second, { method: 'PATCH', body: unnamed })).status).toBe(202);
      const tails = async () => (await store.list('data/')).keys.filter((key) => key.includes('.tail-'));
      const secondId = second.slice(second.lastIndexOf('/') + 1).split('.')[0]!;
      // The other push's own tail stays too: that push found the blob stored and left its tail to
      // garbage collection (its session is gone, so no stale-session removal sees it).
      expect(await tails()).toHaveLength(3);
      // Later than the publish window and the time a write may take to land.
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 11 * 60_000 });
      expect(await r.registry.uploads.purgeStale(0, Date.now() + 1_000)).toBe(2);
      const left = await tails();
      expect(left).toHaveLength(2);
      expect(left.filter((key) => key.includes(secondId))).toEqual([]);
      await expectBlob(r, 'other', named);
      await expectBlob(testRegistry({ storage: store }), 'other', named);
    });

    it('pushing the bytes of a blob whose data was lost repairs it, for the repositories that link it too', async () => {
      const r = testRegistry({ storage: await driver.make() });
      const bytes = randomBytes(3000, 13);
      await pushSmall(r, 'app', bytes);
      const digest = parseDigest(sha256(bytes));
      const info = await r.registry.blobs.stat('app' as RepositoryName, digest);
      expect(info?.dataKey).not.toBe(keys.blob(digest));
      await r.storage.delete(info!.dataKey); // however it happened
      expect((await blobBytes(r, 'app', digest.digest)).status).toBe(404);
      await pushSmall(r, 'other', bytes);
      await expectBlob(r, 'other', bytes);
      await expectBlob(r, 'app', bytes);
    });

    it('a session whose request crashed mid-PATCH is writable again from the offset GET reports', async () => {
      const inner = await driver.make();
      const store = new ControlledStore(inner);
      // The lease a registry gets by default (BERTH_UPLOAD_LEASE_SECONDS).
      const leaseMs = parseConfig({}).uploadLeaseSeconds * 1000;
      const r = testRegistry({ storage: store, leaseMs });
      const first = randomBytes(2000, 14);
      // Enough for a multipart part: the request claims the session before it writes one.
      const rest = randomBytes(6 * 1024 * 1024, 15);
      const range = `2000-${2000 + rest.byteLength - 1}`;
      const location = await begin(r);
      expect(
        (await r.request(location, { method: 'PATCH', body: first, headers: { 'Content-Range': '0-1999' } }))
          .status,
      ).toBe(202);
      // The server dies while the second PATCH writes its tail, after it claimed the session for its part.
      store.setGate((c) =>
        c.actor?.name === 'patch' && c.op === 'put' && c.key.startsWith('data/') ? 'crash-before' : 'run',
      );
      void runAs({ container: 'server-1', name: 'patch' }, () =>
        r.request(location, { method: 'PATCH', body: rest, headers: { 'Content-Range': range } }),
      );
      await vi.waitFor(() => expect(store.crashed.has('server-1')).toBe(true), { timeout: 30_000 });
      // A new server process on the same store.
      const restarted = testRegistry({ storage: inner, leaseMs });
      const status = await restarted.request(location);
      expect(status.status).toBe(204);
      expect(status.headers.get('Range')).toBe('0-1999');
      const retry = () =>
        restarted.request(location, {
          method: 'PATCH',
          body: rest,
          headers: { 'Content-Range': range },
        });
      if (driver.name !== 'filesystem') {
        // Other processes may still be alive on a shared store: the claim holds until its lease ends,
        // about a minute. (The filesystem store has one server process: its restart frees it at once.)
        const busy = await retry();
        expect(busy.status).toBe(416);
        expect(busy.headers.get('Range')).toBe('0-1999');
        vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 61_000 });
      }
      expect((await retry()).status).toBe(202);
      const whole = new Uint8Array([...first, ...rest]);
      expect((await restarted.request(`${location}?digest=${sha256(whole)}`, { method: 'PUT' })).status).toBe(
        201,
      );
      await expectBlob(restarted, 'app', whole);
    });
  });
}

describe('upload session leases', () => {
  it('a small PATCH holds no lease: one that crashed before its state write blocks nothing, and the session is where it was', async () => {
    const inner = new MemoryDriver();
    const store = new ControlledStore(inner);
    const r = testRegistry({ storage: store });
    const location = await begin(r);
    // The server dies after writing the PATCH's tail, before the state that would name it.
    store.setGate((c) =>
      c.actor?.name === 'patch' && c.op === 'put' && c.key.startsWith('uploads/') ? 'crash-before' : 'run',
    );
    void runAs({ container: 'server-1', name: 'patch' }, () =>
      r.request(location, { method: 'PATCH', body: randomBytes(3000, 18) }),
    );
    await vi.waitFor(() => expect(store.crashed.has('server-1')).toBe(true), { timeout: 30_000 });
    // Another process (a shared store: S3) takes the session at once, without waiting for a lease.
    const other = testRegistry({ storage: inner });
    const status = await other.request(location);
    expect(status.status).toBe(204);
    expect(status.headers.get('Range')).toBe('0-0');
    const bytes = randomBytes(2000, 19);
    const patched = await other.request(location, { method: 'PATCH', body: bytes });
    expect(patched.status).toBe(202);
    expect(patched.headers.get('Range')).toBe('0-1999');
    expect(
      (await other.request(`${patched.headers.get('Location')}?digest=${sha256(bytes)}`, { method: 'PUT' }))
        .status,
    ).toBe(201);
    await expectBlob(other, 'app', bytes);
  });

  it('a live request keeps its claim past the lease by renewing it; another request gets 416 meanwhile', async () => {
    const r = testRegistry({ leaseMs: 3_000 });
    const location = await begin(r);
    let release!: () => void;
    const stalled = new Promise<void>((resolve) => (release = resolve));
    // More than a multipart part: the request claims the session when it writes the part.
    const first = randomBytes(6 * 1024 * 1024, 16);
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(first);
        await stalled; // a slow client: the rest of the body comes much later than the lease
        controller.close();
      },
    });
    const slow = r.request(location, { method: 'PATCH', body, duplex: 'half' } as RequestInit);
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    const other = await r.request(location, { method: 'PATCH', body: randomBytes(10, 17) });
    expect(other.status).toBe(416);
    release();
    expect((await slow).status).toBe(202);
    expect((await r.request(`${location}?digest=${sha256(first)}`, { method: 'PUT' })).status).toBe(201);
  });
});

describe('direct uploads (the _berth extension) under a racing cancel', () => {
  it('a cancel whose takeover lost to the completion and that then finds the session verifying leaves it alone', async () => {
    // Memory only: the extension needs a store that signs URLs, which the memory store imitates.
    const store = new ControlledStore(new MemoryDriver({ direct: true }));
    const r = testRegistry({ storage: store });
    const bytes = randomBytes(3000, 31);
    const location = await begin(r);
    const ref = location.split('/').pop()!;
    const base = `/v2/app/_berth/v1/uploads/${ref}`;
    const urls = await r.request(`${base}/parts`, { method: 'POST', body: JSON.stringify({ parts: [1] }) });
    expect(urls.status).toBe(200);
    const part = new URL(((await urls.json()) as { parts: { url: string }[] }).parts[0]!.url);
    await store.multipart.uploadPart(
      part.pathname.slice(1),
      part.searchParams.get('uploadId')!,
      1,
      bytes,
      bytes.byteLength,
    );
    // The cancel has read the session (no claim on it yet) and is about to take it over.
    const takeover = pauseAt(store, (c) => c.actor?.name === 'cancel' && writes(c.op));
    const cancel = runAs({ container: 'a', name: 'cancel' }, () => r.request(location, { method: 'DELETE' }));
    await takeover.reached;
    // The completion claims the session, completes the parts and writes `verifying`; it is held as
    // it publishes the blob.
    const publish = pauseAt(
      store,
      (c) => c.actor?.name === 'complete' && c.op === 'put' && c.key.startsWith('blobs/'),
    );
    const complete = runAs({ container: 'b', name: 'complete' }, () =>
      r.request(`${base}/complete`, {
        method: 'POST',
        body: JSON.stringify({ digest: sha256(bytes), size: bytes.byteLength }),
      }),
    );
    await publish.reached;
    // The cancel's write fails (the session changed), it looks again and finds it verifying.
    takeover.release();
    const cancelled = await cancel;
    expect(cancelled.status).toBe(409);
    publish.release();
    expect((await complete).status).toBe(201);
    await expectBlob(r, 'app', bytes);
  });
});
