import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Usage } from '../../lib/registry/usage.ts';
import { loadState } from '../../lib/gc/state.ts';
import { parseImmutableTags } from '../../lib/registry/tag-policy.ts';
import { keys } from '../../lib/registry/keys.ts';
import { storeTime } from '../../lib/registry/store-clock.ts';
import type { StorageDriver } from '../../lib/storage/port.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { errorCode, pushBlob, sha256, testRegistry, type TestRegistry } from '../http/harness.ts';
import {
  deleteManifest,
  gc,
  gcDrivers,
  headBlobs,
  imageOf,
  pullAndVerify,
  push,
  putManifest,
  registryOn,
  liveSessionKeys,
  pastOrphanAge,
  storedKeys,
  uploadBlobs,
  type Image,
} from './harness.ts';

const PHASES = ['mark', 'uploads', 'blobs', 'orphans', 'quarantine', 'settle', 'verify', 'finish'];

for (const driver of gcDrivers()) {
  describe.skipIf(!driver.available)(`garbage collection on ${driver.name}`, () => {
    beforeAll(() => driver.setup(), 30_000);
    afterAll(() => driver.teardown());
    const fresh = async () => registryOn(await driver.make());

    it('deletes the blobs and links of a deleted image and keeps everything a tag needs', async () => {
      const r = await fresh();
      const kept = imageOf(1);
      const gone = imageOf(2);
      await push(r, 'app', 'v1', kept);
      await push(r, 'app', 'v2', gone);
      await deleteManifest(r, 'app', gone.digest);
      const result = await gc(r);
      expect(result.status).toBe('done');
      const blobs = await storedKeys(r.storage, 'blobs/');
      expect(blobs.sort()).toEqual(kept.blobs.map((b) => keys.blob(parseD(sha256(b)))).sort());
      expect(await storedKeys(r.storage, 'repos/app/_layers/')).toHaveLength(kept.blobs.length);
      expect(result.bytesFreed).toBe(gone.blobs.reduce((t, b) => t + b.byteLength, 0));
      await pullAndVerify(r, 'app', 'v1');
      expect(await storedKeys(r.storage, 'gc/quarantine/')).toEqual([]);
    });

    it('layers pushed as PATCH then PUT (their bytes left in the tail): kept while tagged, collected with their tail after', async () => {
      const r = await fresh();
      const dockerPush = async (repo: string, tag: string, image: Image) => {
        for (const blob of image.blobs) await pushBlob(r, repo, blob as Uint8Array<ArrayBuffer>);
        expect((await putManifest(r, repo, tag, image)).status).toBe(201);
      };
      const kept = imageOf(41);
      const gone = imageOf(42);
      await dockerPush('app', 'v1', kept);
      await dockerPush('app', 'v2', gone);
      expect(await storedKeys(r.storage, 'data/')).toHaveLength(kept.blobs.length + gone.blobs.length);
      await deleteManifest(r, 'app', gone.digest);
      // uploadTtlMs 0: tails of every age are looked at; the ones blobs point at must stay.
      expect((await gc(r, { uploadTtlMs: 0 })).status).toBe('done');
      expect(await storedKeys(r.storage, 'data/')).toHaveLength(kept.blobs.length);
      expect((await storedKeys(r.storage, 'blobs/')).sort()).toEqual(
        kept.blobs.map((b) => keys.blob(parseD(sha256(b)))).sort(),
      );
      await pullAndVerify(r, 'app', 'v1');
    });

    it('keeps untagged manifests unless asked, then keeps what a tagged index or a kept subject needs', async () => {
      const r = await fresh();
      const old = imageOf(3);
      await push(r, 'app', 'latest', old);
      await push(r, 'app', 'latest', imageOf(4));
      const child = imageOf(5);
      await push(r, 'app', child.digest, child);
      const index = new TextEncoder().encode(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: [
            {
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              digest: child.digest,
              size: child.manifest.byteLength,
            },
          ],
        }),
      );
      const put = await r.request('/v2/app/manifests/multi', {
        method: 'PUT',
        headers: { 'Content-Type': 'application/vnd.oci.image.index.v1+json' },
        body: index,
      });
      expect(put.status).toBe(201);
      const signature = await pushReferrer(r, 'app', imageOf(4));
      await gc(r);
      expect((await r.request(`/v2/app/manifests/${old.digest}`, { method: 'HEAD' })).status).toBe(200);
      const result = await gc(r, { deleteUntagged: true });
      expect((await r.request(`/v2/app/manifests/${old.digest}`, { method: 'HEAD' })).status).toBe(404);
      expect(result.deleted.filter((d) => d.kind === 'manifest').map((d) => d.digest)).toEqual([old.digest]);
      await pullAndVerify(r, 'app', 'multi');
      await pullAndVerify(r, 'app', 'latest');
      expect((await r.request(`/v2/app/manifests/${signature}`, { method: 'HEAD' })).status).toBe(200);
      const referrers = (await (await r.request(`/v2/app/referrers/${imageOf(4).digest}`)).json()) as {
        manifests: unknown[];
      };
      expect(referrers.manifests).toHaveLength(1);
    });

    it('applies retention rules: newest N, kept patterns, untagged after D days', async () => {
      const r = await fresh();
      for (const [i, tag] of ['v1', 'dev-1', 'dev-2', 'v2', 'dev-3', 'latest'].entries()) {
        await push(r, 'team/app', tag, imageOf(10 + i));
      }
      await push(r, 'other', 'dev-1', imageOf(30));
      const rules = [
        { repositories: 'team/*', keepLast: 1, keepTags: ['v*', 'latest'], untaggedAfterDays: 0 },
      ];
      const dry = await gc(r, { retention: rules, dryRun: true });
      expect(
        dry.deleted
          .filter((d) => d.kind === 'tag')
          .map((d) => d.key.split('/').pop())
          .sort(),
      ).toEqual(['dev-1', 'dev-2']);
      expect((await tagsOf(r, 'team/app')).length).toBe(6);
      await gc(r, { retention: rules });
      expect(await tagsOf(r, 'team/app')).toEqual(['dev-3', 'latest', 'v1', 'v2']);
      expect(await tagsOf(r, 'other')).toEqual(['dev-1']);
      expect(
        (await r.request(`/v2/team/app/manifests/${imageOf(11).digest}`, { method: 'HEAD' })).status,
      ).toBe(404);
      for (const tag of ['dev-3', 'latest', 'v1', 'v2']) await pullAndVerify(r, 'team/app', tag);
      const byAge = {
        retention: [{ repositories: 'team/*', deleteOlderThanDays: 5, keepTags: ['latest'] }],
        immutable: parseImmutableTags('team/*:v1'),
      };
      // Ages are the store's: a collector whose own clock is ten days ahead deletes nothing more.
      await gc(r, { ...byAge, now: () => Date.now() + 10 * 86_400_000 });
      expect(await tagsOf(r, 'team/app')).toEqual(['dev-3', 'latest', 'v1', 'v2']);
      // S3 (MinIO) stamps objects with its own clock, which the test cannot move.
      if (!driver.age) return;
      // Older than D days on the store's clock: all but the kept ones go; immutable tags stay.
      await driver.age(r.storage, 10 * 86_400_000);
      await gc(r, byAge);
      expect(await tagsOf(r, 'team/app')).toEqual(['latest', 'v1']);
    });

    // The collector's clock and the store's disagree (a laptop running `berth gc` against S3, a
    // container with a bad clock): ages must come from the store alone, in both directions.
    it('judges ages on the store clock: a collector clock far ahead deletes nothing young, one far behind still collects', async () => {
      const r = await fresh();
      const image = imageOf(60);
      await push(r, 'app', 'v1', image);
      await deleteManifest(r, 'app', image.digest);
      const start = await r.request('/v2/app/blobs/uploads/', { method: 'POST' });
      const session = start.headers.get('Location')!;
      expect((await r.request(session, { method: 'PATCH', body: new Uint8Array(100) })).status).toBe(202);
      const year = 400 * 86_400_000;
      const options = { graceMs: 3600_000, uploadTtlMs: 2 * 3600_000, deleteUntagged: true };
      const ahead = await gc(r, { ...options, now: () => Date.now() + year });
      expect(ahead.deleted).toEqual([]);
      expect(await storedKeys(r.storage, 'blobs/')).toHaveLength(image.blobs.length);
      expect((await r.request(session)).status).toBe(204);
      if (!driver.age) return; // MinIO's clock cannot be moved (above)
      await driver.age(r.storage, 90 * 60_000);
      const behind = await gc(r, { ...options, now: () => Date.now() - year });
      expect(behind.deleted.filter((d) => d.kind === 'blob')).toHaveLength(image.blobs.length);
      expect(await storedKeys(r.storage, 'blobs/')).toEqual([]);
      // The session is younger than its TTL on the store's clock: still open.
      expect((await r.request(session)).status).toBe(204);
      await driver.age(r.storage, 60 * 60_000);
      const later = await gc(r, { ...options, now: () => Date.now() - year });
      expect(later.deleted.map((d) => d.kind)).toContain('upload');
      expect((await r.request(session)).status).toBe(404);
    });

    it('removes stale upload sessions, orphaned data objects and multipart uploads no session owns', async () => {
      const r = await fresh();
      const start = await r.request('/v2/app/blobs/uploads/', { method: 'POST' });
      await r.request(start.headers.get('Location')!, { method: 'PATCH', body: new Uint8Array(100) });
      const orphan = `data/${crypto.randomUUID()}`;
      await r.storage.put(orphan, new Uint8Array(10));
      await r.storage.multipart.create(`data/${crypto.randomUUID()}`);
      await push(r, 'app', 'v1', imageOf(40));
      // Leftovers are judged against the store's clock, which on S3 has whole seconds: something
      // stamped in the same second as the run's snapshot might be newer than it, and is kept.
      await nextStoreSecond(r.storage);
      // Young leftovers stay whatever the TTL: the writes that would make them owned may still land.
      const young = await gc(r, { uploadTtlMs: 0, dryRun: true });
      expect(young.deleted.map((d) => d.kind).sort()).toEqual(['upload']);
      const old = { uploadTtlMs: 0, ...(await pastOrphanAge(driver, r.storage)) };
      const dry = await gc(r, { ...old, dryRun: true });
      // The stale session's tail is reported on its own; the real run deletes it with the session.
      expect(dry.deleted.map((d) => d.kind).sort()).toEqual(['data', 'multipart', 'tail', 'upload']);
      await gc(r, old);
      expect(await liveSessionKeys(r.storage)).toEqual([]);
      expect(await storedKeys(r.storage, 'data/')).toEqual([]);
      const open = [];
      for await (const u of r.storage.multipart.listOpen('data/')) open.push(u);
      expect(open).toEqual([]);
      await pullAndVerify(r, 'app', 'v1');
    });

    // The race the issue names: docker HEADs a blob (200, exists), then PUTs the manifest, while a
    // collection that saw the blob unreferenced runs. Every placement of the two steps between the
    // collector's phases; the push retries once, as a client's retry would, and must end pullable.
    it('never loses an image pushed during a collection (HEAD exists -> PUT manifest at every step)', async () => {
      const image = imageOf(50);
      const slots = PHASES.length + 1;
      const pairs: [number, number][] = [];
      // Every pair in memory; on the slower stores, HEAD at the start and just before the set-aside.
      const heads = driver.name === 'memory' ? [...Array(slots).keys()] : [0, PHASES.indexOf('quarantine')];
      for (const head of heads) for (let put = head; put < slots; put++) pairs.push([head, put]);
      for (const [head, put] of pairs) {
        const r = await fresh();
        await push(r, 'app', 'v1', image);
        await deleteManifest(r, 'app', image.digest);
        let missing: Uint8Array[] | undefined;
        let pushed = false;
        const step = async (slot: number) => {
          if (slot === head) missing = await headBlobs(r, 'app', image);
          if (slot === put) {
            await uploadBlobs(r, 'app', missing!);
            const res = await putManifest(r, 'app', 'v2', image);
            if (res.status !== 201) {
              expect(await errorCode(res)).toBe('MANIFEST_BLOB_UNKNOWN');
              await push(r, 'app', 'v2', image);
            }
            pushed = true;
          }
        };
        await gc(r, { deleteUntagged: true, onPhase: (phase) => step(PHASES.indexOf(phase)) });
        await step(PHASES.length);
        expect(pushed).toBe(true);
        await pullAndVerify(r, 'app', 'v2').catch((err: Error) => {
          throw new Error(
            `HEAD before ${PHASES[head] ?? 'end'}, PUT before ${PHASES[put] ?? 'end'}: ${err.message}`,
          );
        });
        // A second collection must not take it either.
        await gc(r, { deleteUntagged: true });
        await pullAndVerify(r, 'app', 'v2');
      }
    }, 120_000);

    it('resumes after the janitor runs out of time, with the same outcome', async () => {
      const r = await fresh();
      for (let i = 0; i < 4; i++) await push(r, `repo-${i}`, 'v1', imageOf(60 + i));
      for (let i = 0; i < 4; i++) await deleteManifest(r, `repo-${i}`, imageOf(60 + i).digest);
      await push(r, 'repo-9', 'keep', imageOf(70));
      let budget = 0;
      let paused = 0;
      for (let invocation = 0; invocation < 100; invocation++) {
        budget = 3 + invocation;
        // Lambda's getRemainingTimeInMillis: plenty for a few checks, then none (a simulated timeout).
        const result = await gc(r, { remainingMs: () => (budget-- > 0 ? 600_000 : 0) });
        if (result.status === 'done') break;
        expect(result.status).toBe('paused');
        expect(await loadState(r.storage)).toBeDefined();
        paused++;
      }
      expect(paused).toBeGreaterThan(0);
      expect(await loadState(r.storage)).toBeUndefined();
      expect((await storedKeys(r.storage, 'blobs/')).length).toBe(imageOf(70).blobs.length);
      await pullAndVerify(r, 'repo-9', 'keep');
      expect(await storedKeys(r.storage, 'gc/quarantine/')).toEqual([]);
    });

    it('reports usage per repository, shared blobs once overall', async () => {
      const r = await fresh();
      const a = imageOf(80);
      await push(r, 'a', 'v1', a);
      await push(r, 'b', 'v1', a);
      await push(r, 'b', 'v2', imageOf(81, 1));
      const usage = await new Usage(r.storage).compute();
      const bytes = (img: Image) => img.blobs.reduce((t, b) => t + b.byteLength, 0);
      expect(usage.totalBlobs).toBe(a.blobs.length + 2);
      expect(usage.totalBytes).toBe(bytes(a) + bytes(imageOf(81, 1)));
      const [ua, ub] = usage.repositories;
      expect(ua).toMatchObject({
        name: 'a',
        blobs: 3,
        bytes: bytes(a),
        exclusiveBlobs: 0,
        exclusiveBytes: 0,
        tags: 1,
      });
      expect(ub).toMatchObject({
        name: 'b',
        blobs: 5,
        exclusiveBlobs: 2,
        exclusiveBytes: bytes(imageOf(81, 1)),
        tags: 2,
      });
    });
  });
}

describe('garbage collection, property', () => {
  // Random pushes, re-tags and deletes over a few repositories, then a collection: every tag left
  // pulls and verifies, and no blob remains that no manifest references.
  it('keeps everything a remaining tag needs and nothing unreferenced', async () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('push' as const),
        repo: fc.integer({ min: 0, max: 2 }),
        tag: fc.integer({ min: 0, max: 3 }),
        image: fc.integer({ min: 0, max: 5 }),
      }),
      fc.record({
        kind: fc.constant('untag' as const),
        repo: fc.integer({ min: 0, max: 2 }),
        tag: fc.integer({ min: 0, max: 3 }),
      }),
      fc.record({
        kind: fc.constant('delete' as const),
        repo: fc.integer({ min: 0, max: 2 }),
        image: fc.integer({ min: 0, max: 5 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), fc.boolean(), async (ops, untagged) => {
        const r = testRegistry({ storage: new MemoryDriver() });
        const images = Array.from({ length: 6 }, (_, i) => imageOf(100 + (i % 4), 1 + (i % 3)));
        for (const o of ops) {
          const repo = `r${o.repo}`;
          if (o.kind === 'push') await push(r, repo, `t${o.tag}`, images[o.image]!);
          else if (o.kind === 'untag')
            await r.request(`/v2/${repo}/manifests/t${o.tag}`, { method: 'DELETE' });
          else await r.request(`/v2/${repo}/manifests/${images[o.image]!.digest}`, { method: 'DELETE' });
        }
        await gc(r, { deleteUntagged: untagged });
        const referenced = new Set<string>();
        for (const repo of ['r0', 'r1', 'r2']) {
          const res = await r.request(`/v2/${repo}/tags/list`);
          const tags = res.status === 200 ? ((await res.json()) as { tags: string[] }).tags : [];
          for (const tag of tags) await pullAndVerify(r, repo, tag);
          for (const key of await storedKeys(r.storage, `repos/${repo}/_manifests/`)) {
            const m = JSON.parse(new TextDecoder().decode((await r.storage.get(key))!.body)) as {
              config: { digest: string };
              layers: { digest: string }[];
            };
            for (const d of [m.config, ...m.layers]) referenced.add(keys.blob(parseD(d.digest)));
          }
        }
        expect((await storedKeys(r.storage, 'blobs/')).sort()).toEqual([...referenced].sort());
      }),
      { numRuns: 40 },
    );
  }, 60_000);
});

function parseD(digest: string) {
  const [algorithm, hex] = digest.split(':') as ['sha256', string];
  return { algorithm, hex, digest } as Parameters<typeof keys.blob>[0];
}

async function tagsOf(r: TestRegistry, repo: string): Promise<string[]> {
  const res = await r.request(`/v2/${repo}/tags/list`);
  return ((await res.json()) as { tags: string[] }).tags.sort();
}

/** Pushes an untagged signature-like manifest whose subject is `subject`; returns its digest. */
async function pushReferrer(r: TestRegistry, repo: string, subject: Image): Promise<string> {
  const blob = new TextEncoder().encode('signature');
  await uploadBlobs(
    r,
    repo,
    await headBlobs(r, repo, { blobs: [blob], manifest: new Uint8Array(), digest: '' }),
  );
  const bytes = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.example.signature',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(blob), size: blob.byteLength },
      layers: [],
      subject: {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: subject.digest,
        size: subject.manifest.byteLength,
      },
    }),
  );
  const digest = sha256(bytes);
  const res = await putManifest(r, repo, digest, { blobs: [], manifest: bytes, digest });
  expect(res.status).toBe(201);
  return digest;
}

/** Waits until the store's clock is in a later whole second than now (S3 stamps whole seconds). */
async function nextStoreSecond(storage: StorageDriver): Promise<void> {
  const next = Math.floor((await storeTime(storage)) / 1000) * 1000 + 1000;
  while ((await storeTime(storage)) < next) await new Promise((resolve) => setTimeout(resolve, 100));
}
