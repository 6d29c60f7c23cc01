import { RegistryError } from '../oci/errors.ts';
import type { ParsedDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import {
  PreconditionFailed,
  type ByteRange,
  type ObjectInfo,
  type ObjectStream,
  type StorageDriver,
} from '../storage/port.ts';
import { keys, meta } from './keys.ts';

/** Where a blob's bytes are and how many there are. */
export interface BlobInfo {
  readonly digest: ParsedDigest;
  readonly size: number;
  /** The object holding the bytes: the blob key itself, or the data object of a multipart upload. */
  readonly dataKey: string;
}

/**
 * Blobs are stored once, globally, under their digest; a repository serves only the blobs it links
 * to. A link carries a copy of the blob's size and data key, so a blob HEAD or GET in a repository
 * costs one storage read.
 */
export class Blobs {
  constructor(private readonly storage: StorageDriver) {}

  async stat(repo: RepositoryName, digest: ParsedDigest): Promise<BlobInfo | undefined> {
    const link = await this.storage.head(keys.layerLink(repo, digest));
    return link ? fromLink(digest, link) : undefined;
  }

  async require(repo: RepositoryName, digest: ParsedDigest): Promise<BlobInfo> {
    const info = await this.stat(repo, digest);
    if (!info)
      throw new RegistryError('BLOB_UNKNOWN', `blob ${digest.digest} is not known to repository ${repo}`);
    return info;
  }

  async open(info: BlobInfo, range?: ByteRange): Promise<ObjectStream> {
    const stream = await this.storage.getStream(info.dataKey, range);
    if (!stream) {
      throw new RegistryError(
        'BLOB_UNKNOWN',
        `the data of blob ${info.digest.digest} is missing from storage`,
      );
    }
    return stream;
  }

  /** The global blob, whoever pushed it. */
  async statGlobal(digest: ParsedDigest): Promise<BlobInfo | undefined> {
    const object = await this.storage.head(keys.blob(digest));
    return object ? fromBlobObject(digest, object) : undefined;
  }

  async link(repo: RepositoryName, info: BlobInfo): Promise<void> {
    await this.storage.put(keys.layerLink(repo, info.digest), new Uint8Array(0), {
      metadata: { [meta.size]: String(info.size), [meta.dataKey]: info.dataKey },
    });
  }

  /** Removes the repository's link; the bytes stay for garbage collection. */
  async unlink(repo: RepositoryName, digest: ParsedDigest): Promise<void> {
    await this.require(repo, digest);
    await this.storage.delete(keys.layerLink(repo, digest));
  }

  /** Stores small blob bytes directly under the blob key; an existing blob wins (same content). */
  async putSmall(digest: ParsedDigest, bytes: Uint8Array, sha256Base64?: string): Promise<BlobInfo> {
    try {
      await this.storage.put(keys.blob(digest), bytes, { ifNoneMatch: '*', sha256Base64 });
    } catch (err) {
      if (!(err instanceof PreconditionFailed)) throw err;
    }
    return { digest, size: bytes.byteLength, dataKey: keys.blob(digest) };
  }

  /**
   * Publishes a completed multipart data object as the blob. If the blob already exists the existing
   * one is kept and `dataKey` is deleted, so racing pushes of one layer leave one copy.
   */
  async publish(digest: ParsedDigest, size: number, dataKey: string): Promise<BlobInfo> {
    const pointer = new TextEncoder().encode(JSON.stringify({ dataKey, size }));
    try {
      await this.storage.put(keys.blob(digest), pointer, {
        ifNoneMatch: '*',
        contentType: 'application/json',
        metadata: { [meta.size]: String(size), [meta.dataKey]: dataKey },
      });
      return { digest, size, dataKey };
    } catch (err) {
      if (!(err instanceof PreconditionFailed)) throw err;
    }
    const existing = await this.statGlobal(digest);
    if (!existing)
      throw new RegistryError('UNAVAILABLE', `blob ${digest.digest} vanished while being published; retry`);
    // A retried publish of the same data finds its own pointer: that data is the blob now.
    if (existing.dataKey !== dataKey) await this.storage.delete(dataKey);
    return existing;
  }
}

function fromLink(digest: ParsedDigest, link: ObjectInfo): BlobInfo | undefined {
  const size = Number(link.metadata[meta.size]);
  const dataKey = link.metadata[meta.dataKey];
  if (!Number.isSafeInteger(size) || size < 0 || !dataKey) return undefined;
  return { digest, size, dataKey };
}

function fromBlobObject(digest: ParsedDigest, object: ObjectInfo): BlobInfo {
  const dataKey = object.metadata[meta.dataKey];
  if (dataKey) return { digest, size: Number(object.metadata[meta.size]), dataKey };
  return { digest, size: object.size, dataKey: object.key };
}
