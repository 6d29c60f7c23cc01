// An index shaped like BuildKit's registry cache (`--export-cache type=registry`, the default form):
// its `manifests` entries are the cache's layer blobs and one cacheconfig blob, not manifests.
import { pushBlob, randomBytes, sha256, type TestRegistry } from './harness.ts';

export const CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

export interface CacheIndex {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly digest: string;
  readonly mediaType: string;
  /** The blobs the entries name: layers, then the cacheconfig. */
  readonly blobs: readonly Uint8Array<ArrayBuffer>[];
}

/**
 * The cache index as BuildKit writes it: with `oci` (oci-mediatypes=true, the default) an OCI index
 * with OCI layer types, else a Docker manifest list with Docker layer types.
 */
export function cacheIndex(seed: number, options: { oci?: boolean; layers?: number } = {}): CacheIndex {
  const oci = options.oci ?? true;
  const layers = Array.from({ length: options.layers ?? 2 }, (_, i) =>
    randomBytes(600 + i * 17, seed * 13 + i),
  );
  const config = new TextEncoder().encode(
    JSON.stringify({
      layers: layers.map((_, i) => ({ blob: sha256(layers[i]!), parent: i - 1 })),
      records: [{ digest: sha256(`record-${seed}`) }],
    }),
  );
  const mediaType = oci ? OCI_INDEX : DOCKER_LIST;
  const layerType = oci
    ? 'application/vnd.oci.image.layer.v1.tar+gzip'
    : 'application/vnd.docker.image.rootfs.diff.tar.gzip';
  const index = {
    schemaVersion: 2,
    mediaType,
    manifests: [
      ...layers.map((l) => ({
        mediaType: layerType,
        digest: sha256(l),
        size: l.byteLength,
        annotations: {
          'buildkit/createdat': '2026-11-01T00:00:00Z',
          'containerd.io/uncompressed': sha256(l),
        },
      })),
      { mediaType: CACHE_CONFIG, digest: sha256(config), size: config.byteLength },
    ],
  };
  const bytes = new TextEncoder().encode(JSON.stringify(index));
  return { bytes, digest: sha256(bytes), mediaType, blobs: [...layers, config] };
}

/** Uploads the cache's blobs, then PUTs its index under `ref`, as BuildKit does; returns the PUT's response. */
export async function pushCache(
  r: TestRegistry,
  repo: string,
  ref: string,
  cache: CacheIndex,
  options: { skipBlobs?: number } = {},
): Promise<Response> {
  for (const [i, blob] of cache.blobs.entries()) {
    if (i !== options.skipBlobs) await pushBlob(r, repo, blob);
  }
  return r.request(`/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    headers: { 'Content-Type': cache.mediaType },
    body: cache.bytes,
  });
}
