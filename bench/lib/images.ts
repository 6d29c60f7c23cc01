/**
 * Images for the benchmarks, made locally from random (incompressible) bytes: OCI layouts on disk
 * for skopeo and docker, and in-memory blobs for the harness's own HTTP client.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MiB } from './proc.ts';

export const MT = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  /** Uncompressed: the bytes pushed are the bytes generated (skopeo --preserve-digests keeps them). */
  layer: 'application/vnd.oci.image.layer.v1.tar',
};

export const sha256 = (data: Uint8Array | string) =>
  `sha256:${createHash('sha256').update(data).digest('hex')}`;

export interface Layout {
  readonly dir: string;
  readonly tag: string;
  readonly manifestDigest: string;
  /** Bytes of all blobs (layers + config). */
  readonly bytes: number;
  readonly layers: number;
}

function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/**
 * Writes one layer as a tar holding a single file of `size` random bytes straight into the layout's
 * blob dir, hashing as it goes (so a 512 MiB layer never sits in memory).
 */
function writeLayer(dir: string, name: string, size: number): { digest: string; size: number } {
  const tmp = join(dir, 'blobs', 'sha256', `.tmp-${name}`);
  const fd = openSync(tmp, 'w');
  const hash = createHash('sha256');
  let total = 0;
  const put = (chunk: Uint8Array) => {
    hash.update(chunk);
    writeSync(fd, chunk);
    total += chunk.length;
  };
  try {
    put(tarHeader(name, size));
    const chunk = Buffer.allocUnsafe(4 * MiB);
    for (let left = size; left > 0; left -= chunk.length) {
      randomFillSync(chunk);
      put(left >= chunk.length ? chunk : chunk.subarray(0, left));
    }
    put(Buffer.alloc(((512 - (size % 512)) % 512) + 1024));
  } finally {
    closeSync(fd);
  }
  const digest = `sha256:${hash.digest('hex')}`;
  renameSync(tmp, join(dir, 'blobs', 'sha256', digest.slice(7)));
  return { digest, size: total };
}

/** An OCI layout at `dir` with one image of `layers` random layers of `layerBytes` each, tagged `tag`. */
export function makeLayout(dir: string, layers: number, layerBytes: number, tag = 'bench'): Layout {
  return makeLayoutOf(
    dir,
    Array.from({ length: layers }, () => layerBytes),
    tag,
  );
}

/**
 * Layer sizes like a real `node` or `python` image (issue #21): two large layers of 30-50 MiB (the
 * distribution's base and the runtime) and eight between 1 KiB and 5 MiB (packages, the app, config
 * files). `scale` shrinks every layer (the quick run).
 */
export function typicalImageSizes(scale = 1): number[] {
  const KiB = 1024;
  return [
    48 * MiB,
    31 * MiB,
    4.7 * MiB,
    3.1 * MiB,
    2.2 * MiB,
    1.3 * MiB,
    620 * KiB,
    150 * KiB,
    12 * KiB,
    1 * KiB,
  ].map((n) => Math.max(KiB, Math.round(n * scale)));
}

/** An OCI layout at `dir` with one image of random layers of the given sizes, tagged `tag`. */
export function makeLayoutOf(dir: string, sizes: readonly number[], tag = 'bench'): Layout {
  const layers = sizes.length;
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const addBlob = (data: Buffer) => {
    const digest = sha256(data);
    writeFileSync(join(dir, 'blobs', 'sha256', digest.slice(7)), data);
    return { digest, size: data.length };
  };
  const written = sizes.map((size, i) => writeLayer(dir, `layer-${i}.bin`, size));
  const config = addBlob(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        created: '2026-01-01T00:00:00Z',
        config: {},
        rootfs: { type: 'layers', diff_ids: written.map((l) => l.digest) },
        history: written.map(() => ({ created: '2026-01-01T00:00:00Z', created_by: 'berth bench' })),
      }),
    ),
  );
  const manifest = addBlob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.manifest,
        config: { mediaType: MT.config, ...config },
        layers: written.map((l) => ({ mediaType: MT.layer, ...l })),
      }),
    ),
  );
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: MT.manifest,
          ...manifest,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  return {
    dir,
    tag,
    manifestDigest: manifest.digest,
    bytes: written.reduce((n, l) => n + l.size, 0) + config.size,
    layers,
  };
}
