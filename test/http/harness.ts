import { createHash } from 'node:crypto';
import { Browse } from '../../lib/browse/browse.ts';
import { createApp } from '../../lib/http/app.ts';
import type { HttpAuth } from '../../lib/http/context.ts';
import type { CorsPolicy } from '../../lib/http/cors.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import { InMemoryHashStates, SerializedHashStates, type HashStates } from '../../lib/registry/hashing.ts';
import { Registry } from '../../lib/registry/registry.ts';
import type { UploadQuotaLimits } from '../../lib/registry/upload-quota.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import type { StorageDriver } from '../../lib/storage/port.ts';
import type { ImmutableRule } from '../../lib/registry/tag-policy.ts';
import type { BrowseSettings } from '../../lib/browse/info.ts';
import type { WebAssets } from '../../lib/web/assets.ts';

export interface TestRegistry {
  readonly storage: StorageDriver;
  readonly registry: Registry;
  /** `source`: the client address the request comes from (the socket's peer on the Node server). */
  request(path: string, init?: RequestInit, source?: string): Promise<Response>;
}

export interface TestOptions {
  storage?: StorageDriver;
  hashes?: 'memory' | 'serialized';
  mountWithoutFrom?: boolean;
  maxBlobSize?: number;
  partSize?: number;
  referrersPageSize?: number;
  auth?: HttpAuth;
  immutableTags?: readonly ImmutableRule[];
  /** How long an upload session's claim holds without renewal (default 60 s, as BERTH_UPLOAD_LEASE_SECONDS). */
  leaseMs?: number;
  /**
   * How young an upload tail must be for a completion to publish it without claiming its session
   * first (default 5 minutes, as for an upload TTL of 15 minutes or more; 0: always claim first).
   */
  publishWindowMs?: number;
  /** Caps per client on open upload sessions (default: none). */
  uploadQuota?: UploadQuotaLimits;
  cors?: CorsPolicy;
  /** The web UI API's settings (name, expiry, retention rules). */
  browse?: Partial<BrowseSettings>;
  web?: WebAssets;
  /** Answer blob GETs with a redirect when the store presigns (default: off, the bytes stream through). */
  redirect?: boolean;
}

export function testRegistry(options: TestOptions = {}): TestRegistry {
  const storage = options.storage ?? new MemoryDriver();
  const hashes: HashStates =
    options.hashes === 'serialized' ? new SerializedHashStates() : new InMemoryHashStates();
  const registry = new Registry({
    storage,
    hashes,
    limits: {
      maxBlobSize: options.maxBlobSize ?? 1024 * 1024 * 1024,
      partSize: options.partSize ?? 5 * 1024 * 1024,
      leaseMs: options.leaseMs ?? 60_000,
      ...(options.publishWindowMs !== undefined && { publishWindowMs: options.publishWindowMs }),
    },
    mountWithoutFrom: options.mountWithoutFrom ?? false,
    referrersPageSize: options.referrersPageSize,
    immutableTags: options.immutableTags,
    ...(options.uploadQuota && { uploadQuota: options.uploadQuota }),
  });
  const app = createApp({
    registry,
    logger: createLogger('silent'),
    redirect: { enabled: options.redirect ?? false, ttlSeconds: 900 },
    auth: options.auth,
    cors: options.cors,
    browse: new Browse({ registry, storage }, { immutable: options.immutableTags ?? [], ...options.browse }),
    ...(options.web && { web: options.web }),
  });
  return {
    storage,
    registry,
    // The Node adapter hands the app the raw request path; so does this harness.
    request: async (path, init, source = '127.0.0.1') =>
      app.request(`http://registry.test${path}`, init, {
        incoming: { url: path, socket: { remoteAddress: source } },
      }),
  };
}

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** An OCI image manifest (JSON bytes) naming `config` and `layers` by their digests and sizes. */
export function imageManifest(config: Uint8Array, layers: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256(config),
        size: config.byteLength,
      },
      layers: layers.map((l) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: sha256(l),
        size: l.byteLength,
      })),
    }),
  );
}

export function randomBytes(size: number, seed = 1): Uint8Array<ArrayBuffer> {
  // Deterministic, incompressible enough for tests, and cheap for multi-MiB sizes.
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export async function errorCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { errors?: { code: string }[] };
  return body.errors?.[0]?.code;
}

/** Pushes a blob the way docker does: POST, one PATCH, PUT ?digest=. Returns its digest. */
export async function pushBlob(
  r: TestRegistry,
  repo: string,
  bytes: Uint8Array<ArrayBuffer>,
): Promise<string> {
  const digest = sha256(bytes);
  const start = await r.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`POST upload: ${start.status}`);
  const patch = await r.request(start.headers.get('Location')!, { method: 'PATCH', body: bytes });
  if (patch.status !== 202) throw new Error(`PATCH upload: ${patch.status} ${await patch.text()}`);
  const put = await r.request(`${patch.headers.get('Location')}?digest=${digest}`, { method: 'PUT' });
  if (put.status !== 201) throw new Error(`PUT upload: ${put.status} ${await put.text()}`);
  return digest;
}

export interface PushedImage {
  readonly digest: string;
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly config: string;
  readonly layers: string[];
}

/** Pushes a small OCI image (config + layers) and its manifest under `reference`. */
export async function pushImage(
  r: TestRegistry,
  repo: string,
  reference: string,
  options: {
    layers?: Uint8Array<ArrayBuffer>[];
    subject?: { digest: string; size: number; mediaType: string };
    artifactType?: string;
    annotations?: Record<string, string>;
  } = {},
): Promise<PushedImage> {
  const config = new TextEncoder().encode(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
  );
  const configDigest = await pushBlob(r, repo, config);
  const layers = options.layers ?? [randomBytes(1000, reference.length + 7)];
  const layerDigests: string[] = [];
  for (const layer of layers) layerDigests.push(await pushBlob(r, repo, layer));
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    ...(options.artifactType ? { artifactType: options.artifactType } : {}),
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: configDigest,
      size: config.byteLength,
    },
    layers: layers.map((l, i) => ({
      mediaType: 'application/vnd.oci.image.layer.v1.tar',
      digest: layerDigests[i],
      size: l.byteLength,
    })),
    ...(options.subject ? { subject: options.subject } : {}),
    ...(options.annotations ? { annotations: options.annotations } : {}),
  };
  const bytes = new TextEncoder().encode(JSON.stringify(manifest));
  const res = await r.request(`/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: bytes,
  });
  if (res.status !== 201) throw new Error(`PUT manifest: ${res.status} ${await res.text()}`);
  return { digest: sha256(bytes), bytes, config: configDigest, layers: layerDigests };
}
