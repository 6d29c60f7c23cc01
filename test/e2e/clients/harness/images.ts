// Test images made locally: tar layers, OCI image layouts written by the test (never pulled from the
// internet), and checks that a layout or a `dir:` copy pulled by a client is complete and intact.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

export function sha256(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

// ---------------------------------------------------------------- tar

export interface TarEntry {
  name: string;
  /** File contents; omit for a directory. */
  data?: Buffer;
  mode?: number;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** A POSIX ustar archive with fixed owner and mtime, so the same entries give the same bytes. */
export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const isDir = e.data === undefined;
    const name = isDir && !e.name.endsWith('/') ? e.name + '/' : e.name;
    if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long: ${name}`);
    const size = e.data?.length ?? 0;
    const h = Buffer.alloc(512);
    h.write(name, 0, 100, 'utf8');
    h.write(octal(e.mode ?? (isDir ? 0o755 : 0o644), 8), 100, 'ascii');
    h.write(octal(0, 8), 108, 'ascii');
    h.write(octal(0, 8), 116, 'ascii');
    h.write(octal(size, 12), 124, 'ascii');
    h.write(octal(1_700_000_000, 12), 136, 'ascii');
    h.write('        ', 148, 'ascii');
    h.write(isDir ? '5' : '0', 156, 'ascii');
    h.write('ustar\0', 257, 'ascii');
    h.write('00', 263, 'ascii');
    h.write('root', 265, 'ascii');
    h.write('root', 297, 'ascii');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
    parts.push(h);
    if (e.data) {
      parts.push(e.data);
      const pad = (512 - (size % 512)) % 512;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------- OCI layout

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
  artifactType?: string;
}

export interface ImageSpec {
  /** Uncompressed layer tarballs, bottom first; [] makes an image with no layers at all. */
  layers: Buffer[];
  architecture?: string;
  os?: string;
  labels?: Record<string, string>;
  /** Written as Docker schema2 media types instead of OCI ones. */
  docker?: boolean;
}

export interface BuiltImage {
  descriptor: Descriptor;
  manifestDigest: string;
  configDigest: string;
  layerDigests: string[];
  diffIds: string[];
}

/** An OCI image layout directory (https://github.com/opencontainers/image-spec/blob/main/image-layout.md). */
export class OciLayout {
  private readonly manifests: Descriptor[] = [];

  constructor(readonly dir: string) {
    mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  }

  addBlob(data: Buffer, mediaType: string): Descriptor {
    const digest = sha256(data);
    const file = path.join(this.dir, 'blobs', 'sha256', digest.slice(7));
    if (!existsSync(file)) writeFileSync(file, data);
    return { mediaType, digest, size: data.length };
  }

  addImage(spec: ImageSpec): BuiltImage {
    const layers = spec.layers.map((raw) => ({
      diffId: sha256(raw),
      desc: this.addBlob(
        gzipSync(raw, { level: 1 }),
        spec.docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : MT.ociLayerGzip,
      ),
    }));
    const architecture = spec.architecture ?? 'amd64';
    const os = spec.os ?? 'linux';
    const config = Buffer.from(
      JSON.stringify({
        architecture,
        os,
        created: '2023-11-14T22:13:20Z',
        config: { Labels: spec.labels ?? {} },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
        history: layers.map(() => ({ created: '2023-11-14T22:13:20Z', created_by: 'berth e2e' })),
      }),
    );
    const configDesc = this.addBlob(
      config,
      spec.docker ? 'application/vnd.docker.container.image.v1+json' : MT.ociConfig,
    );
    const mediaType = spec.docker ? MT.dockerManifest : MT.ociManifest;
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        config: configDesc,
        layers: layers.map((l) => l.desc),
      }),
    );
    const desc = this.addBlob(manifest, mediaType);
    return {
      descriptor: { ...desc, platform: { architecture, os } },
      manifestDigest: desc.digest,
      configDigest: configDesc.digest,
      layerDigests: layers.map((l) => l.desc.digest),
      diffIds: layers.map((l) => l.diffId),
    };
  }

  addIndex(children: Descriptor[], docker = false): Descriptor {
    const mediaType = docker ? MT.dockerList : MT.ociIndex;
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests: children }));
    return this.addBlob(index, mediaType);
  }

  /** Adds a descriptor to index.json under a tag (org.opencontainers.image.ref.name). */
  tag(tag: string, desc: Descriptor): void {
    const { platform: _platform, ...plain } = desc;
    this.manifests.push({ ...plain, annotations: { 'org.opencontainers.image.ref.name': tag } });
    writeFileSync(
      path.join(this.dir, 'index.json'),
      JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: this.manifests }),
    );
  }
}

/** A layer with a few small files whose content is unique to `seed`. */
export function smallLayer(seed: string, files = 2): Buffer {
  const entries: TarEntry[] = [{ name: 'berth' }];
  for (let i = 0; i < files; i++) {
    entries.push({ name: `berth/${seed}-${i}.txt`, data: Buffer.from(`${seed} file ${i}\n`) });
  }
  return tar(entries);
}

export function randomLayer(name: string, bytes: number): Buffer {
  return tar([{ name, data: randomBytes(bytes) }]);
}

/** An empty tarball (just the two zero blocks): a layer that changes nothing. */
export function emptyLayer(): Buffer {
  return tar([]);
}

// ---------------------------------------------------------------- verifying what a client pulled

export interface PulledImage {
  /** Digest of the top manifest or index as stored by the client. */
  digest: string;
  mediaType: string;
  /** Config digest of the image (or of the first child of an index that was copied). */
  configDigest?: string;
  /** Every blob and manifest checked against its digest. */
  blobsVerified: number;
  /** For an index: digests of the child manifests. */
  children?: string[];
}

function checked(file: string, digest: string): Buffer {
  if (!existsSync(file)) throw new Error(`pulled copy is missing ${digest} (${file})`);
  const data = readFileSync(file);
  const actual = sha256(data);
  if (actual !== digest) throw new Error(`pulled blob ${file} has digest ${actual}, expected ${digest}`);
  return data;
}

interface ManifestJson {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

function walk(
  manifest: Buffer,
  digest: string,
  blobFile: (digest: string) => string,
  manifestFile: (digest: string) => string,
  optionalChildren: boolean,
): PulledImage {
  const m = JSON.parse(manifest.toString('utf8')) as ManifestJson;
  const mediaType = m.mediaType ?? (m.manifests ? MT.ociIndex : MT.ociManifest);
  let blobsVerified = 1;
  if (m.manifests) {
    const children: string[] = [];
    let configDigest: string | undefined;
    for (const c of m.manifests) {
      children.push(c.digest);
      const f = manifestFile(c.digest);
      if (!existsSync(f) && optionalChildren) continue;
      const sub = walk(checked(f, c.digest), c.digest, blobFile, manifestFile, optionalChildren);
      blobsVerified += sub.blobsVerified;
      configDigest ??= sub.configDigest;
    }
    return { digest, mediaType, children, blobsVerified, configDigest };
  }
  if (m.config) {
    checked(blobFile(m.config.digest), m.config.digest);
    blobsVerified++;
  }
  for (const l of m.layers ?? []) {
    checked(blobFile(l.digest), l.digest);
    blobsVerified++;
  }
  return { digest, mediaType, configDigest: m.config?.digest, blobsVerified };
}

/** Checks an OCI layout written by a client (crane pull, regctl, oras) and returns what it holds under `tag`. */
export function verifyLayout(dir: string, tag?: string): PulledImage {
  const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const entry =
    index.manifests.find(
      (d) => tag === undefined || d.annotations?.['org.opencontainers.image.ref.name'] === tag,
    ) ?? (index.manifests.length === 1 ? index.manifests[0] : undefined);
  if (!entry) throw new Error(`no manifest tagged ${tag} in ${dir}/index.json: ${JSON.stringify(index)}`);
  const blob = (d: string) => path.join(dir, 'blobs', ...d.split(':'));
  return walk(checked(blob(entry.digest), entry.digest), entry.digest, blob, blob, true);
}

/** Checks a containers-image `dir:` copy (skopeo copy ... dir:PATH), which keeps manifests byte for byte. */
export function verifyDirCopy(dir: string): PulledImage {
  const manifest = readFileSync(path.join(dir, 'manifest.json'));
  const digest = sha256(manifest);
  const blob = (d: string) => path.join(dir, d.split(':')[1]!);
  const child = (d: string) => path.join(dir, `${d.split(':')[1]!}.manifest.json`);
  return walk(manifest, digest, blob, child, true);
}
