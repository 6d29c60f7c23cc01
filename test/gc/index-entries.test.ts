// Garbage collection and indexes whose entries are blobs (BuildKit's registry cache): the index is
// what keeps the cache's blobs, so `berth gc --delete-untagged` (deleteUntagged: true, as the CLI
// passes it) must count its entries as references.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheIndex, pushCache } from '../http/cache-index.ts';
import { sha256 } from '../http/harness.ts';
import {
  deleteManifest,
  gc,
  gcDrivers,
  imageOf,
  pullAndVerify,
  push,
  registryOn,
  storedKeys,
} from './harness.ts';

for (const driver of gcDrivers()) {
  describe.skipIf(!driver.available)(`cache indexes and garbage collection on ${driver.name}`, () => {
    beforeAll(() => driver.setup(), 30_000);
    afterAll(() => driver.teardown());
    const fresh = async () => registryOn(await driver.make());

    it('a cache kept only by its index survives gc --delete-untagged, and goes once the index is deleted', async () => {
      const r = await fresh();
      const cache = cacheIndex(11, { layers: 3 });
      expect((await pushCache(r, 'app', 'buildcache', cache)).status).toBe(201);
      // Something for the run to collect, so it is seen to run: an image pushed and deleted.
      const gone = imageOf(12);
      await push(r, 'app', 'old', gone);
      await deleteManifest(r, 'app', gone.digest);

      const result = await gc(r, { deleteUntagged: true });
      expect(result.status).toBe('done');
      const deletedBlobs = result.deleted.filter((d) => d.kind === 'blob').map((d) => d.digest);
      expect(deletedBlobs.sort()).toEqual(gone.blobs.map((b) => sha256(b)).sort());
      for (const blob of cache.blobs) {
        const res = await r.request(`/v2/app/blobs/${sha256(blob)}`);
        expect(res.status, `cache blob ${sha256(blob)}`).toBe(200);
        expect(new Uint8Array(await res.arrayBuffer())).toEqual(blob);
      }
      const index = await r.request('/v2/app/manifests/buildcache');
      expect(index.headers.get('Docker-Content-Digest')).toBe(cache.digest);

      // The same cache pushed again (BuildKit's next export) needs no upload: every blob is there.
      for (const blob of cache.blobs) {
        expect((await r.request(`/v2/app/blobs/${sha256(blob)}`, { method: 'HEAD' })).status).toBe(200);
      }

      await deleteManifest(r, 'app', cache.digest);
      const second = await gc(r, { deleteUntagged: true });
      expect(
        second.deleted
          .filter((d) => d.kind === 'blob')
          .map((d) => d.digest)
          .sort(),
      ).toEqual(cache.blobs.map((b) => sha256(b)).sort());
      expect(await storedKeys(r.storage, 'blobs/')).toEqual([]);
    });

    it('an untagged cache index kept as the child of a tagged index keeps its blobs; an image beside it still pulls', async () => {
      const r = await fresh();
      const cache = cacheIndex(13, { oci: false });
      expect((await pushCache(r, 'app', cache.digest, cache)).status).toBe(201);
      const image = imageOf(14);
      await push(r, 'app', 'v1', image);
      const outer = JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: image.digest,
            size: image.manifest.byteLength,
          },
          { mediaType: cache.mediaType, digest: cache.digest, size: cache.bytes.byteLength },
        ],
      });
      const put = await r.request('/v2/app/manifests/bundle', {
        method: 'PUT',
        headers: { 'Content-Type': 'application/vnd.oci.image.index.v1+json' },
        body: outer,
      });
      expect(put.status).toBe(201);
      await r.request('/v2/app/manifests/v1', { method: 'DELETE' });

      const result = await gc(r, { deleteUntagged: true });
      expect(result.deleted).toEqual([]);
      await pullAndVerify(r, 'app', image.digest);
      for (const blob of cache.blobs) {
        expect((await r.request(`/v2/app/blobs/${sha256(blob)}`, { method: 'HEAD' })).status).toBe(200);
      }
    });
  });
}
