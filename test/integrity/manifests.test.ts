import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../lib/registry/keys.ts';
import { parseDigest } from '../../lib/oci/digest.ts';
import type { RepositoryName } from '../../lib/oci/names.ts';
import { MAX_TAGS_PER_PUT } from '../../lib/registry/manifests.ts';
import { errorCode, pushImage, sha256, testRegistry, type TestRegistry } from '../http/harness.ts';
import {
  deleteManifest,
  gc,
  gcDrivers,
  imageOf,
  pullAndVerify,
  push,
  storedKeys,
  uploadBlobs,
} from '../gc/harness.ts';
import { ControlledStore, pauseAt, runAs } from '../sim/controlled-store.ts';

/**
 * Manifests and tags under races and crashes, on every store (RELIABILITY.md, findings 2, 7 and 8).
 */

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function putManifest(r: TestRegistry, repo: string, reference: string, bytes: Uint8Array, query = '') {
  return r.request(`/v2/${repo}/manifests/${reference}${query}`, {
    method: 'PUT',
    headers: { 'Content-Type': OCI_MANIFEST },
    body: bytes as Uint8Array<ArrayBuffer>,
  });
}

/** A tag that resolves names a manifest that exists by digest and pulls whole. */
async function expectTagConsistent(
  r: TestRegistry,
  repo: string,
  tag: string,
): Promise<'present' | 'absent'> {
  const byTag = await r.request(`/v2/${repo}/manifests/${tag}`, { method: 'HEAD' });
  if (byTag.status === 404) return 'absent';
  expect(byTag.status).toBe(200);
  const digest = byTag.headers.get('Docker-Content-Digest')!;
  expect((await r.request(`/v2/${repo}/manifests/${digest}`, { method: 'HEAD' })).status, 'by digest').toBe(
    200,
  );
  await pullAndVerify(r, repo, tag);
  return 'present';
}

for (const driver of gcDrivers()) {
  describe.skipIf(!driver.available)(`manifests and tags under races and crashes on ${driver.name}`, () => {
    beforeAll(() => driver.setup(), 30_000);
    afterAll(() => driver.teardown());

    it('a tag PUT whose tag lands after a DELETE of its manifest swept the tags never names a deleted manifest', async () => {
      const store = new ControlledStore(await driver.make());
      const r = testRegistry({ storage: store });
      const image = imageOf(70);
      await uploadBlobs(r, 'app', image.blobs);
      expect((await putManifest(r, 'app', image.digest, image.manifest)).status).toBe(201);
      // The tag PUT has written (rewritten) the manifest; its tag write waits while the DELETE runs whole.
      const held = pauseAt(
        store,
        (c) => c.actor?.name === 'tag' && c.op === 'put' && c.key.includes('/_tags/'),
      );
      const tagging = runAs({ container: 'a', name: 'tag' }, () =>
        putManifest(r, 'app', 'v1', image.manifest),
      );
      await held.reached;
      expect((await r.request(`/v2/app/manifests/${image.digest}`, { method: 'DELETE' })).status).toBe(202);
      held.release();
      expect((await tagging).status).toBe(201);
      // Acknowledged after the delete: the push counts as the later one, and its tag pulls.
      expect(await expectTagConsistent(r, 'app', 'v1')).toBe('present');
      await gc(r, { deleteUntagged: true });
      expect(await expectTagConsistent(r, 'app', 'v1')).toBe('present');
    });

    it('garbage collection keeps what a tag needs even when the tag names a manifest that is gone', async () => {
      // However a tag came to name a missing manifest (a crash, a store restored from backup), its
      // copy of the manifest is what pulls by tag read: collection must keep the blobs it names.
      const r = testRegistry({ storage: await driver.make() });
      const image = imageOf(71);
      await push(r, 'app', 'v1', image);
      await r.storage.delete(keys.manifest('app' as RepositoryName, parseDigest(image.digest)));
      await gc(r, { deleteUntagged: true });
      await gc(r);
      const pulled = await r.request('/v2/app/manifests/v1');
      expect(pulled.status).toBe(200);
      for (const blob of image.blobs) {
        expect((await r.request(`/v2/app/blobs/${sha256(blob)}`)).status).toBe(200);
      }
    });

    it('a crash after the tag was written leaves the repository in the catalog', async () => {
      const store = new ControlledStore(await driver.make());
      const r = testRegistry({ storage: store });
      const image = imageOf(72);
      await uploadBlobs(r, 'crashy', image.blobs);
      store.setGate((c) => (c.actor?.name === 'push' && c.key.includes('/_tags/') ? 'crash-after' : 'run'));
      void runAs({ container: 'server', name: 'push' }, () => putManifest(r, 'crashy', 'v1', image.manifest));
      await expect.poll(() => store.crashed.has('server'), { timeout: 30_000 }).toBe(true);
      const restarted = testRegistry({ storage: store.inner });
      expect((await restarted.request('/v2/crashy/tags/list')).status).toBe(200);
      const catalog = (await (await restarted.request('/v2/_catalog')).json()) as { repositories: string[] };
      expect(catalog.repositories).toContain('crashy');
    });

    it('one manifest PUT may set a bounded number of tags, each a copy, and is refused whole beyond it', async () => {
      const r = testRegistry({ storage: await driver.make() });
      const image = imageOf(73);
      await uploadBlobs(r, 'app', image.blobs);
      const tags = (n: number) => Array.from({ length: n }, (_, i) => `tag=t${i}`).join('&');
      const refused = await putManifest(r, 'app', 'latest', image.manifest, `?${tags(1200)}`);
      expect(refused.status).toBe(400);
      expect(await errorCode(refused)).toBe('TAG_INVALID');
      expect(await storedKeys(r.storage, 'repos/app/_tags/')).toEqual([]);
      expect((await r.request(`/v2/app/manifests/${image.digest}`, { method: 'HEAD' })).status).toBe(404);
      const accepted = await putManifest(
        r,
        'app',
        'latest',
        image.manifest,
        `?${tags(MAX_TAGS_PER_PUT - 1)}`,
      );
      expect(accepted.status).toBe(201);
      expect(await storedKeys(r.storage, 'repos/app/_tags/')).toHaveLength(MAX_TAGS_PER_PUT);
      await pullAndVerify(r, 'app', 't42');
    });

    it('a large manifest may set fewer tags: the copies are bounded in bytes too', async () => {
      const r = testRegistry({ storage: await driver.make() });
      const image = imageOf(74);
      await uploadBlobs(r, 'app', image.blobs);
      const big = JSON.parse(new TextDecoder().decode(image.manifest)) as Record<string, unknown>;
      big.annotations = { padding: 'x'.repeat(2 * 1024 * 1024) };
      const bytes = new TextEncoder().encode(JSON.stringify(big));
      const query = `?${Array.from({ length: 40 }, (_, i) => `tag=t${i}`).join('&')}`;
      const refused = await putManifest(r, 'app', 'latest', bytes, query);
      expect(refused.status).toBe(400);
      const body = (await refused.json()) as { errors: { code: string; message: string }[] };
      expect(body.errors[0]!.message).toMatch(
        /at most 31 are allowed per request for a manifest of \d+ bytes/,
      );
      expect((await putManifest(r, 'app', 'latest', bytes, '?tag=a&tag=b')).status).toBe(201);
    });

    it('garbage collection removes the catalog entry of a repository left empty, and keeps one a push fills meanwhile', async () => {
      const r = testRegistry({ storage: await driver.make() });
      const image = imageOf(77);
      await push(r, 'kept', 'v1', image);
      // Entries without content: a push that failed after writing its entry, and a repository emptied.
      await r.storage.put(keys.catalog('ghost' as RepositoryName), new Uint8Array(0));
      await r.storage.put(keys.catalog('refilled' as RepositoryName), new Uint8Array(0));
      const result = await gc(r, {
        onPhase: async (phase) => {
          if (phase === 'settle') await push(r, 'refilled', 'v1', image);
        },
      });
      expect(result.deleted.filter((d) => d.kind === 'catalog').map((d) => d.key)).toEqual(['catalog/ghost']);
      const catalog = (await (await r.request('/v2/_catalog')).json()) as { repositories: string[] };
      expect(catalog.repositories).toEqual(['kept', 'refilled']);
      await pullAndVerify(r, 'refilled', 'v1');
    });

    it('garbage collection removes a referrer entry whose manifest is gone', async () => {
      const r = testRegistry({ storage: await driver.make() });
      const image = imageOf(78);
      await push(r, 'app', 'v1', image);
      const subject = parseDigest(image.digest);
      const ghost = parseDigest(sha256('a manifest that was deleted'));
      await r.storage.put(
        keys.referrer('app' as RepositoryName, subject, ghost),
        new TextEncoder().encode(JSON.stringify({ mediaType: OCI_MANIFEST, digest: ghost.digest, size: 10 })),
      );
      await gc(r);
      const listed = (await (await r.request(`/v2/app/referrers/${image.digest}`)).json()) as {
        manifests: unknown[];
      };
      expect(listed.manifests).toEqual([]);
      await pullAndVerify(r, 'app', 'v1');
    });

    it('garbage collection writes back the referrer entry of a manifest whose PUT failed after writing it', async () => {
      const r = testRegistry({ storage: await driver.make() });
      const image = imageOf(79);
      await push(r, 'app', 'v1', image);
      const signature = await pushImage(r, 'app', 'sig', {
        subject: { digest: image.digest, size: image.manifest.byteLength, mediaType: OCI_MANIFEST },
        artifactType: 'application/vnd.example.signature',
      });
      const listed = async () =>
        (
          (await (await r.request(`/v2/app/referrers/${image.digest}`)).json()) as {
            manifests: { digest: string }[];
          }
        ).manifests.map((m) => m.digest);
      expect(await listed()).toEqual([signature.digest]);
      // As if the entry's write had failed after the manifest's (the client was told 503).
      await r.storage.delete(
        keys.referrer('app' as RepositoryName, parseDigest(image.digest), parseDigest(signature.digest)),
      );
      expect(await listed()).toEqual([]);
      await gc(r);
      expect(await listed()).toEqual([signature.digest]);
    });

    it('a DELETE by digest removes every tag naming the manifest, and nothing of another', async () => {
      const r = testRegistry({ storage: await driver.make() });
      const one = imageOf(75);
      const two = imageOf(76);
      await push(r, 'app', 'a', one);
      await push(r, 'app', 'b', one);
      await push(r, 'app', 'c', two);
      await deleteManifest(r, 'app', one.digest);
      expect(await storedKeys(r.storage, 'repos/app/_tags/')).toEqual(['repos/app/_tags/c']);
      await pullAndVerify(r, 'app', 'c');
    });
  });
}
