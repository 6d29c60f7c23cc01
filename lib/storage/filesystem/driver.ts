import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { clampRange } from '../byte-range.ts';
import { pageLimit } from '../listing.ts';
import {
  PreconditionFailed,
  type ByteRange,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectStream,
  type PutOptions,
  type StorageDriver,
  type StoredObject,
  type TemporaryFile,
} from '../port.ts';
import { fileStream } from './file-stream.ts';
import { KeyLocks } from './key-locks.ts';
import { Layout } from './layout.ts';
import { FilesystemMultipart } from './multipart.ts';
import { describeObject, openObject, readObject, writeObjectFile } from './object-file.ts';
import { publish, publishNew, unpublish } from './publish.ts';
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
    const dest = this.layout.objectPath(key);
    const header = {
      etag: randomUUID(),
      contentType: options.contentType,
      metadata: { ...options.metadata },
    };
    const temp = await this.layout.tempPath();
    // Renamed into place, the temporary file is gone: nothing is left to remove.
    let renamed = false;
    try {
      const info = await writeObjectFile(temp, key, header, body, options.sha256Base64);
      await this.locks.with(key, async () => {
        if (options.ifMatch !== undefined && (await this.head(key))?.etag !== options.ifMatch) {
          throw new PreconditionFailed(key);
        }
        if (options.ifNoneMatch !== '*') {
          await publish(temp, dest);
          renamed = true;
        } else if (!(await publishNew(temp, dest))) throw new PreconditionFailed(key);
      });
      return info;
    } finally {
      if (!renamed) await rm(temp, { force: true });
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.layout.objectPath(key);
    await this.locks.with(key, () => unpublish(path, this.layout.objects));
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
