import type { ParsedDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import {
  PreconditionFailed,
  type ByteRange,
  type ObjectInfo,
  type ObjectStream,
  type StorageDriver,
} from '../storage/port.ts';
import type { ImmutableFacts } from './immutable-facts.ts';
import { BlobDataMissing, BlobUnknown, BlobUnsettled } from './errors.ts';
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
  /**
   * `facts`: this process's cache of what it saw (immutable-facts.ts); a link written here is a fact
   * as good as one read, so a manifest PUT after a push through this process need not read it again.
   */
  constructor(
    private readonly storage: StorageDriver,
    private readonly facts?: ImmutableFacts,
  ) {}

  async stat(repo: RepositoryName, digest: ParsedDigest): Promise<BlobInfo | undefined> {
    const link = await this.storage.head(keys.layerLink(repo, digest));
    return link ? fromLink(digest, link) : undefined;
  }

  async require(repo: RepositoryName, digest: ParsedDigest): Promise<BlobInfo> {
    const info = await this.stat(repo, digest);
    if (!info) throw new BlobUnknown(repo, digest);
    return info;
  }

  /**
   * Streams a blob's bytes. A link naming data that is gone, while the blob itself names other data
   * (a push repaired the blob since, see `store`), serves the blob's data and is re-pointed.
   */
  async open(info: BlobInfo, range?: ByteRange, repo?: RepositoryName): Promise<ObjectStream> {
    let stream = await this.storage.getStream(info.dataKey, range);
    if (stream && stream.metadata[meta.dataKey] && info.dataKey === keys.blob(info.digest)) {
      // The link names a blob stored whole, but the blob's key holds a pointer now (the blob was
      // collected and uploaded again in the other form): serve the data it points at.
      await stream.body.cancel();
      stream = undefined;
    }
    if (!stream) {
      const blob = await this.statGlobal(info.digest);
      if (blob && blob.dataKey !== info.dataKey && blob.size === info.size) {
        stream = await this.storage.getStream(blob.dataKey, range);
        if (stream && repo) await this.link(repo, blob);
      }
    }
    if (!stream) throw new BlobDataMissing(info.digest);
    return stream;
  }

  /**
   * Where the client may fetch a blob's bytes itself for `ttlSeconds` (a presigned storage URL), or
   * undefined when the store cannot give one and the bytes go through the registry (`open`).
   */
  async redirect(info: BlobInfo, ttlSeconds: number): Promise<string | undefined> {
    if (!this.storage.presign) return undefined;
    return this.storage.presign(info.dataKey, {
      method: 'GET',
      expiresInSeconds: ttlSeconds,
      contentType: 'application/octet-stream',
    });
  }

  /** The global blob, whoever pushed it. */
  async statGlobal(digest: ParsedDigest): Promise<BlobInfo | undefined> {
    const object = await this.storage.head(keys.blob(digest));
    return object ? fromBlobObject(digest, object) : undefined;
  }

  async link(repo: RepositoryName, info: BlobInfo): Promise<void> {
    const key = keys.layerLink(repo, info.digest);
    const written = this.facts?.begin();
    await this.storage.put(key, new Uint8Array(0), {
      metadata: { [meta.size]: String(info.size), [meta.dataKey]: info.dataKey },
    });
    if (written) this.facts?.remember(key, info, written);
  }

  /** Removes the repository's link; the bytes stay for garbage collection. */
  async unlink(repo: RepositoryName, digest: ParsedDigest): Promise<void> {
    await this.require(repo, digest);
    await this.storage.delete(keys.layerLink(repo, digest));
  }

  /**
   * Stores a blob an upload has just received and verified, and links it into `repo`. When the blob
   * is already stored, the stored copy is linked and ours dropped (racing pushes of one layer leave
   * one copy). Garbage collection may be taking that stored copy away at this very moment
   * (docs/gc.md), so after linking it is looked up once more: if it is gone or changed, ours is
   * stored and linked instead. That costs one extra read, and only when the blob already existed.
   */
  async storeAndLink(
    repo: RepositoryName,
    digest: ParsedDigest,
    source: BlobSource,
    options: StoreAndLinkOptions = {},
  ): Promise<BlobInfo> {
    let gate = options.gate;
    let alongside = options.alongsideLink;
    for (let attempt = 0; attempt < 3; attempt++) {
      const storing = this.store(digest, source);
      let stored: Awaited<typeof storing>;
      if (gate) {
        // Both settle before either failure is thrown: nothing of this request runs on unseen.
        const [s, g] = await Promise.allSettled([storing, gate]);
        gate = undefined;
        if (s.status === 'rejected') throw s.reason;
        if (g.status === 'rejected') throw g.reason;
        stored = s.value;
      } else stored = await storing;
      if (!stored) continue;
      const beside = alongside?.();
      alongside = undefined;
      const [linked, done] = await Promise.allSettled([this.link(repo, stored.info), beside]);
      if (linked.status === 'rejected') {
        if (beside) await options.onLinkFailed?.();
        throw linked.reason;
      }
      if (done.status === 'rejected') throw done.reason;
      if (!stored.existed) return stored.info;
      const now = await this.statGlobal(digest);
      if (now && now.dataKey === stored.info.dataKey) {
        if ('dataKey' in source && source.dataKey !== now.dataKey && !options.keepSource) {
          await this.storage.delete(source.dataKey);
        }
        return now;
      }
    }
    throw new BlobUnsettled(digest);
  }

  /**
   * Writes the blob create-only: small bytes directly under the blob key, a multipart upload's data
   * object as a pointer. Undefined: it existed, then vanished before it could be read (try again).
   */
  private async store(
    digest: ParsedDigest,
    source: BlobSource,
  ): Promise<{ info: BlobInfo; existed: boolean } | undefined> {
    const key = keys.blob(digest);
    try {
      if ('bytes' in source) {
        await this.storage.put(key, source.bytes, { ifNoneMatch: '*', sha256Base64: source.sha256Base64 });
        return { info: { digest, size: source.bytes.byteLength, dataKey: key }, existed: false };
      }
      await this.storage.put(key, pointerBody(source), {
        ifNoneMatch: '*',
        contentType: 'application/json',
        metadata: { [meta.size]: String(source.size), [meta.dataKey]: source.dataKey },
      });
      return { info: { digest, size: source.size, dataKey: source.dataKey }, existed: false };
    } catch (err) {
      if (!(err instanceof PreconditionFailed)) throw err;
    }
    const found = await this.storage.head(key);
    if (!found) return undefined;
    const existing = fromBlobObject(digest, found);
    // A retried publish of the same data finds its own pointer: that data is the blob now.
    const ours = 'dataKey' in source && existing.dataKey === source.dataKey;
    if (!ours && existing.dataKey !== key && !(await this.dataIntact(existing))) {
      // A pointer whose data is gone (lost to a crash, a bug, a hand-edited store): the blob is
      // replaced with this upload's, conditionally on the broken pointer, so that pushing the bytes
      // again repairs it for every repository that links it, instead of linking the broken one.
      return (await this.replaceBroken(digest, found.etag, source)) ?? undefined;
    }
    return { info: existing, existed: !ours };
  }

  /** Whether a pointer blob's data object is there with the blob's size. */
  private async dataIntact(info: BlobInfo): Promise<boolean> {
    return (await this.storage.head(info.dataKey))?.size === info.size;
  }

  private async replaceBroken(
    digest: ParsedDigest,
    etag: string,
    source: BlobSource,
  ): Promise<{ info: BlobInfo; existed: boolean } | undefined> {
    const key = keys.blob(digest);
    try {
      if ('bytes' in source) {
        await this.storage.put(key, source.bytes, { ifMatch: etag, sha256Base64: source.sha256Base64 });
        return { info: { digest, size: source.bytes.byteLength, dataKey: key }, existed: false };
      }
      await this.storage.put(key, pointerBody(source), {
        ifMatch: etag,
        contentType: 'application/json',
        metadata: { [meta.size]: String(source.size), [meta.dataKey]: source.dataKey },
      });
      return { info: { digest, size: source.size, dataKey: source.dataKey }, existed: false };
    } catch (err) {
      if (err instanceof PreconditionFailed) return undefined; // someone else changed it: look again
      throw err;
    }
  }
}

export interface StoreAndLinkOptions {
  /**
   * Runs alongside the first write of the blob; the link is written only once it succeeded (a
   * completion's conditional claim of its session). If it fails, its error is thrown after the
   * blob write settled: the blob may exist, unlinked, which is harmless (its bytes are verified).
   */
  readonly gate?: Promise<unknown>;
  /** Started with the link, once the blob is stored, and awaited with it (the session's removal). */
  readonly alongsideLink?: () => Promise<void>;
  /** The link write failed after `alongsideLink` ran: undo what it did that a retry needs. */
  readonly onLinkFailed?: () => Promise<void>;
  /**
   * When the blob turns out to be stored already, leave the source's data object (another request
   * may name it; garbage collection removes it if nothing does) instead of deleting it.
   */
  readonly keepSource?: boolean;
}

/** What an upload received: small bytes in memory, or the data object a multipart upload completed. */
export type BlobSource =
  | { readonly bytes: Uint8Array; readonly sha256Base64?: string }
  | { readonly dataKey: string; readonly size: number };

function pointerBody(source: { readonly dataKey: string; readonly size: number }): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ dataKey: source.dataKey, size: source.size }));
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
