import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GC_KEYS } from '../../lib/gc/state.ts';
import { keys, meta } from '../../lib/registry/keys.ts';
import type { RepositoryName } from '../../lib/oci/names.ts';
import { parseDigest } from '../../lib/oci/digest.ts';
import { sha256, testRegistry } from '../http/harness.ts';
import {
  deleteManifest,
  gc,
  gcDrivers,
  headBlobs,
  imageOf,
  pullAndVerify,
  push,
  putManifest,
  storedKeys,
} from '../gc/harness.ts';
import { ControlledStore, runAs } from '../sim/controlled-store.ts';
import type { StorageDriver } from '../../lib/storage/port.ts';
import { imageManifest } from '../http/harness.ts';

/**
 * Garbage collection killed and resumed, and what keeps two collectors from
 * working at once, on every store.
 */

const MINUTE = 60_000;

/** docker's upload: POST, PATCH with the whole blob, PUT ?digest without bytes. */
async function uploadChunked(
  r: ReturnType<typeof testRegistry>,
  repo: string,
  blob: Uint8Array,
): Promise<void> {
  const started = await r.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(started.status).toBe(202);
  const patched = await r.request(started.headers.get('Location')!, {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: blob as Uint8Array<ArrayBuffer>,
  });
  expect(patched.status).toBe(202);
  const location = patched.headers.get('Location')!;
  const done = await r.request(`${location}${location.includes('?') ? '&' : '?'}digest=${sha256(blob)}`, {
    method: 'PUT',
  });
  expect(done.status).toBe(201);
}

/**
 * An image pushed to `app` and deleted (its blobs garbage), and a new image that shares its config
 * blob D: what a collection sets aside while a push comes to rely on D again. `chunked`: the old
 * image's config is uploaded docker's way first, so D's bytes are in a data object of its own.
 */
async function sharedConfigSetup(driver: { make(): Promise<StorageDriver> }, seed: number, chunked = false) {
  const store = new ControlledStore(await driver.make());
  const r = testRegistry({ storage: store });
  const old = imageOf(seed);
  const [config] = old.blobs as [Uint8Array<ArrayBuffer>];
  if (chunked) await uploadChunked(r, 'app', config);
  await push(r, 'app', 'old', old);
  await deleteManifest(r, 'app', old.digest);
  const layer = imageOf(seed + 1).blobs[1]!;
  const image = { blobs: [config, layer], manifest: imageManifest(config, [layer]), digest: '' };
  image.digest = sha256(image.manifest);
  return { store, r, old, config, layer, image, d: parseDigest(sha256(config)) };
}

/**
 * Runs a collection that is killed right after it deletes blob `d`, with `push` run (as a client)
 * at the moment the collector reads that blob to set it aside, after the blob's link was set aside.
 */
async function collectorKilledAtBlob(
  setup: Awaited<ReturnType<typeof sharedConfigSetup>>,
  push: () => Promise<void>,
): Promise<void> {
  const { store, r, d } = setup;
  let pushed = false;
  store.setGate(async (c) => {
    if (c.actor?.name !== 'gc') return 'run';
    if (c.op === 'get' && c.key === keys.blob(d) && !pushed) {
      pushed = true;
      await runAs({ container: 'client', name: 'push' }, push);
    }
    return c.op === 'delete' && c.key === keys.blob(d) ? 'crash-after' : 'run';
  });
  void runAs({ container: 'gc-1', name: 'gc' }, () => gc(r));
  await expect.poll(() => store.crashed.has('gc-1'), { timeout: 30_000 }).toBe(true);
  expect(pushed).toBe(true);
}

for (const driver of gcDrivers()) {
  describe.skipIf(!driver.available)(`garbage collection crash and resume on ${driver.name}`, () => {
    beforeAll(() => driver.setup(), 30_000);
    afterAll(() => driver.teardown());

    it('a run killed after setting aside a blob a push had just come to rely on restores it when resumed', async () => {
      const { store, r, old, layer, image, d } = await sharedConfigSetup(driver, 80);
      // The collector dies right after it deleted blob D (its copy is set aside).
      store.setGate((c) =>
        c.actor?.name === 'gc' && c.op === 'delete' && c.key === keys.blob(d) ? 'crash-after' : 'run',
      );
      const first = runAs({ container: 'gc-1', name: 'gc' }, () =>
        gc(r, {
          onPhase: async (phase) => {
            if (phase !== 'quarantine') return;
            // docker: HEAD D (200, so it is not uploaded), then PUT the manifest (201).
            await runAs({ container: 'client', name: 'push' }, async () => {
              const missing = await headBlobs(r, 'app', image);
              expect(missing.map((b) => sha256(b))).toEqual([sha256(layer)]);
              await r.request(`/v2/app/blobs/uploads/?digest=${sha256(layer)}`, {
                method: 'POST',
                body: layer,
              });
              expect((await putManifest(r, 'app', 'new', image)).status).toBe(201);
            });
          },
        }),
      );
      void first;
      await expect.poll(() => store.crashed.has('gc-1'), { timeout: 30_000 }).toBe(true);
      // The pull is broken until a collection finishes; the next one resumes the dead one's work
      // once its lock has expired (five minutes later here, by the collector's clock).
      const later = Date.now() + 6 * MINUTE;
      const resumed = await gc(r, { now: () => later });
      expect(resumed.status).toBe('done');
      await pullAndVerify(r, 'app', 'new');
      expect(resumed.restored).toBeGreaterThan(0);
      expect(await storedKeys(r.storage, 'gc/quarantine/')).toEqual([]);
      // Garbage of the old image went, as it would have without the crash.
      expect((await r.request(`/v2/app/blobs/${sha256(old.blobs[2]!)}`, { method: 'HEAD' })).status).toBe(
        404,
      );
      expect(await gc(r, { now: () => later })).toMatchObject({ status: 'done' });
      await pullAndVerify(r, 'app', 'new');
    });

    it('a run killed after setting aside a blob whose link a push wrote again restores it when resumed', async () => {
      // Found by the simulation (schedules 4045 and 5889): the resumed run saw the link written
      // again, counted the blob as needed, and so skipped it without noticing the crashed run had
      // already moved it; the blob's copy went with the run's leftovers.
      const setup = await sharedConfigSetup(driver, 82);
      const { r, config, layer, image } = setup;
      // The link of D in app is set aside already; a push uploads D again (the blob is still there,
      // so only its link is written) and a manifest that uses it. The collector dies after deleting D.
      await collectorKilledAtBlob(setup, async () => {
        for (const blob of [config, layer])
          await r.request(`/v2/app/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob });
        expect((await putManifest(r, 'app', 'new', image)).status).toBe(201);
      });
      const later = Date.now() + 6 * MINUTE;
      const resumed = await gc(r, { now: () => later });
      expect(resumed.status).toBe('done');
      await pullAndVerify(r, 'app', 'new');
      expect(await storedKeys(r.storage, 'gc/quarantine/')).toEqual([]);
      expect(await gc(r, { now: () => later })).toMatchObject({ status: 'done' });
      await pullAndVerify(r, 'app', 'new');
    });

    it('a run killed after setting aside a blob that was then uploaded again re-points the links that name its old data', async () => {
      // docker's way (POST, PATCH, PUT): the blob's bytes are in a data object the blob points at, so
      // a blob uploaded again names new data, and a link written before names the old.
      const setup = await sharedConfigSetup(driver, 84, true);
      const { r, config, layer, image, d } = setup;
      // The blob is still there: the push only links it (naming its data) and tags an image.
      await collectorKilledAtBlob(setup, async () => {
        await uploadChunked(r, 'app', config);
        await uploadChunked(r, 'app', layer);
        expect((await putManifest(r, 'app', 'new', image)).status).toBe(201);
      });
      // Before the collection resumes, another repository uploads the same bytes: the blob is gone,
      // so it is stored anew, with new data.
      await runAs({ container: 'client', name: 'other' }, () => uploadChunked(r, 'other', config));
      const later = Date.now() + 6 * MINUTE;
      expect((await gc(r, { now: () => later, uploadTtlMs: 0 })).status).toBe('done');
      expect((await gc(r, { now: () => later, uploadTtlMs: 0 })).status).toBe('done');
      // The link names the blob's data now: a redirected GET (S3) presigns the link's data key, and
      // the old data went with the collection (a streamed GET would repair a stale link, but a
      // redirect cannot).
      const link = await r.storage.head(keys.layerLink('app' as RepositoryName, d));
      const blob = await r.storage.head(keys.blob(d));
      expect(link?.metadata[meta.dataKey]).toBe(blob?.metadata[meta.dataKey]);
      await pullAndVerify(r, 'app', 'new');
      expect(await storedKeys(r.storage, 'gc/quarantine/')).toEqual([]);
    });

    it('a lock left by a collector process that no longer exists on this host is taken over at once', async () => {
      const r = testRegistry({ storage: await driver.make() });
      const image = imageOf(82);
      await push(r, 'app', 'v1', image);
      await deleteManifest(r, 'app', image.digest);
      const dead = spawnSync('true').pid!; // exited by now
      await r.storage.put(
        GC_KEYS.lock,
        new TextEncoder().encode(
          JSON.stringify({
            token: 'dead',
            until: Date.now() + 60 * MINUTE,
            holder: { host: hostname(), pid: dead, since: new Date().toISOString() },
          }),
        ),
      );
      const result = await gc(r);
      expect(result.status).toBe('done');
      expect(await storedKeys(r.storage, 'blobs/')).toEqual([]);
    });

    it('a collector whose lock was taken over stops at its next save, changing nothing more', async () => {
      const r = testRegistry({ storage: await driver.make() });
      const kept = imageOf(83);
      const gone = imageOf(84);
      await push(r, 'app', 'kept', kept);
      await push(r, 'app', 'gone', gone);
      await deleteManifest(r, 'app', gone.digest);
      let inner: Awaited<ReturnType<typeof gc>> | undefined;
      const outer = await gc(r, {
        onPhase: async (phase) => {
          if (phase !== 'blobs' || inner) return;
          // Another collector decides this one is dead (its lock expired, by its clock), and runs whole.
          await r.storage.delete(GC_KEYS.lock);
          inner = await gc(r);
        },
      });
      expect(inner?.status).toBe('done');
      expect(outer.status).toBe('locked');
      await pullAndVerify(r, 'app', 'kept');
      expect(await storedKeys(r.storage, 'gc/quarantine/')).toEqual([]);
      expect(await storedKeys(r.storage, GC_KEYS.state)).toEqual([]);
    });
  });
}
