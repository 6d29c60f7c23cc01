import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { formatReport } from '../../lib/fsck/format.ts';
import type { Finding } from '../../lib/fsck/findings.ts';
import { exitCodeOf } from '../../lib/fsck/report.ts';
import { GC_KEYS } from '../../lib/gc/state.ts';
import { parseDigest } from '../../lib/oci/digest.ts';
import type { RepositoryName } from '../../lib/oci/names.ts';
import { keys, meta } from '../../lib/registry/keys.ts';
import { ControlledStore } from '../sim/controlled-store.ts';
import {
  gc,
  gcDrivers,
  imageOf,
  liveSessionKeys,
  pastOrphanAge,
  pullAndVerify,
  push,
  storedKeys,
} from '../gc/harness.ts';
import { pushImage, randomBytes, sha256, testRegistry, type TestRegistry } from '../http/harness.ts';
import { cacheIndex, pushCache } from '../http/cache-index.ts';
import { check, kinds, nextStoreSecond, OCI_INDEX, OCI_MANIFEST, populate, putManifest } from './harness.ts';

/*
 * `berth fsck` (lib/fsck) on every store: a clean registry is clean; every kind of breach planted by
 * hand is named with what it breaks; --repair mends what it may and nothing else; and neither pushes
 * in flight nor a collection in progress look broken.
 */

const repo = (name: string) => name as RepositoryName;
const d = parseDigest;

function only(findings: readonly Finding[], kind: Finding['kind']): Finding[] {
  return findings.filter((f) => f.kind === kind);
}

for (const driver of gcDrivers()) {
  describe.skipIf(!driver.available)(`berth fsck on ${driver.name}`, () => {
    beforeAll(() => driver.setup(), 30_000);
    afterAll(() => driver.teardown());
    const fresh = async () => testRegistry({ storage: await driver.make() });

    it('finds images, indexes, referrers, a build cache and small and multipart blobs clean, digests included', async () => {
      const r = await fresh();
      await populate(r);
      const report = await check(r, { verifyDigests: true });
      expect(kinds(report)).toEqual([]);
      expect(report).toMatchObject({
        clean: true,
        complete: true,
        counts: { broken: 0, inconsistent: 0, leftover: 0 },
        checked: { repositories: 4, tags: 6, manifests: 8 },
      });
      expect(report.checked.blobs).toBeGreaterThanOrEqual(14);
      expect(report.checked.bytesHashed).toBeGreaterThan(6 * 1024 * 1024);
      expect(exitCodeOf(report)).toBe(0);
      expect(formatReport(report)).toMatch(/^fsck: clean; checked 4 repositories, 6 tags, 8 manifests/m);
    });

    it('names each broken blob, manifest, tag and index entry with the repositories and tags it breaks', async () => {
      const r = await fresh();
      const p = await populate(r);
      const s = r.storage;
      // The multipart layer of app:v1 and app:latest loses its data.
      const big = d(p.app.layers[1]!);
      const bigData = (await s.head(keys.blob(big)))!.metadata[meta.dataKey]!;
      await s.delete(bigData);
      // The config of app:mono (stored whole, mounted into mirror) is gone, links left behind.
      const monoConfig = d(sha256(p.mono.blobs[0]!));
      await s.delete(keys.blob(monoConfig));
      // The second platform of team/web:multi loses its layer's link.
      const armLayer = d(p.index.childBlobs[1]![1]!);
      await s.delete(keys.layerLink(repo('team/web'), armLayer));
      // A blob entry of the build cache index is no longer linked.
      const cacheLayer = d(sha256(p.cache.blobs[0]!));
      await s.delete(keys.layerLink(repo('cache'), cacheLayer));
      // The signature (untagged) is overwritten with other bytes.
      await s.put(
        keys.manifest(repo('team/web'), d(p.referrer.digest)),
        new TextEncoder().encode('{"x":1}'),
        {
          contentType: OCI_MANIFEST,
        },
      );
      // Tag other:v1's copy no longer hashes to the digest it names.
      const other = await pushImage(r, 'other', 'v1');
      await s.put(keys.tag(repo('other'), 'v1' as never), new TextEncoder().encode('{}'), {
        contentType: OCI_MANIFEST,
        metadata: { [meta.digest]: other.digest },
      });
      // Tag odd:v1 names a manifest that is gone, and its copy is no manifest this registry accepts.
      const notManifest = new TextEncoder().encode('{"schemaVersion":1,"name":"odd"}');
      await s.put(keys.tag(repo('odd'), 'v1' as never), notManifest, {
        contentType: OCI_MANIFEST,
        metadata: { [meta.digest]: sha256(notManifest) },
      });
      await s.put(keys.catalog(repo('odd')), new Uint8Array(0));
      // A key the layout does not have.
      await s.put('blobs/sha256/not-a-digest', new Uint8Array(5));
      // A layer of app:mono stored whole gets other bytes (found only by --verify-digests).
      const monoLayer = d(sha256(p.mono.blobs[1]!));
      await s.put(keys.blob(monoLayer), randomBytes(p.mono.blobs[1]!.byteLength, 999));

      const plain = await check(r);
      expect(only(plain.findings, 'blob-corrupt')).toEqual([]);
      const report = await check(r, { verifyDigests: true });
      const broken = report.findings.filter((f) => f.severity === 'broken');
      expect(broken.map((f) => `${f.kind} ${f.key}`).sort()).toEqual(
        [
          `blob-corrupt ${keys.blob(monoLayer)}`,
          `blob-data-missing ${keys.blob(big)}`,
          `blob-missing ${keys.blob(monoConfig)}`,
          `index-entry-missing ${keys.manifest(repo('cache'), cacheLayer)}`,
          `manifest-corrupt ${keys.manifest(repo('team/web'), d(p.referrer.digest))}`,
          `reference-missing ${keys.layerLink(repo('team/web'), armLayer)}`,
          `tag-corrupt ${keys.tag(repo('other'), 'v1' as never)}`,
          `tag-dangling ${keys.tag(repo('odd'), 'v1' as never)}`,
        ].sort(),
      );
      expect(kinds(report)).toContain('unknown-key blobs/sha256/not-a-digest');
      const affects = (kind: Finding['kind']) => only(broken, kind)[0]!.affects;
      expect(affects('blob-data-missing')).toEqual([
        { repository: 'app', tags: ['latest', 'v1'], manifests: [p.app.digest] },
      ]);
      expect(affects('blob-missing')).toEqual([
        { repository: 'app', tags: ['mono'], manifests: [p.mono.digest] },
        { repository: 'mirror', tags: ['v1'], manifests: [p.mono.digest] },
      ]);
      expect(affects('blob-corrupt')).toEqual(affects('blob-missing'));
      expect(affects('reference-missing')).toEqual([
        { repository: 'team/web', tags: ['multi'], manifests: [p.index.children[1]] },
      ]);
      expect(affects('index-entry-missing')).toEqual([
        { repository: 'cache', tags: ['buildcache'], manifests: [p.cache.digest] },
      ]);
      expect(affects('manifest-corrupt')).toEqual([
        { repository: 'team/web', tags: [], manifests: [p.referrer.digest] },
      ]);
      expect(affects('tag-corrupt')).toEqual([{ repository: 'other', tags: ['v1'], manifests: [] }]);
      expect(affects('tag-dangling')).toEqual([{ repository: 'odd', tags: ['v1'], manifests: [] }]);
      expect(only(broken, 'tag-dangling')[0]!.message).toContain(
        'its copy is not a manifest this registry accepts',
      );
      expect(report.clean).toBe(false);
      expect(exitCodeOf(report)).toBe(1);
      const text = formatReport(report);
      expect(text).toContain('BROKEN (8): images that will not pull');
      expect(text).toContain(`blob ${big.digest}: its data ${bigData} (6.0 MiB) is missing`);
      expect(text).toContain('    breaks app:latest, app:v1\n');
      expect(text).toContain('    breaks app:mono; mirror:v1\n');
      expect(text).toContain(`    breaks team/web@${p.referrer.digest} (untagged)\n`);
      expect(text).toMatch(/^fsck: 8 broken, 0 inconsistent, 1 leftover \(5 B\); /m);

      // --repair changes none of it: it never deletes (or rewrites) a blob, a manifest or a tag.
      const before = await snapshot(r);
      const repaired = await check(r, { verifyDigests: true, repair: true });
      expect(repaired.findings.filter((f) => f.severity === 'broken')).toHaveLength(8);
      expect(repaired.repaired).toBe(0);
      expect(await snapshot(r)).toEqual(before);
    });

    it('--repair mends what is inconsistent and removes old upload leftovers; the next check is clean', async () => {
      const r = await fresh();
      const p = await populate(r);
      const s = r.storage;
      // app's manifest object is gone; its tags hold copies.
      await s.delete(keys.manifest(repo('app'), d(p.app.digest)));
      // cache is missing from the catalog.
      await s.delete(keys.catalog(repo('cache')));
      // The signature is missing from its subject's referrers list.
      await s.delete(keys.referrer(repo('team/web'), d(p.index.children[0]!), d(p.referrer.digest)));
      // The multipart layer was re-uploaded after its data was lost: its pointer names new data, and
      // app's links still name the old, which is gone.
      const big = d(p.app.layers[1]!);
      const pointer = (await s.head(keys.blob(big)))!;
      const oldData = pointer.metadata[meta.dataKey]!;
      const newData = keys.data(randomUUID());
      await s.put(newData, (await s.get(oldData))!.body);
      await s.put(keys.blob(big), new TextEncoder().encode('{}'), {
        contentType: 'application/json',
        metadata: { ...pointer.metadata, [meta.dataKey]: newData },
      });
      await s.delete(oldData);
      // A small layer of team/web (its upload's tail became its data) lost its blob pointer; the
      // links and the data are there.
      const amdLayer = d(p.index.childBlobs[0]![1]!);
      const tailData = (await s.head(keys.blob(amdLayer)))!.metadata[meta.dataKey]!;
      expect(tailData).toMatch(/^data\/.+\.tail-/);
      await s.delete(keys.blob(amdLayer));

      // Leftovers: an abandoned upload, unnamed data and tails, a multipart upload and a verification
      // marker without a session, copies of a collection that is gone; and what collections remove.
      const start = await r.request('/v2/app/blobs/uploads/', { method: 'POST' });
      await r.request(start.headers.get('Location')!, { method: 'PATCH', body: randomBytes(700, 3) });
      const orphanData = keys.data(randomUUID());
      await s.put(orphanData, randomBytes(2000, 4));
      const orphanTail = keys.tail(randomUUID(), 1, 'abcdef12');
      await s.put(orphanTail, randomBytes(300, 5));
      const orphanUpload = keys.data(randomUUID());
      await s.multipart.create(orphanUpload);
      const marker = keys.verifying(repo('app'), d(sha256('never uploaded')));
      await s.put(marker, new TextEncoder().encode(randomUUID()));
      const deadCopy = GC_KEYS.quarantine('2020-01-01T00-00-00-000Z-deadbeef', keys.catalog(repo('ghost')));
      await s.put(deadCopy, new Uint8Array(0));
      await s.put(keys.catalog(repo('empty')), new Uint8Array(0));
      const dangling = keys.referrer(repo('app'), d(p.app.digest), d(sha256('a deleted signature')));
      await s.put(dangling, new TextEncoder().encode('{}'));
      await nextStoreSecond(s);
      // Young, nothing that no session owns is a leftover yet: the writes that would make it owned may land.
      const young = await check(r, { uploadTtlMs: 0, graceMs: 0 });
      const unowned = ['orphan-data', 'orphan-tail', 'orphan-multipart'];
      expect(young.findings.filter((f) => unowned.includes(f.kind)).map((f) => f.key)).toEqual([]);

      const options = { uploadTtlMs: 0, graceMs: 0, ...(await pastOrphanAge(driver, s)) };
      const first = await check(r, options);
      expect(first.findings.map((f) => `${f.severity} ${f.kind}`).sort()).toEqual(
        [
          'inconsistent blob-pointer-missing',
          'inconsistent catalog-missing',
          'inconsistent link-stale',
          'inconsistent referrer-missing',
          'inconsistent tag-manifest-missing',
          'inconsistent tag-manifest-missing',
          'leftover dangling-referrer',
          'leftover empty-catalog-entry',
          'leftover orphan-data',
          'leftover orphan-multipart',
          'leftover orphan-quarantine',
          'leftover orphan-tail',
          // populate pushes one config twice: the second upload's tail, left when it found the blob
          // stored (docs/architecture.md, "Completion without a claim").
          'leftover orphan-tail',
          'leftover orphan-verifying',
          'leftover stale-session',
        ].sort(),
      );
      expect(first.clean).toBe(false);
      expect(exitCodeOf(first)).toBe(3);
      expect(only(first.findings, 'link-stale')[0]!.key).toBe(keys.layerLink(repo('app'), big));
      expect(only(first.findings, 'orphan-data')[0]).toMatchObject({ key: orphanData, bytes: 2000 });
      expect(only(first.findings, 'stale-session')[0]).toMatchObject({ repository: 'app', bytes: 700 });
      expect(formatReport(first)).toContain('INCONSISTENT (6): berth fsck --repair mends these');

      const before = await snapshot(r);
      // Leftovers are old when a person repairs them: the abandoned upload's tail is past the time
      // a completion could still make it a blob's data, so removing its session removes it too.
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 11 * 60_000 });
      const repaired = await check(r, { ...options, repair: true });
      vi.useRealTimers();
      for (const f of repaired.findings) {
        expect(f.repaired, `${f.kind} ${f.key}: ${f.repairError ?? ''}`).toBe(
          f.remedy === 'fsck-repair' ? true : undefined,
        );
      }
      expect(repaired.clean).toBe(true);
      expect(exitCodeOf(repaired)).toBe(0);
      expect(formatReport(repaired)).toMatch(/^ {2}repaired: tag app:latest names manifest/m);
      // Nothing that was a blob, a manifest or a tag went.
      const after = await snapshot(r);
      for (const key of before) expect(after, key).toContain(key);

      const again = await check(r, options);
      expect(kinds(again).sort()).toEqual([
        `dangling-referrer ${dangling}`,
        `empty-catalog-entry ${keys.catalog(repo('empty'))}`,
      ]);
      expect(again.clean).toBe(true);
      // And it all pulls, by tag and by digest, the referrers API lists the signature again.
      await pullAndVerify(r, 'app', 'v1');
      await pullAndVerify(r, 'app', p.app.digest);
      await pullAndVerify(r, 'team/web', 'multi');
      const referrers = await r.request(`/v2/team/web/referrers/${p.index.children[0]}`);
      expect(JSON.stringify(await referrers.json())).toContain(p.referrer.digest);
      const catalog = (await (await r.request('/v2/_catalog')).json()) as { repositories: string[] };
      expect(catalog.repositories).toContain('cache');
      expect(await s.head(oldData)).toBeUndefined();
      expect((await s.head(keys.layerLink(repo('app'), big)))!.metadata[meta.dataKey]).toBe(newData);
      expect((await s.head(keys.blob(amdLayer)))!.metadata[meta.dataKey]).toBe(tailData);
      expect(await liveSessionKeys(s)).toEqual([]);
      expect(await storedKeys(s, 'gc/quarantine/')).toEqual([]);
    });

    it('reports nothing broken or inconsistent while pushes, re-tags and uploads go on', async () => {
      let seed = 7;
      const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const store = new ControlledStore(await driver.make(), async () => {
        // Calls finish in a shuffled order: another actor's calls run between any two of one's.
        if (random() < 0.4) await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 4)));
        return 'run' as const;
      });
      const r = testRegistry({ storage: store });
      const pushes = async () => {
        for (let i = 0; i < 6; i++) {
          await pushImage(r, `live/p${i % 3}`, `t${i % 2}`, { layers: [randomBytes(500 + i, 100 + i)] });
          await push(r, 'live/mono', `m${i}`, imageOf(200 + i));
          const cache = cacheIndex(300 + i);
          await pushCache(r, 'live/cache', `c${i % 2}`, cache);
          // An upload left open meanwhile: young, so not a leftover.
          const start = await r.request('/v2/live/open/blobs/uploads/', { method: 'POST' });
          await r.request(start.headers.get('Location')!, { method: 'PATCH', body: randomBytes(100, i) });
        }
        const children = [];
        for (let i = 0; i < 2; i++) {
          const child = await pushImage(r, 'live/multi', `child-${i}`, {
            layers: [randomBytes(80, 400 + i)],
          });
          children.push({ mediaType: OCI_MANIFEST, digest: child.digest, size: child.bytes.byteLength });
        }
        const index = new TextEncoder().encode(
          JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children }),
        );
        await putManifest(r, 'live/multi', 'all', index, OCI_INDEX);
      };
      let done = false;
      const running = pushes().finally(() => {
        done = true;
      });
      const reports = [];
      while (!done) reports.push(await check(r, { recheckDelayMs: 20 }));
      await running;
      reports.push(await check(r, { recheckDelayMs: 20 }));
      expect(reports.length).toBeGreaterThan(1);
      for (const report of reports) {
        expect(report.findings.filter((f) => f.severity !== 'leftover').map((f) => f.message)).toEqual([]);
        expect(kinds(report)).toEqual([]);
      }
      // live/p0..p2 with t0 and t1, live/mono m0..m5, live/cache c0 and c1, live/multi's three.
      expect(reports.at(-1)!.checked.tags).toBe(6 + 6 + 2 + 3);
    }, 120_000);

    it('looks again before reporting: a push between its manifest write and its catalog write is not reported', async () => {
      const store = new ControlledStore(await driver.make());
      const r = testRegistry({ storage: store });
      await populate(r);
      // The first manifest PUT of repository `late` writes its manifest; its catalog entry is held.
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let held!: () => void;
      const holding = new Promise<void>((resolve) => (held = resolve));
      store.setGate(async (call) => {
        if (call.op === 'put' && call.key === keys.catalog(repo('late'))) {
          held();
          await released;
        }
        return 'run' as const;
      });
      const pushing = pushImage(r, 'late', 'v1');
      await holding;
      // The manifest is written alongside the held catalog entry: wait until it has landed.
      while ((await store.list('repos/late/_manifests/')).keys.length === 0) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      let paused = 0;
      const report = await check(r, {
        recheckDelayMs: 1000,
        // The pause before looking again: the push finishes meanwhile.
        sleep: async () => {
          paused++;
          release();
          await pushing;
        },
      });
      // The first look found the repository without its entry (hence the pause); the second did not.
      expect(paused).toBe(1);
      expect(kinds(report)).toEqual([]);
      expect(exitCodeOf(report)).toBe(0);
    });

    it('leaves what a collection in progress has set aside to it, and agrees once it finished', async () => {
      const r = await fresh();
      const kept = await pushImage(r, 'app', 'v1', { layers: [randomBytes(800, 11)] });
      const gone = await pushImage(r, 'gone', 'v1', { layers: [randomBytes(6 * 1024 * 1024 + 5, 12)] });
      await r.request(`/v2/gone/manifests/${gone.digest}`, { method: 'DELETE' });
      const goneData = (await r.storage.head(keys.blob(d(gone.layers[0]!))))!.metadata[meta.dataKey]!;
      await nextStoreSecond(r.storage);
      let during: Awaited<ReturnType<typeof check>> | undefined;
      const result = await gc(r, {
        deleteUntagged: true,
        // The second image's config is the first's: its upload's tail was left to collections.
        uploadTtlMs: 0,
        onPhase: async (phase) => {
          if (phase === 'settle') during = await check(r, { uploadTtlMs: 0, graceMs: 0 });
        },
      });
      expect(result.status).toBe('done');
      expect(during!.collection).toMatchObject({ runId: result.runId, phase: 'settle' });
      expect(during!.collection!.setAside).toBeGreaterThan(0);
      // The data of the set-aside multipart blob is no orphan: the collection still names it.
      expect(kinds(during!)).not.toContain(`orphan-data ${goneData}`);
      expect(during!.findings.filter((f) => f.severity !== 'leftover')).toEqual([]);
      expect(formatReport(during!)).toContain(
        `A garbage collection is in progress (run ${result.runId}, phase settle`,
      );
      const after = await check(r, { uploadTtlMs: 0, graceMs: 0 });
      expect(kinds(after)).toEqual([]);
      expect(after.collection).toBeNull();
      await pullAndVerify(r, 'app', 'v1');
      await pullAndVerify(r, 'app', kept.digest);
    }, 60_000);
  });
}

describe('berth fsck on the filesystem store: temporary files', () => {
  it('reports .tmp/ entries older than an hour, and --repair removes them, not younger ones', async () => {
    const { mkdtemp, mkdir, writeFile, utimes, readdir, rm, stat } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { FilesystemDriver } = await import('../../lib/storage/filesystem/index.ts');
    const root = await mkdtemp(join(tmpdir(), 'berth-fsck-'));
    try {
      const r = testRegistry({ storage: new FilesystemDriver({ root }) });
      await pushImage(r, 'app', 'v1');
      await mkdir(join(root, '.tmp', 'staging'), { recursive: true });
      await writeFile(join(root, '.tmp', 'staging', 'data'), Buffer.alloc(4096, 1));
      await writeFile(join(root, '.tmp', 'half-written'), Buffer.alloc(1000, 2));
      // Two hours old by the kernel's clock, which stamps the store's objects (this process's Date may
      // be faked: CI runs the tests under faketime).
      await writeFile(join(root, '.tmp', 'being-written'), 'x');
      const now = (await stat(join(root, '.tmp', 'being-written'))).mtimeMs;
      const old = new Date(now - 2 * 3600_000);
      for (const name of ['staging', 'half-written']) await utimes(join(root, '.tmp', name), old, old);
      const report = await check(r);
      expect(report.findings.map((f) => [f.kind, f.key, f.bytes])).toEqual([
        ['temporary-file', '.tmp/half-written', 1000],
        ['temporary-file', '.tmp/staging', 4096],
      ]);
      expect(report.leftoverBytes).toBe(5096);
      expect(exitCodeOf(report)).toBe(0);
      const repaired = await check(r, { repair: true });
      expect(repaired.findings.every((f) => f.repaired)).toBe(true);
      expect(await readdir(join(root, '.tmp'))).toEqual(['being-written']);
      expect(kinds(await check(r))).toEqual([]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

/** Every blob, manifest and tag key, with what it holds: what --repair must never delete. */
async function snapshot(r: TestRegistry): Promise<string[]> {
  const out: string[] = [];
  for (const key of [
    ...(await storedKeys(r.storage, 'blobs/')),
    ...(await storedKeys(r.storage, 'repos/')),
  ]) {
    if (!/^blobs\/|\/_(manifests|tags)\//.test(key)) continue;
    const object = await r.storage.get(key);
    out.push(`${key} ${object ? sha256(object.body) : 'gone'}`);
  }
  return out.sort();
}
