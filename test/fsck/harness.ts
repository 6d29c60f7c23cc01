import { fsck, type FsckOptions } from '../../lib/fsck/fsck.ts';
import type { FsckReport } from '../../lib/fsck/report.ts';
import { storeTime } from '../../lib/registry/store-clock.ts';
import type { StorageDriver } from '../../lib/storage/port.ts';
import { cacheIndex, pushCache, type CacheIndex } from '../http/cache-index.ts';
import {
  imageManifest,
  pushBlob,
  pushImage,
  randomBytes,
  sha256,
  type PushedImage,
  type TestRegistry,
} from '../http/harness.ts';
import { imageOf, push, type Image } from '../gc/harness.ts';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const MiB = 1024 * 1024;

/** fsck as the tests run it: no pause before rechecking (nothing runs meanwhile unless a test says so). */
export function check(r: TestRegistry, options: Partial<FsckOptions> = {}): Promise<FsckReport> {
  return fsck(r, {
    uploadTtlMs: 24 * 3600_000,
    graceMs: 24 * 3600_000,
    recheckDelayMs: 0,
    ...options,
  });
}

export async function putManifest(
  r: TestRegistry,
  repo: string,
  reference: string,
  bytes: Uint8Array<ArrayBuffer>,
  mediaType: string,
): Promise<void> {
  const res = await r.request(`/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'Content-Type': mediaType },
    body: bytes,
  });
  if (res.status !== 201) throw new Error(`PUT ${repo}:${reference}: ${res.status} ${await res.text()}`);
}

/** A registry with every kind of content fsck looks at, and what the tests plant breaches in. */
export interface Populated {
  /** app:v1 and app:latest: a small layer (its tail published as its data) and a 6 MiB multipart one. */
  readonly app: PushedImage;
  /** app:mono, pushed monolithically (blobs stored whole), and mirror:v1, the same image mounted from app. */
  readonly mono: Image;
  /** team/web:multi, an index of two images that are pushed by digest only. */
  readonly index: { digest: string; children: string[]; childBlobs: string[][] };
  /** A signature-like artifact in team/web whose subject is the index's first child. */
  readonly referrer: PushedImage;
  /** cache:buildcache, an index whose entries are blobs (BuildKit's registry cache). */
  readonly cache: CacheIndex;
}

export async function populate(r: TestRegistry): Promise<Populated> {
  const app = await pushImage(r, 'app', 'v1', {
    layers: [randomBytes(3000, 1), randomBytes(6 * MiB + 123, 2)],
  });
  await putManifest(r, 'app', 'latest', app.bytes, OCI_MANIFEST);

  const mono = imageOf(7);
  await push(r, 'app', 'mono', mono);
  for (const blob of mono.blobs) {
    const res = await r.request(`/v2/mirror/blobs/uploads/?mount=${sha256(blob)}&from=app`, {
      method: 'POST',
    });
    if (res.status !== 201) throw new Error(`mount: ${res.status}`);
  }
  await putManifest(r, 'mirror', 'v1', mono.manifest as Uint8Array<ArrayBuffer>, OCI_MANIFEST);

  const children: string[] = [];
  const childBlobs: string[][] = [];
  const entries = [];
  for (const [i, arch] of ['amd64', 'arm64'].entries()) {
    const config = new TextEncoder().encode(JSON.stringify({ architecture: arch, os: 'linux' }));
    const layer = randomBytes(900 + i, 40 + i);
    const blobs = [await pushBlob(r, 'team/web', config), await pushBlob(r, 'team/web', layer)];
    const manifest = imageManifest(config, [layer]);
    await putManifest(r, 'team/web', sha256(manifest), manifest, OCI_MANIFEST);
    children.push(sha256(manifest));
    childBlobs.push(blobs);
    entries.push({
      mediaType: OCI_MANIFEST,
      digest: sha256(manifest),
      size: manifest.byteLength,
      platform: { architecture: arch, os: 'linux' },
    });
  }
  const indexBytes = new TextEncoder().encode(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }),
  );
  await putManifest(r, 'team/web', 'multi', indexBytes, OCI_INDEX);

  const referrer = await pushImage(r, 'team/web', 'sig', {
    artifactType: 'application/vnd.example.signature',
    layers: [randomBytes(64, 50)],
    subject: { mediaType: OCI_MANIFEST, digest: children[0]!, size: entries[0]!.size },
  });
  // Known by digest only, like a cosign signature found through the referrers API.
  const untag = await r.request('/v2/team/web/manifests/sig', { method: 'DELETE' });
  if (untag.status !== 202) throw new Error(`DELETE tag: ${untag.status}`);

  const cache = cacheIndex(60);
  const put = await pushCache(r, 'cache', 'buildcache', cache);
  if (put.status !== 201) throw new Error(`cache: ${put.status}`);
  return { app, mono, index: { digest: sha256(indexBytes), children, childBlobs }, referrer, cache };
}

/**
 * Waits until the store's clock has moved past everything written so far: a few milliseconds, or on
 * S3 (which stamps whole seconds) into the next second. Then an upload TTL of zero judges it all old.
 */
export async function nextStoreSecond(storage: StorageDriver): Promise<void> {
  if (storage.name !== 's3') {
    await new Promise((resolve) => setTimeout(resolve, 10));
    return;
  }
  const next = Math.floor((await storeTime(storage)) / 1000) * 1000 + 1000;
  while ((await storeTime(storage)) < next) await new Promise((resolve) => setTimeout(resolve, 50));
}

/** The findings as `kind key` lines, for comparisons that say what differs. */
export function kinds(report: FsckReport): string[] {
  return report.findings.map((f) => `${f.kind} ${f.key}`);
}
