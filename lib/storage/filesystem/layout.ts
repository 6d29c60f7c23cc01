import { randomUUID } from 'node:crypto';
import { lstat, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hasCode } from './errno.ts';

/*
 * Key segment `s` is file `s.obj` when it is the key's last segment and directory `s.d` otherwise.
 * A suffix on files alone would not do: key `x` (file x.obj) and key `x.obj/y` (directory x.obj)
 * would collide, and `.obj` is a valid repository name component.
 */
const FILE_SUFFIX = '.obj';
const DIR_SUFFIX = '.d';

/**
 * Where things live in a data directory:
 * - `objects/`: one file per object; key `a/b/c` is `objects/a.d/b.d/c.obj`
 * - `multipart/<uploadId>/`: a multipart upload in progress
 * - `.tmp/`: files and upload directories being made, renamed into place when whole
 */
export class Layout {
  readonly objects: string;
  readonly multipart: string;
  private readonly tmp: string;
  /** Whether `.tmp/` was made (or found) by this process; see createTemp. */
  private tmpMade = false;

  constructor(root: string) {
    this.objects = join(root, 'objects');
    this.multipart = join(root, 'multipart');
    this.tmp = join(root, '.tmp');
  }

  /** The file of an object; throws for keys the registry never makes and a path could abuse. */
  objectPath(key: string): string {
    const segments = key.split('/');
    if (!segments.every(isSafeSegment)) throw new TypeError(`unsafe storage key ${JSON.stringify(key)}`);
    const name = segments.pop();
    return join(this.directoryPath(segments), `${name}${FILE_SUFFIX}`);
  }

  /** The directory holding the objects whose keys start with these segments and a `/`. */
  directoryPath(segments: readonly string[]): string {
    return join(this.objects, ...segments.map((segment) => segment + DIR_SUFFIX));
  }

  uploadPath(uploadId: string): string {
    return join(this.multipart, uploadId);
  }

  /**
   * Makes something at a fresh path under `.tmp/` (on the same filesystem as the objects, so that
   * renames are atomic) with `create`, whose first step must be the one that makes the path (an
   * open with `wx`, a mkdir): it answers ENOENT when `.tmp/` is missing, and nothing was made.
   * `.tmp/` is made on first use only, not before every write (a recursive mkdir of an existing
   * directory is two system calls), and made again when something removed it meanwhile.
   */
  async createTemp<T>(create: (path: string) => Promise<T>): Promise<{ path: string; made: T }> {
    if (!this.tmpMade) {
      await mkdir(this.tmp, { recursive: true });
      this.tmpMade = true;
    }
    for (let attempt = 1; ; attempt++) {
      const path = join(this.tmp, randomUUID());
      try {
        return { path, made: await create(path) };
      } catch (error) {
        if (!hasCode(error, 'ENOENT') || attempt === 2) throw error;
      }
      await mkdir(this.tmp, { recursive: true });
    }
  }

  /**
   * Removes what a crash left in `.tmp/` (files being written, upload directories being made, a
   * second link to a published object) older than `olderThanMs`. Ages are the kernel's: now is the
   * mtime of a file made for the purpose, so the caller's clock does not matter.
   */
  async cleanTemporary(olderThanMs: number): Promise<{ removed: number; bytes: number }> {
    const { path: probe } = await this.createTemp((path) => writeFile(path, '', { flag: 'wx' }));
    let removed = 0;
    let bytes = 0;
    try {
      const now = (await lstat(probe)).mtimeMs;
      for (const name of await readdir(this.tmp)) {
        const path = join(this.tmp, name);
        if (path === probe) continue;
        // Gone meanwhile (a write finished and renamed it): nothing to purge.
        const info = await lstat(path).catch(() => undefined);
        if (!info || now - info.mtimeMs < olderThanMs) continue;
        bytes += info.isDirectory() ? await sizeOf(path) : info.size;
        await rm(path, { recursive: true, force: true });
        removed++;
      }
    } finally {
      await rm(probe, { force: true });
    }
    return { removed, bytes };
  }

  /** What is in `.tmp/` now: each entry's size and modification time (the kernel's clock). */
  async listTemporary(): Promise<{ name: string; bytes: number; lastModified: Date }[]> {
    let names: string[];
    try {
      names = await readdir(this.tmp);
    } catch (err) {
      if (hasCode(err, 'ENOENT')) return [];
      throw err;
    }
    const found: { name: string; bytes: number; lastModified: Date }[] = [];
    for (const name of names.sort()) {
      const path = join(this.tmp, name);
      // Gone meanwhile (a write finished and renamed it): not a leftover.
      const info = await lstat(path).catch(() => undefined);
      if (!info) continue; // a write finished meanwhile
      const bytes = info.isDirectory() ? await sizeOf(path) : info.size;
      found.push({ name: `.tmp/${name}`, bytes, lastModified: info.mtime });
    }
    return found;
  }
}

export function isSafeSegment(segment: string): boolean {
  return segment !== '' && segment !== '.' && segment !== '..' && !/[\\\0]/.test(segment);
}

/** The key segment a directory entry under `objects/` stands for, or undefined for a stray file. */
export function entrySegment(name: string, isDirectory: boolean): string | undefined {
  const suffix = isDirectory ? DIR_SUFFIX : FILE_SUFFIX;
  const segment = name.endsWith(suffix) ? name.slice(0, -suffix.length) : '';
  return isSafeSegment(segment) ? segment : undefined;
}

async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  // A directory removed while it is counted (its write finished) holds no bytes any more.
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    total += entry.isDirectory()
      ? await sizeOf(path)
      : // A file removed while it is counted holds no bytes any more.
        ((await lstat(path).catch(() => undefined))?.size ?? 0);
  }
  return total;
}
