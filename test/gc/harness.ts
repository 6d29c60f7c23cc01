import { mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { collectGarbage, type GcOptions, type GcResult } from '../../lib/gc/collector.ts';
import { FilesystemDriver } from '../../lib/storage/filesystem/index.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import type { StorageDriver } from '../../lib/storage/port.ts';
import { S3Driver } from '../../lib/storage/s3/index.ts';
import { meta } from '../../lib/registry/keys.ts';
import { ORPHAN_MIN_AGE_MS } from '../../lib/registry/upload-session.ts';
import { imageManifest, randomBytes, sha256, testRegistry, type TestRegistry } from '../http/harness.ts';
import { minioInstalled, startS3Server, testS3Client, type S3TestServer } from '../storage/s3-server.ts';

/** A store for the GC tests: memory, a temp filesystem directory, or a prefix of the shared MinIO bucket. */
export interface GcDriver {
  readonly name: string;
  readonly available: boolean;
  /** Why the driver does not run here, when it does not. */
  readonly skipReason?: string;
  setup(): Promise<void>;
  make(): Promise<StorageDriver>;
  teardown(): Promise<void>;
  /**
   * Makes everything a store made by `make` holds look `ms` older to that store, as if its clock had
   * moved on: the memory store's clock advances, the filesystem's files are back-dated. Absent for
   * S3: MinIO stamps objects with its own clock, which a test cannot move.
   */
  readonly age?: (storage: StorageDriver, ms: number) => Promise<void>;
}

/** Back-dates every file under `dir` by `ms` (mtime and atime): the filesystem store's objects age. */
async function backdate(dir: string, ms: number): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await backdate(path, ms);
    const info = await stat(path);
    await utimes(path, new Date(info.atimeMs - ms), new Date(info.mtimeMs - ms));
  }
}

export function gcDrivers(): GcDriver[] {
  const dirs: string[] = [];
  const roots = new WeakMap<StorageDriver, string>();
  const offsets = new WeakMap<StorageDriver, { ms: number }>();
  let s3: S3TestServer | undefined;
  // Locally the S3 tests need MinIO (test/e2e/setup-s3.sh); CI must have it, so there they fail instead.
  const s3Available = minioInstalled || process.env.CI === 'true';
  return [
    {
      name: 'memory',
      available: true,
      setup: async () => {},
      make: async () => {
        const offset = { ms: 0 };
        const storage = new MemoryDriver({ clock: () => Date.now() + offset.ms });
        offsets.set(storage, offset);
        return storage;
      },
      teardown: async () => {},
      age: async (storage, ms) => {
        offsets.get(storage)!.ms += ms;
      },
    },
    {
      name: 'filesystem',
      available: true,
      setup: async () => {},
      make: async () => {
        const dir = await mkdtemp(join(tmpdir(), 'berth-gc-'));
        dirs.push(dir);
        const storage = new FilesystemDriver({ root: dir });
        roots.set(storage, dir);
        return storage;
      },
      teardown: async () => {
        await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
      },
      age: (storage, ms) => backdate(roots.get(storage)!, ms),
    },
    {
      name: 's3',
      available: s3Available,
      skipReason: 'MinIO is not installed (test/e2e/setup-s3.sh); CI=true makes this a failure',
      setup: async () => {
        s3 = await startS3Server();
      },
      make: async () => {
        const server = s3!;
        return new S3Driver({
          client: testS3Client(server),
          bucket: server.bucket,
          prefix: `gc-${randomUUID()}`,
        });
      },
      teardown: async () => {
        await s3?.stop();
      },
    },
  ];
}

export const gcDefaults: GcOptions = {
  graceMs: 0,
  deleteUntagged: false,
  retention: [],
  immutable: [],
  uploadTtlMs: 24 * 3600_000,
  settleMs: 0,
  dryRun: false,
  sleep: async () => {},
};

export async function gc(r: TestRegistry, options: Partial<GcOptions> = {}): Promise<GcResult> {
  return collectGarbage(r, { ...gcDefaults, ...options });
}

export function registryOn(storage: StorageDriver): TestRegistry {
  return testRegistry({ storage });
}

/** Pulls `repo:reference` as a client would and checks every digest; throws saying what is broken. */
export async function pullAndVerify(r: TestRegistry, repo: string, reference: string): Promise<void> {
  const res = await r.request(`/v2/${repo}/manifests/${reference}`, {
    headers: {
      Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json',
    },
  });
  if (res.status !== 200) throw new Error(`${repo}:${reference}: manifest ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const digest = res.headers.get('Docker-Content-Digest');
  if (sha256(bytes) !== digest) throw new Error(`${repo}:${reference}: manifest digest mismatch`);
  const manifest = JSON.parse(new TextDecoder().decode(bytes)) as {
    config?: { digest: string };
    layers?: { digest: string }[];
    manifests?: { digest: string }[];
  };
  for (const child of manifest.manifests ?? []) await pullAndVerify(r, repo, child.digest);
  for (const blob of [...(manifest.config ? [manifest.config] : []), ...(manifest.layers ?? [])]) {
    const got = await r.request(`/v2/${repo}/blobs/${blob.digest}`);
    if (got.status !== 200) throw new Error(`${repo}:${reference}: blob ${blob.digest} ${got.status}`);
    const body = new Uint8Array(await got.arrayBuffer());
    if (sha256(body) !== blob.digest) throw new Error(`${repo}:${reference}: blob ${blob.digest} corrupt`);
  }
}

/** An image whose blobs are known in advance, pushed in the steps docker takes. */
export function imageOf(seed: number, layerCount = 2) {
  const config = new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layers = Array.from({ length: layerCount }, (_, i) => randomBytes(700 + i * 13, seed * 31 + i + 1));
  const blobs = [config, ...layers];
  const manifest = imageManifest(config, layers);
  return { blobs, manifest, digest: sha256(manifest) };
}

export type Image = ReturnType<typeof imageOf>;

/** Docker's push: HEAD each blob, upload the missing ones (monolithic POST), PUT the manifest. */
export async function headBlobs(r: TestRegistry, repo: string, image: Image): Promise<Uint8Array[]> {
  const missing: Uint8Array[] = [];
  for (const blob of image.blobs) {
    const head = await r.request(`/v2/${repo}/blobs/${sha256(blob)}`, { method: 'HEAD' });
    if (head.status !== 200) missing.push(blob);
  }
  return missing;
}

export async function uploadBlobs(
  r: TestRegistry,
  repo: string,
  blobs: readonly Uint8Array[],
): Promise<void> {
  for (const blob of blobs) {
    const res = await r.request(`/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(blob.byteLength) },
      body: blob as Uint8Array<ArrayBuffer>,
    });
    if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`);
  }
}

export async function putManifest(
  r: TestRegistry,
  repo: string,
  tag: string,
  image: Image,
): Promise<Response> {
  return r.request(`/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: image.manifest as Uint8Array<ArrayBuffer>,
  });
}

/** A whole push, retried once on MANIFEST_BLOB_UNKNOWN as docker's retry of the push would. */
export async function push(r: TestRegistry, repo: string, tag: string, image: Image): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    await uploadBlobs(r, repo, await headBlobs(r, repo, image));
    const res = await putManifest(r, repo, tag, image);
    if (res.status === 201) return;
    if (attempt > 0) throw new Error(`manifest PUT: ${res.status} ${await res.text()}`);
  }
}

export async function deleteManifest(r: TestRegistry, repo: string, digest: string): Promise<void> {
  const res = await r.request(`/v2/${repo}/manifests/${digest}`, { method: 'DELETE' });
  if (res.status !== 202) throw new Error(`DELETE manifest: ${res.status}`);
}

export async function storedKeys(storage: StorageDriver, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let startAfter: string | undefined;
  for (;;) {
    const page = await storage.list(prefix, { startAfter, limit: 1000 });
    out.push(...page.keys);
    if (!page.truncated || page.keys.length === 0) return out;
    startAfter = page.keys[page.keys.length - 1];
  }
}

/**
 * Upload session objects that are not `ended` markers (a session that is over leaves one while its
 * POST's URL could still be used; the stale-session sweep removes it later).
 */
export async function liveSessionKeys(storage: StorageDriver): Promise<string[]> {
  const live: string[] = [];
  for (const key of await storedKeys(storage, 'uploads/')) {
    if (!(await storage.head(key))?.metadata[meta.ended]) live.push(key);
  }
  return live;
}

/**
 * Makes what `storage` (made by `driver`) holds older than the orphan minimum age, so that a
 * collection or check with a TTL of 0 counts what no session owns as orphans: the store ages where
 * it can; on S3, whose clock a test cannot move, the options returned lower the minimum instead.
 */
export async function pastOrphanAge(
  driver: GcDriver,
  storage: StorageDriver,
): Promise<{ orphanMinAgeMs?: number }> {
  if (!driver.age) return { orphanMinAgeMs: 0 };
  await driver.age(storage, ORPHAN_MIN_AGE_MS);
  return {};
}
