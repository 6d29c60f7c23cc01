/**
 * The storage port: what the registry needs from an object store, shaped after S3 so that the
 * S3 driver is a thin mapping and the filesystem driver gives the same guarantees.
 *
 * Keys are `/`-separated strings built by lib/registry from validated names and digests
 * (see docs/architecture.md for the layout). Every object is written whole and atomically: a
 * reader sees the old object, the new one, or none, never a partial one.
 */

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /** Opaque version tag, changes on every write; used for conditional writes. */
  readonly etag: string;
  readonly contentType?: string;
  /** User metadata: lowercase keys, short ASCII values (S3 limits it to 2 KB in total). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly lastModified: Date;
}

export interface StoredObject extends ObjectInfo {
  readonly body: Uint8Array;
}

export interface ByteRange {
  /** First byte, inclusive. */
  readonly start: number;
  /** Last byte, inclusive. */
  readonly end: number;
}

export interface ObjectStream extends ObjectInfo {
  readonly body: ReadableStream<Uint8Array>;
  /** The range served, when one was asked for. */
  readonly range?: ByteRange;
}

export interface PutOptions {
  readonly contentType?: string;
  readonly metadata?: Record<string, string>;
  /** `*`: write only if no object exists under the key. */
  readonly ifNoneMatch?: '*';
  /** Write only if the current object's etag is this one. */
  readonly ifMatch?: string;
  /**
   * The sha256 of the body as base64, when the caller knows it: the store verifies it and
   * refuses the write on mismatch (S3's ChecksumSHA256).
   */
  readonly sha256Base64?: string;
}

export interface ListOptions {
  /** Only keys strictly greater than this one (full key). */
  readonly startAfter?: string;
  /** At most this many keys (the driver may return fewer). */
  readonly limit?: number;
}

export interface ListPage {
  /** Full keys in lexical (byte) order. Listing is recursive: no delimiter. */
  readonly keys: string[];
  /** True when more keys follow the last one returned. */
  readonly truncated: boolean;
}

/** A key with what a listing says of it (S3's ListObjectsV2 gives these at no extra cost). */
export interface ListedObject {
  readonly key: string;
  readonly size: number;
  /** The same value a head of the key would give at that moment; changes on every write. */
  readonly etag: string;
  readonly lastModified: Date;
}

export interface DetailedListPage {
  readonly objects: ListedObject[];
  readonly truncated: boolean;
}

export interface PartInfo {
  readonly partNumber: number;
  readonly etag: string;
  readonly size: number;
}

/** Multipart uploads, with S3's rules: part numbers 1..10000, every part but the last >= minPartSize. */
export interface MultipartStore {
  /** Parts smaller than this (except the last) are refused by the store. */
  readonly minPartSize: number;
  /** The largest part the store accepts. */
  readonly maxPartSize: number;
  readonly maxParts: number;

  create(key: string, options?: { contentType?: string; metadata?: Record<string, string> }): Promise<string>;
  /**
   * Uploads one part. Parts are uploaded in order (1, 2, 3, ...) by the registry; re-uploading a part
   * number replaces it. `size` is the body's exact length.
   */
  uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array | ReadableStream<Uint8Array>,
    size: number,
  ): Promise<PartInfo>;
  /**
   * Optional: a part written as its bytes arrive, its size known only when it ends (the filesystem
   * store, whose parts land in one growing file). Stores that need a part's length before its first
   * byte (S3) leave it out, and the registry gathers their parts in memory for `uploadPart`. Same
   * ordering rules as `uploadPart`; opening part n drops parts n, n+1, ... as re-uploading it would.
   */
  openPart?(key: string, uploadId: string, partNumber: number): Promise<PartSink>;
  /** Makes the object visible at `key`, made of exactly these parts in this order. O(1) in its size. */
  complete(key: string, uploadId: string, parts: readonly PartInfo[]): Promise<ObjectInfo>;
  /** Discards the upload and its parts. Aborting an unknown upload is not an error. */
  abort(key: string, uploadId: string): Promise<void>;
  /**
   * The uploads in progress whose keys start with `prefix`, in no particular order: what garbage
   * collection aborts when no upload session owns them any more.
   */
  listOpen(prefix: string): AsyncIterable<OpenUpload>;
}

/**
 * A multipart part being written. Calls are made one at a time (each awaited). `write` may return
 * before its bytes are stored, holding on to `chunk` until then: the caller must not change a chunk
 * it has written. A failure of a write in the background is thrown by a later call.
 */
export interface PartSink {
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Stores everything written and records the part; the part is then what `uploadPart` would make.
   * `durable: false` lets the bytes reach the disk later: the caller promises to end a later part of
   * the same upload durably (which makes the earlier ones durable too) before it relies on this one.
   */
  end(options?: { readonly durable?: boolean }): Promise<PartInfo>;
  /** Gives the part up: nothing is recorded (the bytes already written are dropped by the next part). */
  abort(): Promise<void>;
}

/**
 * An object being written (`openObject`). Calls are made one at a time (each awaited). `write` may
 * return before its bytes are stored, holding on to `chunk` until then: the caller must not change a
 * chunk it has written. A failure of a write in the background is thrown by a later call.
 */
export interface ObjectSink {
  write(chunk: Uint8Array): Promise<void>;
  /** Stores everything written, durably, and makes it the object at the key (as `put` would). */
  end(): Promise<ObjectInfo>;
  /** Gives the object up: nothing becomes visible, and what was written is removed. */
  abort(): Promise<void>;
}

/** A file (or a directory being made) in the store's temporary area. */
export interface TemporaryFile {
  /** Where it is, for people (`.tmp/<name>` on the filesystem store). */
  readonly name: string;
  /** Its bytes (a directory's: every file's under it). */
  readonly bytes: number;
  readonly lastModified: Date;
}

/** A multipart upload in progress. */
export interface OpenUpload {
  readonly key: string;
  readonly uploadId: string;
  readonly initiated: Date;
}

/**
 * Multipart uploads whose parts the client sends straight to the store (S3 presigned UploadPart
 * URLs). Only stores that can sign such URLs have it; the registry's direct-upload extension needs it.
 */
export interface DirectPartStore {
  /** A URL that accepts `PUT` of part `partNumber`'s bytes for `expiresInSeconds`. */
  presignPart(key: string, uploadId: string, partNumber: number, expiresInSeconds: number): Promise<string>;
  /** Every part uploaded so far, by part number, as the store holds them. */
  listParts(key: string, uploadId: string): Promise<PartInfo[]>;
  /**
   * A URL that accepts one `PUT` of the whole object `key` for `expiresInSeconds`, with `headers`
   * sent as they are: the store refuses the PUT unless the body's SHA-256 is `sha256Base64` (S3's
   * `x-amz-checksum-sha256`, signed as a header so that it cannot be left out or changed).
   */
  presignChecked(key: string, sha256Base64: string, expiresInSeconds: number): Promise<CheckedUrl>;
  /**
   * The object's size and the SHA-256 of its whole body as the store computed it when the object was
   * written (a checked PUT, or `put` with `sha256Base64`); `sha256Base64` is absent when the store has
   * none for it (a completed multipart upload, say). Undefined when there is no object.
   */
  storedSha256(key: string): Promise<{ readonly size: number; readonly sha256Base64?: string } | undefined>;
}

/** A presigned single PUT and the headers that must go with it. */
export interface CheckedUrl {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface StorageDriver {
  /** A short name for logs and docs: "filesystem", "s3", "memory". */
  readonly name: string;
  readonly multipart: MultipartStore;
  /** Direct (client-to-store) part uploads, when the store can sign URLs for them. */
  readonly direct?: DirectPartStore;
  /**
   * One serving process at a time uses this store (the filesystem store's data directory): what a
   * process that is gone left held (an upload session's lease) can be taken over at once.
   */
  readonly exclusive?: boolean;
  /**
   * Removes the store's own temporary files (what a crash in the middle of a write left, on the
   * filesystem store) older than `olderThanMs` by the store's clock. Stores without such files leave
   * it out.
   */
  cleanTemporary?(olderThanMs: number): Promise<{ readonly removed: number; readonly bytes: number }>;
  /**
   * The store's temporary files as they are now (what `cleanTemporary` would judge), with their sizes
   * and modification times by the store's clock: what `berth fsck` reports. Stores without such files
   * leave it out.
   */
  listTemporary?(): Promise<TemporaryFile[]>;

  head(key: string): Promise<ObjectInfo | undefined>;
  get(key: string): Promise<StoredObject | undefined>;
  /** Streams an object, or the given range of it (the range is clamped to the object's size). */
  getStream(key: string, range?: ByteRange): Promise<ObjectStream | undefined>;
  /**
   * Writes an object whole. With ifNoneMatch/ifMatch the write is conditional and atomic:
   * on a failed condition it throws PreconditionFailed and changes nothing.
   */
  put(key: string, body: Uint8Array | ReadableStream<Uint8Array>, options?: PutOptions): Promise<ObjectInfo>;
  /**
   * Optional: an object written as its bytes arrive, made visible whole by `end` (the filesystem
   * store, where the write of a body held until its last byte came would wait for the page cache).
   * `end` does what `put` of the same bytes with the same options would; nothing is visible before.
   * Stores where a streamed write costs what a whole one does (S3) leave it out.
   */
  openObject?(key: string, options?: Omit<PutOptions, 'sha256Base64'>): Promise<ObjectSink>;
  /** Deletes an object; deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  list(prefix: string, options?: ListOptions): Promise<ListPage>;
  /**
   * Optional: `list` with each key's size, etag and last-modified time, for stores whose listing
   * carries them anyway (S3). Without it, callers that need them head each key
   * (lib/browse/listing.ts), which on a local store costs what this would.
   */
  listObjects?(prefix: string, options?: ListOptions): Promise<DetailedListPage>;
  /**
   * A URL the client can fetch the object (or a HEAD of it) from directly, when the store can give one
   * (S3 presigning). Undefined means "stream it through the registry".
   */
  presign?(
    key: string,
    options: { method: 'GET' | 'HEAD'; expiresInSeconds: number; contentType?: string; filename?: string },
  ): Promise<string | undefined>;
}

/** A conditional write lost: the object exists (ifNoneMatch) or changed (ifMatch). */
export class PreconditionFailed extends Error {
  constructor(key: string) {
    super(`precondition failed for ${key}`);
    this.name = 'PreconditionFailed';
  }
}

/** The stored bytes did not match the sha256 the writer promised. */
export class ChecksumMismatch extends Error {
  constructor(key: string) {
    super(`checksum mismatch for ${key}`);
    this.name = 'ChecksumMismatch';
  }
}

/** A multipart upload id the store does not know (aborted, completed, or never made). */
export class NoSuchUpload extends Error {
  constructor(uploadId: string) {
    super(`no such multipart upload ${uploadId}`);
    this.name = 'NoSuchUpload';
  }
}

/** S3's numbers, which every driver uses so that the registry behaves the same on each. */
export const S3_LIMITS = {
  minPartSize: 5 * 1024 * 1024,
  maxPartSize: 5 * 1024 * 1024 * 1024,
  maxParts: 10_000,
} as const;

/** The store could not be reached or kept failing (throttling or 5xx beyond retries): a 503, not a 500. */
export class StorageUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageUnavailable';
  }
}
