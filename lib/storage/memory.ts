import { createHash, randomUUID } from 'node:crypto';
import { clampRange } from './byte-range.ts';
import { compareKeys, pageLimit } from './listing.ts';
import { checkCompletion, checkPartUpload } from './multipart-rules.ts';
import {
  ChecksumMismatch,
  NoSuchUpload,
  PreconditionFailed,
  S3_LIMITS,
  type ByteRange,
  type DirectPartStore,
  type ListOptions,
  type ListPage,
  type MultipartStore,
  type ObjectInfo,
  type ObjectSink,
  type ObjectStream,
  type OpenUpload,
  type PartInfo,
  type PartSink,
  type PutOptions,
  type StorageDriver,
  type StoredObject,
} from './port.ts';

interface Entry {
  readonly info: ObjectInfo;
  readonly body: Uint8Array;
  /** The SHA-256 the writer gave and the store checked (S3 keeps it as the object's checksum). */
  readonly sha256Base64?: string;
}

interface Upload {
  readonly key: string;
  readonly initiated: Date;
  readonly contentType?: string;
  readonly metadata?: Record<string, string>;
  /** Part n at index n-1. */
  readonly parts: (PartInfo & { readonly body: Uint8Array })[];
}

/**
 * A store in memory with the semantics of the real ones (conditional writes, S3's part rules, the
 * filesystem's in-order parts), so that fast tests catch what those would refuse.
 */
export class MemoryDriver implements StorageDriver {
  readonly name = 'memory';
  private readonly objects = new Map<string, Entry>();
  private readonly uploads = new Map<string, Upload>();

  private readonly clock: () => number;

  /**
   * `streaming`: also offer `openPart` and `openObject`, the filesystem store's way, for fast tests
   * of that path.
   * `clock`: where the store's timestamps (lastModified, initiated) come from, so a test can give the
   * store and the code under test one clock it controls, or two that disagree.
   */
  /**
   * `direct`: also offer the direct-upload port (S3's presigned UploadPart and ListParts): a part URL is
   * `memory-part:///<key>?uploadId=<id>&partNumber=<n>`, which a test "sends" with `uploadPart`; a
   * checked PUT's URL is `memory-object:///<key>`, which a test sends with `put` and the header's
   * value as `sha256Base64` (the store refuses other bytes, as S3 does).
   */
  readonly direct?: DirectPartStore;

  constructor(
    options: {
      readonly streaming?: boolean;
      readonly clock?: () => number;
      readonly direct?: boolean;
    } = {},
  ) {
    this.clock = options.clock ?? Date.now;
    if (options.direct) {
      this.direct = {
        presignPart: async (key, uploadId, partNumber) =>
          `memory-part:///${key}?uploadId=${encodeURIComponent(uploadId)}&partNumber=${partNumber}`,
        listParts: async (_key, uploadId) => {
          const upload = this.uploads.get(uploadId);
          if (!upload) throw new NoSuchUpload(uploadId);
          return upload.parts
            .filter((p) => p !== undefined)
            .map(({ partNumber, etag, size }) => ({ partNumber, etag, size }));
        },
        presignChecked: async (key, sha256Base64) => ({
          url: `memory-object:///${key}`,
          headers: { 'x-amz-checksum-sha256': sha256Base64 },
        }),
        storedSha256: async (key) => {
          const entry = this.objects.get(key);
          return (
            entry && {
              size: entry.info.size,
              ...(entry.sha256Base64 !== undefined && { sha256Base64: entry.sha256Base64 }),
            }
          );
        },
      };
    }
    if (options.streaming) {
      this.multipart.openPart = (key, uploadId, partNumber) => this.openPart(key, uploadId, partNumber);
      this.openObject = async (key, putOptions) => this.streamObject(key, putOptions);
    }
  }

  openObject?: (key: string, options?: Omit<PutOptions, 'sha256Base64'>) => Promise<ObjectSink>;

  /** The bytes are held until `end`, which puts them as `put` would. */
  private streamObject(key: string, options: Omit<PutOptions, 'sha256Base64'> = {}): ObjectSink {
    return heldSink('object', (bytes) => this.put(key, bytes, options));
  }

  readonly multipart: MultipartStore = {
    ...S3_LIMITS,
    create: async (key, options = {}) => {
      const uploadId = randomUUID();
      this.uploads.set(uploadId, { key, ...options, initiated: new Date(this.clock()), parts: [] });
      return uploadId;
    },
    uploadPart: async (key, uploadId, partNumber, body, size) => {
      checkPartUpload(partNumber, size);
      const bytes = await readBody(body);
      if (bytes.length !== size) throw new Error(`part body has ${bytes.length} bytes, not ${size}`);
      return this.storePart(key, uploadId, partNumber, bytes);
    },
    complete: async (key, uploadId, parts) => {
      const upload = this.upload(key, uploadId);
      const stored = checkCompletion(
        parts,
        parts.map((part) => upload.parts[part.partNumber - 1]),
      );
      this.uploads.delete(uploadId);
      return this.store(key, Buffer.concat(stored.map((part) => part.body)), upload);
    },
    abort: async (key, uploadId) => {
      if (this.uploads.get(uploadId)?.key === key) this.uploads.delete(uploadId);
    },
    listOpen: (prefix) => this.openUploads(prefix),
  };

  private storePart(key: string, uploadId: string, partNumber: number, bytes: Uint8Array): PartInfo {
    const upload = this.upload(key, uploadId);
    if (upload.parts.length < partNumber - 1) {
      throw new Error(`part ${partNumber - 1} must be uploaded before ${partNumber}`);
    }
    const part = { partNumber, etag: randomUUID(), size: bytes.length };
    // Like the filesystem driver: re-uploading part n drops the parts after it.
    upload.parts.splice(partNumber - 1, Infinity, { ...part, body: bytes });
    return part;
  }

  private async openPart(key: string, uploadId: string, partNumber: number): Promise<PartSink> {
    checkPartUpload(partNumber, 0);
    if (this.upload(key, uploadId).parts.length < partNumber - 1) {
      throw new Error(`part ${partNumber - 1} must be uploaded before ${partNumber}`);
    }
    return heldSink('part', async (bytes) => this.storePart(key, uploadId, partNumber, bytes));
  }

  private async *openUploads(prefix: string): AsyncIterable<OpenUpload> {
    for (const [uploadId, upload] of [...this.uploads]) {
      if (upload.key.startsWith(prefix)) yield { key: upload.key, uploadId, initiated: upload.initiated };
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    return this.objects.get(key)?.info;
  }

  async get(key: string): Promise<StoredObject | undefined> {
    const entry = this.objects.get(key);
    return entry && { ...entry.info, body: entry.body.slice() };
  }

  async getStream(key: string, range?: ByteRange): Promise<ObjectStream | undefined> {
    const entry = this.objects.get(key);
    if (!entry) return undefined;
    const served = range && clampRange(range, entry.info.size);
    const bytes = served ? entry.body.slice(served.start, served.end + 1) : entry.body.slice();
    return { ...entry.info, body: new Blob([bytes]).stream(), ...(served && { range: served }) };
  }

  async put(
    key: string,
    body: Uint8Array | ReadableStream<Uint8Array>,
    options: PutOptions = {},
  ): Promise<ObjectInfo> {
    const bytes = await readBody(body);
    if (
      options.sha256Base64 !== undefined &&
      createHash('sha256').update(bytes).digest('base64') !== options.sha256Base64
    ) {
      throw new ChecksumMismatch(key);
    }
    // No await from here on: the check and the write are one step.
    const current = this.objects.get(key);
    if (options.ifNoneMatch === '*' && current) throw new PreconditionFailed(key);
    if (options.ifMatch !== undefined && current?.info.etag !== options.ifMatch) {
      throw new PreconditionFailed(key);
    }
    return this.store(key, bytes, options);
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const { startAfter } = options;
    const limit = pageLimit(options.limit);
    const keys = [...this.objects.keys()]
      .filter(
        (key) => key.startsWith(prefix) && (startAfter === undefined || compareKeys(key, startAfter) > 0),
      )
      .sort(compareKeys);
    return { keys: keys.slice(0, limit), truncated: keys.length > limit };
  }

  private upload(key: string, uploadId: string): Upload {
    const upload = this.uploads.get(uploadId);
    if (upload?.key !== key) throw new NoSuchUpload(uploadId);
    return upload;
  }

  private store(
    key: string,
    body: Uint8Array,
    options: { contentType?: string; metadata?: Record<string, string>; sha256Base64?: string },
  ): ObjectInfo {
    const info: ObjectInfo = {
      key,
      size: body.length,
      etag: randomUUID(),
      ...(options.contentType !== undefined && { contentType: options.contentType }),
      metadata: { ...options.metadata },
      lastModified: new Date(this.clock()),
    };
    this.objects.set(key, {
      info,
      body,
      ...(options.sha256Base64 !== undefined && { sha256Base64: options.sha256Base64 }),
    });
    return info;
  }
}

/** A copy of the body, so that the caller's later writes to its buffer do not reach the store. */
async function readBody(body: Uint8Array | ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return body instanceof Uint8Array ? body.slice() : new Uint8Array(await new Response(body).arrayBuffer());
}

/** A sink that holds what it is given and hands it over whole at `end` (`what` names it in errors). */
function heldSink<T>(what: string, finish: (bytes: Buffer) => Promise<T>) {
  const chunks: Uint8Array[] = [];
  let open = true;
  const live = () => {
    if (!open) throw new Error(`the ${what} was already ended or aborted`);
  };
  return {
    write: async (chunk: Uint8Array) => {
      live();
      chunks.push(chunk);
    },
    end: async () => {
      live();
      open = false;
      return finish(Buffer.concat(chunks));
    },
    abort: async () => {
      open = false;
    },
  };
}
