import { randomUUID } from 'node:crypto';
import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { checkCompletion, checkPartUpload } from '../multipart-rules.ts';
import {
  NoSuchUpload,
  S3_LIMITS,
  type MultipartStore,
  type ObjectInfo,
  type OpenUpload,
  type PartInfo,
  type PartSink,
} from '../port.ts';
import { writeBody, writeFully } from './body-writer.ts';
import { hasCode } from './errno.ts';
import { KeyLocks } from './key-locks.ts';
import { FileSink } from './file-sink.ts';
import type { Layout } from './layout.ts';
import { bodyOffsetFor, describeObject, encodeHeader, readHeader } from './object-file.ts';
import { publish } from './publish.ts';

const UPLOAD = 'upload.json';
const DATA = 'data';
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const uploadSchema = z.object({ key: z.string(), bodyOffset: z.number().int().nonnegative() });
const partSchema = z.object({
  etag: z.string(),
  size: z.number().int().nonnegative(),
  start: z.number().int(),
});

interface StoredPart extends PartInfo {
  /** Offset of the part's first byte in the data file. */
  readonly start: number;
}

/**
 * Multipart uploads written as one growing object file, so that completing is a rename whatever the
 * size:
 *
 *   multipart/<uploadId>/upload.json    the key, and where the body starts in `data`
 *                        data           object header (room reserved at create), then the parts
 *                        part-<n>.json  etag, size and offset of part n
 *
 * Part n is written where part n-1 ends, so parts go in order: part n needs part n-1, and
 * re-uploading part n drops the parts after it. The registry uploads parts in order, so it never
 * notices; S3 would keep them.
 */
export class FilesystemMultipart implements MultipartStore {
  readonly minPartSize = S3_LIMITS.minPartSize;
  readonly maxPartSize = S3_LIMITS.maxPartSize;
  readonly maxParts = S3_LIMITS.maxParts;
  private readonly uploadLocks = new KeyLocks();

  constructor(
    private readonly layout: Layout,
    private readonly keyLocks: KeyLocks,
  ) {}

  async create(
    key: string,
    options: { contentType?: string; metadata?: Record<string, string> } = {},
  ): Promise<string> {
    this.layout.objectPath(key); // refuses an unsafe key now rather than at completion
    const uploadId = randomUUID();
    const header = {
      etag: randomUUID(),
      contentType: options.contentType,
      metadata: { ...options.metadata },
    };
    const bodyOffset = bodyOffsetFor(header);
    // Made aside and renamed into place, so that an upload exists whole or not at all.
    const { path: staging } = await this.layout.createTemp((path) => mkdir(path));
    try {
      await writeFile(join(staging, DATA), encodeHeader({ ...header, size: 0 }, bodyOffset));
      await writeFile(join(staging, UPLOAD), JSON.stringify({ key, bodyOffset }));
      await mkdir(this.layout.multipart, { recursive: true });
      await rename(staging, this.layout.uploadPath(uploadId));
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      throw error;
    }
    return uploadId;
  }

  async uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array | ReadableStream<Uint8Array>,
    size: number,
  ): Promise<PartInfo> {
    checkPartUpload(partNumber, size);
    return this.uploadLocks.with(uploadId, async () => {
      const { dir, start, handle } = await this.beginPart(key, uploadId, partNumber);
      try {
        await writeBody(handle, start, body, { expectedSize: size });
        // Flushed part by part, so that completing has only the header left to flush.
        await handle.datasync();
      } finally {
        await handle.close();
      }
      const part = { partNumber, etag: randomUUID(), size };
      await writePart(dir, { ...part, start });
      return part;
    });
  }

  /**
   * A part written as it arrives. The upload's lock is held only to open the part and to record it,
   * not while its bytes come in: an abort in between removes the upload, and recording then finds it
   * gone (NoSuchUpload), as an upload of the part would have.
   */
  async openPart(key: string, uploadId: string, partNumber: number): Promise<PartSink> {
    checkPartUpload(partNumber, 0);
    return this.uploadLocks.with(uploadId, async () => {
      const { start, previous, handle } = await this.beginPart(key, uploadId, partNumber);
      return new FileSink<PartInfo>(handle, start, (size) =>
        this.uploadLocks.with(uploadId, async () => {
          const now = await this.open(key, uploadId);
          // Another writer of this upload since the part was opened: its records win, ours is void.
          const before = partNumber === 1 ? undefined : await readPart(now.dir, partNumber - 1);
          if (before?.etag !== previous?.etag || (await readPart(now.dir, partNumber))) {
            throw new Error(`part ${partNumber} of upload ${uploadId} was replaced while it was written`);
          }
          const part = { partNumber, etag: randomUUID(), size };
          await writePart(now.dir, { ...part, start });
          return part;
        }),
      );
    });
  }

  /**
   * Under the upload's lock: finds where part n starts (where part n-1 ends), drops the records of
   * parts n, n+1, ... and opens the data file cut to that point.
   */
  private async beginPart(
    key: string,
    uploadId: string,
    partNumber: number,
  ): Promise<{ dir: string; start: number; previous: StoredPart | undefined; handle: FileHandle }> {
    const { dir, bodyOffset } = await this.open(key, uploadId);
    const previous = partNumber === 1 ? undefined : await readPart(dir, partNumber - 1);
    if (partNumber > 1 && !previous) {
      throw new Error(`part ${partNumber - 1} must be uploaded before ${partNumber}`);
    }
    const start = previous ? previous.start + previous.size : bodyOffset;
    await dropParts(dir, partNumber);
    const handle = await openData(dir, uploadId);
    try {
      await handle.truncate(start);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return { dir, start, previous, handle };
  }

  async complete(key: string, uploadId: string, parts: readonly PartInfo[]): Promise<ObjectInfo> {
    return this.uploadLocks.with(uploadId, async () => {
      const { dir, bodyOffset } = await this.open(key, uploadId);
      // One at a time: 10,000 parts read at once would run out of file descriptors.
      const records: (StoredPart | undefined)[] = [];
      for (const part of parts) records.push(await readPart(dir, part.partNumber));
      let end = bodyOffset;
      for (const part of checkCompletion(parts, records)) {
        // Part records left by a crash in the middle of an upload may not match the data file.
        if (part.start !== end) throw new Error(`part ${part.partNumber} does not follow the part before it`);
        end += part.size;
      }
      const handle = await openData(dir, uploadId);
      let info: ObjectInfo;
      try {
        if ((await handle.stat()).size < end) throw new Error('the upload data is shorter than its parts');
        const { header } = await readHeader(handle);
        await writeFully(handle, encodeHeader({ ...header, size: end - bodyOffset }, bodyOffset), 0);
        await handle.truncate(end);
        await handle.datasync();
        ({ info } = await describeObject(handle, key));
      } finally {
        await handle.close();
      }
      const dest = this.layout.objectPath(key);
      await this.keyLocks.with(key, () => publish(join(dir, DATA), dest));
      await rm(dir, { recursive: true, force: true });
      return info;
    });
  }

  async abort(key: string, uploadId: string): Promise<void> {
    await this.uploadLocks.with(uploadId, async () => {
      try {
        const { dir } = await this.open(key, uploadId);
        await rm(dir, { recursive: true, force: true });
      } catch (error) {
        if (!(error instanceof NoSuchUpload)) throw error;
      }
    });
  }

  async *listOpen(prefix: string): AsyncIterable<OpenUpload> {
    let ids: string[];
    try {
      ids = await readdir(this.layout.multipart);
    } catch (error) {
      if (hasCode(error, 'ENOENT')) return;
      throw error;
    }
    for (const uploadId of ids.filter((id) => UPLOAD_ID.test(id))) {
      const path = join(this.layout.uploadPath(uploadId), UPLOAD);
      let found: { key: string; initiated: Date };
      try {
        const upload = uploadSchema.parse(JSON.parse(await readFile(path, 'utf8')));
        found = { key: upload.key, initiated: (await stat(path)).mtime };
      } catch (error) {
        // Completed or aborted meanwhile.
        if (hasCode(error, 'ENOENT')) continue;
        throw error;
      }
      if (found.key.startsWith(prefix)) yield { uploadId, ...found };
    }
  }

  private async open(key: string, uploadId: string): Promise<{ dir: string; bodyOffset: number }> {
    // The id becomes a path: only ids this driver could have made are looked up.
    if (!UPLOAD_ID.test(uploadId)) throw new NoSuchUpload(uploadId);
    const dir = this.layout.uploadPath(uploadId);
    let text: string;
    try {
      text = await readFile(join(dir, UPLOAD), 'utf8');
    } catch (error) {
      if (hasCode(error, 'ENOENT')) throw new NoSuchUpload(uploadId);
      throw error;
    }
    const upload = uploadSchema.parse(JSON.parse(text));
    if (upload.key !== key) throw new NoSuchUpload(uploadId);
    return { dir, bodyOffset: upload.bodyOffset };
  }
}

/** The data file; gone when a completion renamed it into place but crashed before removing the rest. */
async function openData(dir: string, uploadId: string): Promise<FileHandle> {
  try {
    return await open(join(dir, DATA), 'r+');
  } catch (error) {
    if (hasCode(error, 'ENOENT')) throw new NoSuchUpload(uploadId);
    throw error;
  }
}

function partPath(dir: string, partNumber: number): string {
  return join(dir, `part-${partNumber}.json`);
}

async function readPart(dir: string, partNumber: number): Promise<StoredPart | undefined> {
  let text: string;
  try {
    text = await readFile(partPath(dir, partNumber), 'utf8');
  } catch (error) {
    if (hasCode(error, 'ENOENT')) return undefined;
    throw error;
  }
  return { partNumber, ...partSchema.parse(JSON.parse(text)) };
}

async function writePart(dir: string, part: StoredPart): Promise<void> {
  const path = partPath(dir, part.partNumber);
  await writeFile(`${path}.tmp`, JSON.stringify({ etag: part.etag, size: part.size, start: part.start }));
  await rename(`${path}.tmp`, path);
}

/**
 * Removes the records of parts `from`, `from + 1`, ... up to the first missing one: part n is only
 * recorded after part n-1, so they are contiguous. One left beyond a gap by a crash here is caught by
 * the offset check of a completion.
 */
async function dropParts(dir: string, from: number): Promise<void> {
  for (let partNumber = from; ; partNumber++) {
    try {
      await unlink(partPath(dir, partNumber));
    } catch (error) {
      if (hasCode(error, 'ENOENT')) return;
      throw error;
    }
  }
}
