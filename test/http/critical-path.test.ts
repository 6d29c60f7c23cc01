import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseName, parseTag } from '../../lib/oci/names.ts';
import { keys } from '../../lib/registry/keys.ts';
import { SUMMARY_META, decodeSummary } from '../../lib/registry/tag-summary.ts';
import { LocalStorageUrls, withLocalUrls } from '../../lib/storage/local-urls.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { StorageUnavailable, type StorageDriver } from '../../lib/storage/port.ts';
import { DepthRecorder, type DepthReport } from '../support/storage-depth.ts';
import { errorCode, pushBlob, randomBytes, sha256, testRegistry, type TestRegistry } from './harness.ts';

// Storage round trips one after another (what a client waits for on S3, docs/architecture.md), per
// route of the manifest path: counted by DepthRecorder, never timed.

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const REPO = 'team/app';

interface Image {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly digest: string;
  readonly config: string;
  readonly layers: string[];
}

async function uploadImage(r: TestRegistry, layerCount: number, seed: number, repo = REPO): Promise<Image> {
  const config = new TextEncoder().encode(
    JSON.stringify({
      created: '2026-01-02T03:04:05Z',
      os: 'linux',
      architecture: 'arm64',
      seed,
      rootfs: { type: 'layers', diff_ids: [] },
    }),
  );
  const configDigest = await pushBlob(r, repo, config);
  const layers: { digest: string; size: number }[] = [];
  for (let i = 0; i < layerCount; i++) {
    const layer = randomBytes(512 + i, seed * 1000 + i + 1);
    layers.push({ digest: await pushBlob(r, repo, layer), size: layer.byteLength });
  }
  const bytes = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: config.length,
      },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
    }),
  );
  return { bytes, digest: sha256(bytes), config: configDigest, layers: layers.map((l) => l.digest) };
}

function setup(inner: StorageDriver = new MemoryDriver()): { r: TestRegistry; depth: DepthRecorder } {
  const depth = new DepthRecorder(inner);
  return { r: testRegistry({ storage: depth.storage }), depth };
}

async function putManifest(
  r: TestRegistry,
  reference: string,
  bytes: Uint8Array<ArrayBuffer>,
  type = MANIFEST,
  repo = REPO,
): Promise<Response> {
  return r.request(`/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'Content-Type': type },
    body: bytes,
  });
}

function ops(report: DepthReport, op: string, keyPart: string): number {
  return report.calls.filter((c) => c.op === op && c.key.includes(keyPart)).length;
}

async function summaryOf(storage: StorageDriver, tag: string) {
  const head = await storage.head(keys.tag(parseName(REPO), parseTag(tag)));
  return decodeSummary(head?.metadata[SUMMARY_META]);
}

/** A request's method, path, status and storage round trips one after another. */
async function depthOf(r: TestRegistry, depth: DepthRecorder, method: string, path: string) {
  let status = 0;
  const report = await depth.measure(async () => {
    const res = await r.request(path, { method });
    status = res.status;
    await res.arrayBuffer();
  });
  return [method, path, status, report.sequential];
}

afterEach(() => {
  vi.useRealTimers();
});

describe('manifest PUT: at most 4 storage round trips one after another, 3 when this process saw the links', () => {
  for (const layerCount of [1, 30]) {
    it(`by tag, ${layerCount} layer(s), in a process that did not see the blobs: 4, and the tag's summary is whole`, async () => {
      const { r, depth } = setup();
      const image = await uploadImage(r, layerCount, layerCount);
      // Another process on the same store (another Lambda container): the links are read.
      const cold = testRegistry({ storage: depth.storage });
      let res: Response | undefined;
      const report = await depth.measure(async () => {
        res = await putManifest(cold, 'v1', image.bytes);
      });
      expect(res?.status).toBe(201);
      expect(report.sequential).toBe(4);
      // Every link once (the config is not looked up twice), the config's data once.
      expect(ops(report, 'head', '/_layers/')).toBe(layerCount + 1);
      expect(ops(report, 'get', 'data/')).toBe(1);
      // The tag is written once, with its whole summary.
      expect(ops(report, 'put', '/_tags/v1')).toBe(1);
      expect(await summaryOf(depth.storage, 'v1')).toMatchObject({
        kind: 'image',
        created: '2026-01-02T03:04:05Z',
        platforms: ['linux/arm64'],
      });
      const pulled = await r.request(`/v2/${REPO}/manifests/v1`);
      expect(pulled.headers.get('Docker-Content-Digest')).toBe(image.digest);
    });
  }

  it('by tag, after pushing the blobs through this process (berth serve, one Lambda container): 3', async () => {
    const { r, depth } = setup();
    const image = await uploadImage(r, 30, 7);
    let res: Response | undefined;
    const report = await depth.measure(async () => {
      res = await putManifest(r, 'v1', image.bytes);
    });
    expect(res?.status).toBe(201);
    expect(report.sequential).toBe(3);
    // The links this process wrote are not read again; the config's data is (for the summary).
    expect(ops(report, 'head', '/_layers/')).toBe(0);
    expect(ops(report, 'get', 'data/')).toBe(1);
    expect(await summaryOf(depth.storage, 'v1')).toMatchObject({ created: '2026-01-02T03:04:05Z' });
  });

  it('a second PUT in the same process relies on what the first saw: no link read, no config read', async () => {
    const { r, depth } = setup();
    const image = await uploadImage(r, 30, 3);
    expect((await putManifest(r, 'v1', image.bytes)).status).toBe(201);
    const report = await depth.measure(async () => {
      expect((await putManifest(r, 'latest', image.bytes)).status).toBe(201);
    });
    expect(report.sequential).toBeLessThanOrEqual(3);
    expect(ops(report, 'head', '/_layers/')).toBe(0);
    expect(ops(report, 'get', 'data/')).toBe(0);
    // The tag carries the whole summary at once: one write of it, no completion.
    expect(ops(report, 'put', '/_tags/latest')).toBe(1);
    expect(await summaryOf(depth.storage, 'latest')).toMatchObject({ created: '2026-01-02T03:04:05Z' });
  });

  it('by digest: 2 (checks, then the writes), 1 after pushing the blobs through this process', async () => {
    const { r, depth } = setup();
    const image = await uploadImage(r, 30, 4);
    const cold = testRegistry({ storage: depth.storage });
    const report = await depth.measure(async () => {
      expect((await putManifest(cold, image.digest, image.bytes)).status).toBe(201);
    });
    expect(report.sequential).toBe(2);
    const warm = await depth.measure(async () => {
      expect((await putManifest(r, image.digest, image.bytes)).status).toBe(201);
    });
    expect(warm.sequential).toBe(1);
  });

  it('an index of two images by tag, in a process that did not write the children: 4, the children looked up at once', async () => {
    const { r, depth } = setup();
    const children = [await uploadImage(r, 2, 5), await uploadImage(r, 2, 6)];
    for (const child of children) expect((await putManifest(r, child.digest, child.bytes)).status).toBe(201);
    const index = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: INDEX,
        manifests: children.map((c, i) => ({
          mediaType: MANIFEST,
          digest: c.digest,
          size: c.bytes.byteLength,
          platform: { os: 'linux', architecture: i === 0 ? 'amd64' : 'arm64' },
        })),
      }),
    );
    // A process that did not write the children: they are read from the store.
    const cold = testRegistry({ storage: depth.storage });
    const report = await depth.measure(async () => {
      expect((await putManifest(cold, 'multi', index, INDEX)).status).toBe(201);
    });
    expect(report.sequential).toBe(4);
    expect(ops(report, 'head', '/_manifests/')).toBe(3); // two children, then the look after the tag
  });
});

describe('read routes: 1 storage round trip', () => {
  it('manifest by tag and by digest, tag list, catalog, blob HEAD, referrers, an unknown repository', async () => {
    const { r, depth } = setup();
    const image = await uploadImage(r, 3, 7);
    expect((await putManifest(r, 'v1', image.bytes)).status).toBe(201);
    const signature = await uploadImage(r, 1, 15);
    const subject = { mediaType: MANIFEST, digest: image.digest, size: image.bytes.byteLength };
    const referrer = new TextEncoder().encode(
      JSON.stringify({ ...JSON.parse(new TextDecoder().decode(signature.bytes)), subject }),
    );
    expect((await putManifest(r, sha256(referrer), referrer)).status).toBe(201);
    const routes: [string, string, number][] = [
      ['HEAD', `/v2/${REPO}/manifests/v1`, 200],
      ['GET', `/v2/${REPO}/manifests/v1`, 200],
      ['HEAD', `/v2/${REPO}/manifests/${image.digest}`, 200],
      ['GET', `/v2/${REPO}/manifests/${image.digest}`, 200],
      ['GET', `/v2/${REPO}/tags/list`, 200],
      ['GET', '/v2/nobody/here/tags/list', 404],
      ['GET', '/v2/_catalog', 200],
      ['GET', `/v2/${REPO}/referrers/${image.digest}`, 200],
    ];
    for (const [method, path, status] of routes) {
      expect(await depthOf(r, depth, method, path)).toEqual([method, path, status, 1]);
    }
    // In a process that did not push the image (another Lambda container), a blob HEAD reads the
    // link; in this one it reads nothing ("the process's cache of what it saw", below).
    const cold = testRegistry({ storage: depth.storage });
    const blob = `/v2/${REPO}/blobs/${image.layers[0]}`;
    expect(await depthOf(cold, depth, 'HEAD', blob)).toEqual(['HEAD', blob, 200, 1]);
  });

  it('referrers in a process that has not seen the entries: the listing, then their reads (2)', async () => {
    const { r, depth } = setup();
    const image = await uploadImage(r, 1, 16);
    expect((await putManifest(r, image.digest, image.bytes)).status).toBe(201);
    const subject = { mediaType: MANIFEST, digest: image.digest, size: image.bytes.byteLength };
    const referrer = new TextEncoder().encode(
      JSON.stringify({ ...JSON.parse(new TextDecoder().decode(image.bytes)), subject }),
    );
    expect((await putManifest(r, sha256(referrer), referrer)).status).toBe(201);
    const cold = testRegistry({ storage: depth.storage });
    const path = `/v2/${REPO}/referrers/${image.digest}`;
    expect(await depthOf(cold, depth, 'GET', path)).toEqual(['GET', path, 200, 2]);
    // Read once, the entry's bytes are kept (they never change): the next list is the listing alone.
    expect(await depthOf(cold, depth, 'GET', path)).toEqual(['GET', path, 200, 1]);
    const body = (await (await cold.request(path)).json()) as { manifests: { digest: string }[] };
    expect(body.manifests.map((m) => m.digest)).toEqual([sha256(referrer)]);
  });
});

describe("the process's cache of what it saw (lib/registry/immutable-facts.ts)", () => {
  /** A store that presigns (local signed URLs, as behind `berth serve --lambda`): blob GETs redirect. */
  const presigning = (inner: StorageDriver = new MemoryDriver()) =>
    withLocalUrls(inner, new LocalStorageUrls(Buffer.alloc(32, 7)));

  it('a blob HEAD or redirected GET after a push through this process reads no link; another process reads it once', async () => {
    const depth = new DepthRecorder(new MemoryDriver());
    const registry = (storage: StorageDriver) =>
      testRegistry({ storage: presigning(storage), redirect: true });
    const warm = registry(depth.storage);
    const image = await uploadImage(warm, 2, 11);
    const blob = `/v2/${REPO}/blobs/${image.layers[0]}`;
    expect(await depthOf(warm, depth, 'HEAD', blob)).toEqual(['HEAD', blob, 200, 0]);
    expect(await depthOf(warm, depth, 'GET', blob)).toEqual(['GET', blob, 307, 0]);
    const cold = registry(depth.storage);
    expect(await depthOf(cold, depth, 'GET', blob)).toEqual(['GET', blob, 307, 1]);
    // What it read it keeps: the next HEAD and GET there read nothing.
    expect(await depthOf(cold, depth, 'HEAD', blob)).toEqual(['HEAD', blob, 200, 0]);
    expect(await depthOf(cold, depth, 'GET', blob)).toEqual(['GET', blob, 307, 0]);
    const head = await cold.request(blob, { method: 'HEAD' });
    expect(head.headers.get('Content-Length')).toBe(String(512));
    expect(head.headers.get('Docker-Content-Digest')).toBe(image.layers[0]);
  });

  it('a GET streamed through reads the link afresh, even one this process saw', async () => {
    const { r, depth } = setup();
    const image = await uploadImage(r, 1, 12);
    const blob = `/v2/${REPO}/blobs/${image.layers[0]}`;
    const report = await depth.measure(async () => {
      const res = await r.request(blob);
      expect(res.status).toBe(200);
      expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(image.layers[0]);
    });
    expect(ops(report, 'head', '/_layers/')).toBe(1);
  });

  it('a blob deleted through this process is not served from what it saw: HEAD and GET say 404', async () => {
    const r = testRegistry({ storage: presigning(), redirect: true });
    const image = await uploadImage(r, 1, 13);
    const blob = `/v2/${REPO}/blobs/${image.layers[0]}`;
    expect((await r.request(blob, { method: 'HEAD' })).status).toBe(200);
    expect((await r.request(blob)).status).toBe(307);
    expect((await r.request(blob, { method: 'DELETE' })).status).toBe(202);
    expect((await r.request(blob, { method: 'HEAD' })).status).toBe(404);
    const get = await r.request(blob);
    expect(get.status).toBe(404);
    expect(await errorCode(get)).toBe('BLOB_UNKNOWN');
  });

  it('a blob deleted through another process is served at most for the TTL (20 s) by one that saw it', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.UTC(2030, 0, 1) });
    const storage = presigning();
    const a = testRegistry({ storage, redirect: true });
    const b = testRegistry({ storage, redirect: true });
    const image = await uploadImage(a, 1, 14);
    const blob = `/v2/${REPO}/blobs/${image.layers[0]}`;
    expect((await b.request(blob, { method: 'DELETE' })).status).toBe(202);
    vi.setSystemTime(Date.now() + 19_000);
    expect((await a.request(blob, { method: 'HEAD' })).status).toBe(200);
    vi.setSystemTime(Date.now() + 1_000); // the documented TTL (docs/architecture.md)
    expect((await a.request(blob, { method: 'HEAD' })).status).toBe(404);
    expect((await a.request(blob)).status).toBe(404);
  });

  it('a blob deleted through this process is looked up again: the next PUT naming it is refused', async () => {
    const { r } = setup();
    const image = await uploadImage(r, 2, 8);
    expect((await putManifest(r, 'v1', image.bytes)).status).toBe(201);
    const del = await r.request(`/v2/${REPO}/blobs/${image.layers[1]}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    const again = await putManifest(r, 'v2', image.bytes);
    expect(again.status).toBe(400);
    expect(await errorCode(again)).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('a blob deleted through another process is looked up again once the facts are older than the TTL', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.UTC(2030, 0, 1) });
    const storage = new MemoryDriver();
    const a = testRegistry({ storage });
    const b = testRegistry({ storage });
    const image = await uploadImage(a, 2, 9);
    expect((await putManifest(a, 'v1', image.bytes)).status).toBe(201);
    expect((await b.request(`/v2/${REPO}/blobs/${image.layers[0]}`, { method: 'DELETE' })).status).toBe(202);
    vi.setSystemTime(Date.now() + 20_000); // the documented TTL (docs/architecture.md)
    const again = await putManifest(a, 'v2', image.bytes);
    expect(again.status).toBe(400);
    expect(await errorCode(again)).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('a manifest deleted through this process is looked up again before an index names it', async () => {
    const { r } = setup();
    const child = await uploadImage(r, 1, 10);
    expect((await putManifest(r, child.digest, child.bytes)).status).toBe(201);
    expect((await r.request(`/v2/${REPO}/manifests/${child.digest}`, { method: 'DELETE' })).status).toBe(202);
    const index = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: INDEX,
        manifests: [{ mediaType: MANIFEST, digest: child.digest, size: child.bytes.byteLength }],
      }),
    );
    const res = await putManifest(r, 'multi', index, INDEX);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('MANIFEST_BLOB_UNKNOWN');
  });
});

describe('the tags move only once their manifest is stored', () => {
  /**
   * A store whose manifest writes are held until a tag write starts (or 50 ms pass), and that runs
   * `check` just before each tag write: a PUT that sent its tags with or before its manifest is seen
   * with the manifest missing; one that waits for the manifest only takes 50 ms longer.
   */
  function tagsRaceManifest(inner: StorageDriver, check: () => Promise<void>): StorageDriver {
    let tagStarted!: () => void;
    const tagWrite = new Promise<void>((resolve) => (tagStarted = resolve));
    return new Proxy(inner, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property !== 'put' || typeof value !== 'function') return value;
        return async (...args: Parameters<StorageDriver['put']>) => {
          if (args[0].includes('/_manifests/')) {
            await Promise.race([tagWrite, new Promise((resolve) => setTimeout(resolve, 50))]);
          }
          if (args[0].includes('/_tags/')) {
            tagStarted();
            await check();
          }
          return (value as StorageDriver['put']).apply(target, args);
        };
      },
    });
  }

  it('a pull by tag, then by digest, made while the PUT runs never finds the manifest missing', async () => {
    const inner = new MemoryDriver();
    const reader = testRegistry({ storage: inner });
    const pending: { digest?: string } = {};
    const seen: { manifest: number; listed: boolean }[] = [];
    const r = testRegistry({
      storage: tagsRaceManifest(inner, async () => {
        // containerd's way: resolve the tag (to the digest the PUT is about to write), then GET by digest.
        const manifest = (await reader.request(`/v2/${REPO}/manifests/${pending.digest}`)).status;
        const catalog = (await (await reader.request('/v2/_catalog')).json()) as { repositories: string[] };
        seen.push({ manifest, listed: catalog.repositories.includes(REPO) });
      }),
    });
    const image = await uploadImage(r, 2, 21);
    pending.digest = image.digest;
    expect((await putManifest(r, 'v1', image.bytes)).status).toBe(201);
    expect(seen).toEqual([{ manifest: 200, listed: true }]);
  });

  /** A store whose first write of a key matching `match` fails as an unreachable store would. */
  function failOnce(inner: StorageDriver, match: (key: string) => boolean): StorageDriver {
    let failed = false;
    return new Proxy(inner, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property !== 'put' || typeof value !== 'function') return value;
        return async (...args: Parameters<StorageDriver['put']>) => {
          if (!failed && match(args[0])) {
            failed = true;
            throw new StorageUnavailable('the store did not answer');
          }
          return (value as StorageDriver['put']).apply(target, args);
        };
      },
    });
  }

  for (const [what, match] of [
    ['manifest', (key: string) => key.includes('/_manifests/')],
    ['catalog entry', (key: string) => key.startsWith('catalog/')],
  ] as const) {
    it(`a ${what} write that fails leaves the tag where it was, and the push again succeeds`, async () => {
      const inner = new MemoryDriver();
      const before = testRegistry({ storage: inner });
      const old = await uploadImage(before, 1, 15);
      expect((await putManifest(before, 'v1', old.bytes)).status).toBe(201);
      const r = testRegistry({ storage: failOnce(inner, match) });
      const image = await uploadImage(r, 1, 14);
      const failed = await putManifest(r, 'v1', image.bytes);
      expect(failed.status).toBe(503);
      const res = await r.request(`/v2/${REPO}/manifests/v1`);
      expect(res.headers.get('Docker-Content-Digest')).toBe(old.digest);
      expect((await putManifest(r, 'v1', image.bytes)).status).toBe(201);
      expect((await r.request(`/v2/${REPO}/manifests/${image.digest}`)).status).toBe(200);
      const catalog = (await (await r.request('/v2/_catalog')).json()) as { repositories: string[] };
      expect(catalog.repositories).toEqual([REPO]);
    });
  }
});
