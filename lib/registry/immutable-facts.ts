import { createHash } from 'node:crypto';
import type { ParsedDigest } from '../oci/digest.ts';

/**
 * What this process (a Lambda container, `berth serve`) learned from the store recently and may
 * use again without asking: the manifest path's cache (docs/architecture.md, "Manifest PUT").
 *
 * Two kinds of fact, with different lifetimes:
 *
 * - **Existence** of a key (a blob's link in a repository, a manifest in a repository): true when it
 *   was read, but a DELETE, a collection or a mount's take-back can remove it at any time. Such a
 *   fact is used for at most `ttlMs` after the read that saw it, and forgotten at once when this
 *   process deletes the key. A manifest PUT that relies on one counts its check window
 *   (MANIFEST_CHECK_WINDOW_MS) from that read, not from its own start, which is what keeps garbage
 *   collection's set-aside-then-verify argument (docs/gc.md) whole.
 * - **Bytes by digest** (an image config): content-addressed, so true for ever. Kept only after they
 *   were hashed here and found to match their digest; bounded in count and bytes, oldest out first.
 */
export interface ImmutableFactsOptions {
  /** How long an existence fact is used after the read that saw it. */
  readonly ttlMs?: number;
  /** The most existence facts kept. */
  readonly maxEntries?: number;
  /** The most bytes of content kept. */
  readonly maxBytes?: number;
}

/** Existence facts are used for 20 s: well inside the manifest check window of 60 s (manifests.ts). */
export const FACT_TTL_MS = 20_000;
const MAX_ENTRIES = 10_000;
const MAX_BYTES = 16 * 1024 * 1024;

export interface ExistenceFact<T> {
  readonly value: T;
  /** When the read that saw it started (Date.now()). */
  readonly seenAt: number;
}

export class ImmutableFacts {
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly existing = new Map<string, ExistenceFact<unknown>>();
  private readonly content = new Map<string, Uint8Array>();
  private contentBytes = 0;
  /** Moves on every forget: a read that started before a forget must not record what it saw. */
  private epoch = 0;

  constructor(options: ImmutableFactsOptions = {}) {
    this.ttlMs = options.ttlMs ?? FACT_TTL_MS;
    this.maxEntries = options.maxEntries ?? MAX_ENTRIES;
    this.maxBytes = options.maxBytes ?? MAX_BYTES;
  }

  /** The time to pass to `remember` for a read starting now. */
  begin(): { readonly at: number; readonly epoch: number } {
    return { at: Date.now(), epoch: this.epoch };
  }

  /** That `key` exists (with what its read said), if seen within the TTL and not deleted here since. */
  existence<T>(key: string): ExistenceFact<T> | undefined {
    const fact = this.existing.get(key);
    if (!fact) return undefined;
    const age = Date.now() - fact.seenAt;
    if (age < 0 || age >= this.ttlMs) {
      this.existing.delete(key);
      return undefined;
    }
    return fact as ExistenceFact<T>;
  }

  /**
   * Records that `key` existed when a read that began at `read` saw it. Ignored when this process
   * deleted anything since that read began (it might have been this key).
   */
  remember<T>(key: string, value: T, read: { readonly at: number; readonly epoch: number }): void {
    if (read.epoch !== this.epoch) return;
    this.existing.delete(key);
    this.existing.set(key, { value, seenAt: read.at });
    while (this.existing.size > this.maxEntries) {
      const oldest = this.existing.keys().next().value as string;
      this.existing.delete(oldest);
    }
  }

  /** Forgets that `key` exists: call before and after this process deletes it. */
  forget(key: string): void {
    this.epoch++;
    this.existing.delete(key);
  }

  /** Bytes whose digest is `digest`, if kept. */
  bytes(digest: ParsedDigest): Uint8Array | undefined {
    return this.keep(digest.digest);
  }

  /**
   * The bytes of an object whose content never changes once written (a referrer entry: it holds the
   * descriptor of the manifest its key names), if this process read or wrote it.
   */
  entry(key: string): Uint8Array | undefined {
    return this.keep(`key:${key}`);
  }

  /** Keeps the bytes of such an object (read from the store, or written by this process). */
  rememberEntry(key: string, bytes: Uint8Array): void {
    this.store(`key:${key}`, bytes);
  }

  /**
   * Whether `bytes` hash to `digest`; if they do, keeps them as its content (sha256 and sha512, up
   * to a quarter of the byte budget each).
   */
  rememberBytes(digest: ParsedDigest, bytes: Uint8Array): boolean {
    if (digest.algorithm !== 'sha256' && digest.algorithm !== 'sha512') return false;
    if (createHash(digest.algorithm).update(bytes).digest('hex') !== digest.hex) return false;
    this.store(digest.digest, bytes);
    return true;
  }

  private keep(name: string): Uint8Array | undefined {
    const bytes = this.content.get(name);
    if (!bytes) return undefined;
    this.content.delete(name);
    this.content.set(name, bytes);
    return bytes;
  }

  private store(name: string, bytes: Uint8Array): void {
    if (this.content.has(name) || bytes.byteLength > this.maxBytes / 4) return;
    this.content.set(name, bytes);
    this.contentBytes += bytes.byteLength;
    while (this.contentBytes > this.maxBytes) {
      const [oldest, value] = this.content.entries().next().value as [string, Uint8Array];
      this.content.delete(oldest);
      this.contentBytes -= value.byteLength;
    }
  }
}
