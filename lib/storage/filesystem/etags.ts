import type { BigIntStats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { hasCode } from './errno.ts';

/** Enough for every session and tag a busy registry changes at once; the oldest entries go first. */
const MAX_ENTRIES = 10_000;

/**
 * The etags of the object files this process wrote, each with the identity of its file (device, inode,
 * size and modification time in nanoseconds; not the change time, which a rename or link moves). A conditional write (`ifMatch`) then checks the
 * current etag with one stat of the path instead of opening and reading the file (four system calls
 * through the thread pool): a file whose identity matches is the one this process wrote. Anything
 * else (a file replaced or removed by hand, by another process, after a restart) does not match and
 * is read as before, so the cache can be stale without ever being wrong.
 */
export class EtagCache {
  private readonly entries = new Map<string, { readonly identity: string; readonly etag: string }>();

  /** Records the etag of the file just published at `path`, whose stats are `stats`. */
  remember(path: string, stats: BigIntStats, etag: string): void {
    this.entries.delete(path);
    this.entries.set(path, { identity: identity(stats), etag });
    if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
  }

  forget(path: string): void {
    this.entries.delete(path);
  }

  /**
   * The etag of the object at `path` when the file there is the one remembered; `null` when there is
   * no file; undefined when it is not known (read the file).
   */
  async current(path: string): Promise<string | null | undefined> {
    const entry = this.entries.get(path);
    if (!entry) return undefined;
    let stats: BigIntStats;
    try {
      stats = await stat(path, { bigint: true });
    } catch (error) {
      if (hasCode(error, 'ENOENT')) return null;
      throw error;
    }
    return identity(stats) === entry.identity ? entry.etag : undefined;
  }
}

function identity(stats: BigIntStats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}`;
}
