import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { compareKeys } from '../listing.ts';
import type { ListPage } from '../port.ts';
import { hasCode } from './errno.ts';
import { entrySegment, isSafeSegment, type Layout } from './layout.ts';

/**
 * Lists keys by walking the objects tree depth first, each directory's entries in key order, so that
 * keys come out in order without reading the whole tree: only the directories the prefix and
 * `startAfter` leave in play are read.
 */
export async function listTree(
  layout: Layout,
  prefix: string,
  startAfter: string | undefined,
  limit: number,
): Promise<ListPage> {
  // The prefix may end inside a segment (`catalog/ab`): walk its directory, keep names starting so.
  const slash = prefix.lastIndexOf('/');
  const directoryKey = prefix.slice(0, slash + 1);
  const segments = directoryKey.split('/').slice(0, -1);
  const keys: string[] = [];
  if (!segments.every(isSafeSegment)) return { keys, truncated: false };
  const walk = keysUnder(layout.directoryPath(segments), directoryKey, prefix.slice(slash + 1), startAfter);
  for await (const key of walk) {
    if (keys.length === limit) return { keys, truncated: true };
    keys.push(key);
  }
  return { keys, truncated: false };
}

async function* keysUnder(
  directory: string,
  keyPrefix: string,
  namePrefix: string,
  startAfter: string | undefined,
): AsyncGenerator<string> {
  for (const entry of await entries(directory, namePrefix)) {
    const key = keyPrefix + entry.segment;
    if (!entry.isDirectory) {
      if (startAfter === undefined || compareKeys(key, startAfter) > 0) yield key;
      continue;
    }
    // Every key under directory `d/` sorts before startAfter when `d/` does and is not its prefix.
    const below = `${key}/`;
    if (startAfter !== undefined && compareKeys(below, startAfter) < 0 && !startAfter.startsWith(below))
      continue;
    yield* keysUnder(join(directory, entry.name), below, '', startAfter);
  }
}

interface Entry {
  readonly name: string;
  readonly segment: string;
  readonly isDirectory: boolean;
  /** What the entry's keys start with: the segment, and a slash for a directory. */
  readonly sortKey: string;
}

/**
 * A directory's entries whose key segment starts with `namePrefix`, in key order. A directory sorts
 * as `segment/`: key `a.c` comes before the keys under `a/` ('.' < '/'), key `a` before all of them.
 */
async function entries(directory: string, namePrefix: string): Promise<Entry[]> {
  let dirents;
  try {
    dirents = await readdir(directory, { withFileTypes: true });
  } catch (error) {
    // Missing: no key has this prefix, or a delete removed the emptied directory meanwhile.
    if (hasCode(error, 'ENOENT', 'ENOTDIR')) return [];
    throw error;
  }
  const found: Entry[] = [];
  for (const dirent of dirents) {
    const isDirectory = dirent.isDirectory();
    if (!isDirectory && !dirent.isFile()) continue;
    const segment = entrySegment(dirent.name, isDirectory);
    if (segment === undefined || !segment.startsWith(namePrefix)) continue;
    found.push({ name: dirent.name, segment, isDirectory, sortKey: isDirectory ? `${segment}/` : segment });
  }
  return found.sort((a, b) => compareKeys(a.sortKey, b.sortKey));
}
