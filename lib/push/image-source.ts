import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { indexTar, type TarEntry } from './tar.ts';

/** A blob to push: its digest and size, and a way to read its bytes. */
export interface BlobSource {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
  read(): AsyncIterable<Buffer>;
}

/** A manifest to push after its blobs (and, for an index, after its child manifests). */
export interface ManifestSource {
  readonly mediaType: string;
  readonly bytes: Uint8Array;
  readonly digest: string;
  readonly blobs: readonly BlobSource[];
  readonly children: readonly ManifestSource[];
}

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const MAX_JSON = 4 * 1024 * 1024;

/** Where an archive's files are: a directory (OCI layout) or the entries of a tar file. */
interface Files {
  size(name: string): Promise<number | undefined>;
  read(name: string): AsyncIterable<Buffer>;
  json(name: string): Promise<unknown>;
  bytes(name: string): Promise<Buffer>;
}

/**
 * Reads an image to push from an OCI image layout (a directory, or a tar of one as `docker save`
 * writes since Docker 25) or a classic `docker save` archive (manifest.json with a config and
 * layer tars), which is converted to an OCI image manifest with each layer as stored (gzip or not).
 */
export async function openImage(path: string): Promise<ManifestSource> {
  const info = await stat(path);
  const files = info.isDirectory() ? directoryFiles(path) : await tarFiles(path);
  if ((await files.size('oci-layout')) !== undefined && (await files.size('index.json')) !== undefined) {
    return fromOciLayout(files);
  }
  if ((await files.size('manifest.json')) !== undefined) return fromDockerArchive(files);
  throw new Error(`${path} is neither an OCI image layout nor a docker save archive`);
}

async function fromOciLayout(files: Files): Promise<ManifestSource> {
  const index = (await files.json('index.json')) as { manifests?: Descriptor[] };
  const top = index.manifests ?? [];
  if (top.length !== 1) {
    throw new Error(
      `the layout's index.json lists ${top.length} manifests; berth push takes a layout of one image`,
    );
  }
  return ociManifest(files, top[0]!);
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

async function ociManifest(files: Files, descriptor: Descriptor): Promise<ManifestSource> {
  const bytes = await files.bytes(blobPath(descriptor.digest));
  const parsed = JSON.parse(bytes.toString('utf8')) as {
    mediaType?: string;
    config?: Descriptor;
    layers?: Descriptor[];
    manifests?: Descriptor[];
  };
  const mediaType = parsed.mediaType ?? descriptor.mediaType;
  if (mediaType === OCI_INDEX || mediaType === DOCKER_LIST) {
    const children = [];
    for (const child of parsed.manifests ?? []) {
      // A layout may hold only some platforms of an index; the others must already be in the registry.
      if ((await files.size(blobPath(child.digest))) !== undefined)
        children.push(await ociManifest(files, child));
    }
    return { mediaType, bytes, digest: descriptor.digest, blobs: [], children };
  }
  const blobs = [parsed.config, ...(parsed.layers ?? [])]
    .filter((d): d is Descriptor => d !== undefined)
    .map((d) => ({
      digest: d.digest,
      size: d.size,
      mediaType: d.mediaType,
      read: () => files.read(blobPath(d.digest)),
    }));
  return { mediaType, bytes, digest: descriptor.digest, blobs, children: [] };
}

async function fromDockerArchive(files: Files): Promise<ManifestSource> {
  const entries = (await files.json('manifest.json')) as { Config: string; Layers: string[] }[];
  const entry = entries[0];
  if (!entry || entries.length !== 1) {
    throw new Error(`the archive holds ${entries.length} images; berth push takes an archive of one image`);
  }
  const configBytes = await files.bytes(entry.Config);
  const config = JSON.parse(configBytes.toString('utf8')) as { rootfs?: { diff_ids?: string[] } };
  const diffIds = config.rootfs?.diff_ids ?? [];
  const layers: BlobSource[] = [];
  for (const [i, name] of entry.Layers.entries()) {
    const size = await files.size(name);
    if (size === undefined) throw new Error(`the archive lacks layer ${name}`);
    const gzip = await isGzip(files, name);
    // An uncompressed layer's digest is its diff id; a compressed one must be hashed.
    const digest = !gzip && diffIds[i] ? diffIds[i] : await hashOf(files.read(name));
    layers.push({
      digest,
      size,
      mediaType: gzip
        ? 'application/vnd.oci.image.layer.v1.tar+gzip'
        : 'application/vnd.oci.image.layer.v1.tar',
      read: () => files.read(name),
    });
  }
  const configDigest = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
  const configBlob: BlobSource = {
    digest: configDigest,
    size: configBytes.byteLength,
    mediaType: 'application/vnd.oci.image.config.v1+json',
    read: async function* () {
      yield configBytes;
    },
  };
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: configBlob.mediaType, digest: configDigest, size: configBlob.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const bytes = new TextEncoder().encode(JSON.stringify(manifest));
  return {
    mediaType: manifest.mediaType,
    bytes,
    digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    blobs: [configBlob, ...layers],
    children: [],
  };
}

async function isGzip(files: Files, name: string): Promise<boolean> {
  for await (const chunk of files.read(name)) return chunk[0] === 0x1f && chunk[1] === 0x8b;
  return false;
}

async function hashOf(stream: AsyncIterable<Buffer>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

function blobPath(digest: string): string {
  const match = /^([a-z0-9]+):([a-f0-9]+)$/.exec(digest);
  if (!match) throw new Error(`invalid digest ${digest} in the layout`);
  return `blobs/${match[1]}/${match[2]}`;
}

function directoryFiles(root: string): Files {
  const pathOf = (name: string) => {
    if (name.split('/').some((part) => part === '..')) throw new Error(`unsafe path ${name}`);
    return join(root, name);
  };
  return {
    // No size means "not in the layout": the caller names the missing file in its own error.
    size: async (name) => (await stat(pathOf(name)).catch(() => undefined))?.size,
    read: (name) => createReadStream(pathOf(name), { highWaterMark: 1024 * 1024 }),
    json: async (name) => JSON.parse(await readFile(pathOf(name), 'utf8')) as unknown,
    bytes: (name) => readFile(pathOf(name)),
  };
}

async function tarFiles(file: string): Promise<Files> {
  const entries = await indexTar(file);
  const entry = (name: string): TarEntry => {
    const found = entries.get(name);
    if (!found) throw new Error(`${file} has no entry ${name}`);
    return found;
  };
  const bytes = async (name: string) => {
    const { offset, size } = entry(name);
    if (size > MAX_JSON) throw new Error(`${name} in ${file} is too large to be metadata`);
    const handle = await open(file, 'r');
    try {
      const buffer = Buffer.alloc(size);
      await handle.read(buffer, 0, size, offset);
      return buffer;
    } finally {
      await handle.close();
    }
  };
  return {
    size: async (name) => entries.get(name)?.size,
    read: (name) => {
      const { offset, size } = entry(name);
      if (size === 0) return (async function* () {})();
      return createReadStream(file, { start: offset, end: offset + size - 1, highWaterMark: 1024 * 1024 });
    },
    json: async (name) => JSON.parse((await bytes(name)).toString('utf8')) as unknown,
    bytes,
  };
}
