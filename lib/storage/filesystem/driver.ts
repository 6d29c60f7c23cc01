import { randomUUID } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { open } from 'node:fs/promises';
import { clampRange } from '../byte-range.ts';
import { pageLimit } from '../listing.ts';
import {
  PreconditionFailed,
  type ByteRange,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectSink,
  type ObjectStream,
  type PutOptions,
  type StorageDriver,
  type StoredObject,
  type TemporaryFile,
} from '../port.ts';
import { fileStream } from './file-stream.ts';
import { EtagCache } from './etags.ts';
import { KeyLocks } from './key-locks.ts';
import { Layout } from './layout.ts';
import { FilesystemMultipart } from './multipart.ts';
import { writeFully } from './body-writer.ts';
import { FileSink } from './file-sink.ts';
import {
  bodyOffsetFor,
  describeObject,
  encodeHeader,
  objectInfo,
  openObject,
  readObject,
  statOpen,
  writeObjectFile,
} from './object-file.ts';
import { publish, publishNew, removeFile, unpublish } from './publish.ts';
import { listTree } from './tree-walk.ts';

export interface FilesystemOptions {
  /** The data directory; made on first write. */
  readonly root: string;
}

/**
 * The embedded store: one file per object under a data directory (see layout.ts). Objects are
 * written aside and renamed into place, so readers see whole objects only. `ifNoneMatch` is atomic
 * even between processes (link(2)); the other conditions rely on an in-process lock per key, so
 * one process only may use a data directory.
 */
export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly exclusive = true;
  readonly multipart: FilesystemMultipart;
  private readonly layout: Layout;
  private readonly locks = new KeyLocks();
  private readonly etags = new EtagCache();

  constructor(options: FilesystemOptions) {
    this.layout = new Layout(options.root);
    this.multipart = new FilesystemMultipart(this.layout, this.locks);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const handle = await openObject(this.layout.objectPath(key));
    if (!handle) return undefined;
    try {
      return (await describeObject(handle, key)).info;
    } finally {
      await handle.close();
    }
  }

  async get(key: string): Promise<StoredObject | undefined> {
    const handle = await openObject(this.layout.objectPath(key));
    if (!handle) return undefined;
    try {
      const { info, body } = await readObject(handle, key);
      return { ...info, body };
    } finally {
      await handle.close();
    }
  }

  async getStream(key: string, range?: ByteRange): Promise<ObjectStream | undefined> {
    const handle = await openObject(this.layout.objectPath(key));
    if (!handle) return undefined;
    try {
      const { info, bodyOffset } = await describeObject(handle, key);
      const served = range && clampRange(range, info.size);
      const start = bodyOffset + (served?.start ?? 0);
      const end = bodyOffset + (served ? served.end + 1 : info.size);
      return { ...info, body: fileStream(handle, start, end), ...(served && { range: served }) };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async put(
    key: string,
    body: Uint8Array | ReadableStream<Uint8Array>,
    options: PutOptions = {},
  ): Promise<ObjectInfo> {
    const header = headerOf(options);
    const { path: temp, made: handle } = await this.layout.createTemp((path) => open(path, 'wx'));
    let placed = false;
    try {
      const { info, stats } = await writeObjectFile(handle, key, header, body, options.sha256Base64);
      await this.place(key, temp, info, stats, options);
      placed = true;
      return info;
    } finally {
      // Renamed into place, the temporary file is gone: nothing is left to remove (a link leaves it
      // behind). A plain unlink: rm would stat the file first, on every create.
      if (!placed || options.ifNoneMatch === '*') await removeFile(temp);
    }
  }

  /**
   * The body is written into a temporary file as it comes, its header's room reserved (as a streamed
   * `put` does); `end` writes the header, syncs, and places the file as `put` would. Each batch's
   * writeback starts once it is written (FileSink's `syncAhead`), so `end` waits for little more than
   * the last batch: made for the small objects the registry streams (an upload's tail, under 5 MiB),
   * not for large ones, where that would sync once per MiB.
   */
  async openObject(key: string, options: Omit<PutOptions, 'sha256Base64'> = {}): Promise<ObjectSink> {
    const header = headerOf(options);
    const bodyOffset = bodyOffsetFor(header);
    const { path: temp, made: handle } = await this.layout.createTemp((path) => open(path, 'wx'));
    let placed = false;
    const sink = new FileSink<ObjectInfo>(
      handle,
      bodyOffset,
      async (size) => {
        const complete = { ...header, size };
        const stats = statOpen(handle);
        const info = objectInfo(key, complete, bodyOffset, stats);
        await this.place(key, temp, info, stats, options);
        placed = true;
        return info;
      },
      {
        seal: (size) => writeFully(handle, encodeHeader({ ...header, size }, bodyOffset), 0),
        syncAhead: true,
      },
    );
    return {
      write: (chunk) => sink.write(chunk),
      end: async () => {
        try {
          return await sink.end();
        } finally {
          if (!placed || options.ifNoneMatch === '*') await removeFile(temp);
        }
      },
      abort: async () => {
        await sink.abort();
        if (!placed) await removeFile(temp);
      },
    };
  }

  /** Puts a written temporary file in place of the object `key`, if `options`' condition holds. */
  private async place(
    key: string,
    temp: string,
    info: ObjectInfo,
    stats: BigIntStats,
    options: Pick<PutOptions, 'ifMatch' | 'ifNoneMatch'>,
  ): Promise<void> {
    const dest = this.layout.objectPath(key);
    await this.locks.with(key, async () => {
      if (options.ifMatch !== undefined && (await this.etagOf(key, dest)) !== options.ifMatch) {
        throw new PreconditionFailed(key);
      }
      if (options.ifNoneMatch !== '*') await publish(temp, dest);
      else if (!(await publishNew(temp, dest))) throw new PreconditionFailed(key);
      this.etags.remember(dest, stats, info.etag);
    });
  }

  async delete(key: string): Promise<void> {
    const path = this.layout.objectPath(key);
    await this.locks.with(key, async () => {
      this.etags.forget(path);
      await unpublish(path, this.layout.objects);
    });
  }

  /** The etag of the object at `path` now, or undefined when there is none (see EtagCache). */
  private async etagOf(key: string, path: string): Promise<string | undefined> {
    const known = await this.etags.current(path);
    if (known === null) return undefined;
    return known ?? (await this.head(key))?.etag;
  }

  async cleanTemporary(olderThanMs: number): Promise<{ removed: number; bytes: number }> {
    return this.layout.cleanTemporary(olderThanMs);
  }

  async listTemporary(): Promise<TemporaryFile[]> {
    return this.layout.listTemporary();
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    return listTree(this.layout, prefix, options.startAfter, pageLimit(options.limit));
  }
}

/** A new object's header but its size: a fresh etag, and the type and metadata it was given. */
function headerOf(options: Pick<PutOptions, 'contentType' | 'metadata'>) {
  return { etag: randomUUID(), contentType: options.contentType, metadata: { ...options.metadata } };
}
