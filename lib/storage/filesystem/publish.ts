import { link, mkdir, rename, rmdir, unlink } from 'node:fs/promises';
import { dirname, sep } from 'node:path';
import { hasCode } from './errno.ts';

/**
 * A delete removes its emptied parent directories, which can happen between our mkdir and rename
 * into one of them (a sibling key's delete): then the step fails with ENOENT and is tried again.
 * Each retry loses only to a delete that emptied the directory in that instant; under a churn of
 * four writers and deleters in one directory (test/storage/filesystem-races.test.ts) no write needed
 * more than a few.
 */
const ATTEMPTS = 20;

/** Makes a whole file visible at `dest` in one step, replacing what was there. */
export async function publish(source: string, dest: string): Promise<void> {
  await intoParent(dest, () => rename(source, dest));
}

/**
 * Makes a whole file visible at `dest` only if nothing is there: link(2) fails when `dest` exists,
 * atomically even between processes. Answers false, and leaves `source` alone, when it exists.
 */
export async function publishNew(source: string, dest: string): Promise<boolean> {
  try {
    await intoParent(dest, () => link(source, dest));
    return true;
  } catch (error) {
    if (hasCode(error, 'EEXIST')) return false;
    throw error;
  }
}

/** Removes a file; one already gone is fine. */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (!hasCode(error, 'ENOENT')) throw error;
  }
}

/**
 * Removes a file, then its parent directories while they are empty, up to but not including the
 * directories right under `root`: those are the keys' first segments (`uploads/`, `data/`, `blobs/`,
 * `repos/`), few and soon written into again. Removing `uploads/` with the last session would make
 * the next upload's create fail and retry after a mkdir (three more system calls per blob).
 */
export async function unpublish(path: string, root: string): Promise<void> {
  await removeFile(path);
  for (let dir = dirname(path); dirname(dir).startsWith(root + sep); dir = dirname(dir)) {
    try {
      await rmdir(dir);
    } catch {
      return; // not empty (the usual case), or already gone: either way, the parents stay
    }
  }
}

/**
 * Takes the step, making `dest`'s parent directories first when it fails for want of them. The
 * parent usually exists (a repository's links, the blobs of one algorithm), so the step is tried
 * before any mkdir: a recursive mkdir of an existing directory costs two system calls on every
 * write. A concurrent delete may remove a parent at any moment, also while mkdir runs: a recursive
 * mkdir that finds a directory existing checks it and fails with ENOENT when it vanished in that
 * instant. Either way, both are tried again.
 */
async function intoParent(dest: string, step: () => Promise<void>): Promise<void> {
  try {
    return await step();
  } catch (error) {
    if (!hasCode(error, 'ENOENT')) throw error;
  }
  for (let attempt = 1; ; attempt++) {
    try {
      await mkdir(dirname(dest), { recursive: true });
      return await step();
    } catch (error) {
      if (!hasCode(error, 'ENOENT') || attempt === ATTEMPTS) throw error;
    }
  }
}
