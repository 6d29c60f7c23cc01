import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { FilesystemDriver } from '../../lib/storage/filesystem/index.ts';

// The real fs, with rename and link spied on so that a test can slip a concurrent change in first.
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return { ...actual, rename: vi.fn(actual.rename), link: vi.fn(actual.link), mkdir: vi.fn(actual.mkdir) };
});

let root: string;
let store: FilesystemDriver;

beforeEach(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'berth-fs-'));
  store = new FilesystemDriver({ root });
});
afterEach(async () => {
  vi.mocked(fs.rename).mockReset();
  vi.mocked(fs.link).mockReset();
  vi.mocked(fs.mkdir).mockReset();
  await fs.rm(root, { recursive: true, force: true });
});

/**
 * Before the next call of `step`, removes the (empty) directory it is about to write into, as a
 * delete of the last other key in that directory would.
 */
function removeParentBefore(step: typeof fs.rename | typeof fs.link): void {
  const actual = vi.mocked(step).getMockImplementation();
  vi.mocked(step).mockImplementationOnce(async (source, dest) => {
    await fs.rmdir(dirname(String(dest)));
    return actual?.(source, dest);
  });
}

it('puts into a directory that a concurrent delete removed after it was made', async () => {
  removeParentBefore(fs.rename);
  await store.put('a/b/c', Buffer.from('x'));
  expect((await store.get('a/b/c'))?.body.toString()).toBe('x');
});

it('creates (ifNoneMatch) into a directory that a concurrent delete removed after it was made', async () => {
  removeParentBefore(fs.link);
  await store.put('a/b/c', Buffer.from('x'), { ifNoneMatch: '*' });
  expect((await store.get('a/b/c'))?.body.toString()).toBe('x');
});

it('puts when the directory vanishes while mkdir checks it (mkdir -p fails with ENOENT)', async () => {
  // What a recursive mkdir does when it finds the directory existing and a delete removes it before
  // it has checked it: ENOENT from mkdir itself. Seen as 500s under create/delete churn.
  const actual = vi.mocked(fs.mkdir).getMockImplementation()!;
  let thrown = 0;
  vi.mocked(fs.mkdir).mockImplementation(async (path, options) => {
    if (String(path).includes('objects') && thrown++ === 0) {
      throw Object.assign(new Error(`ENOENT: no such file or directory, mkdir '${String(path)}'`), {
        code: 'ENOENT',
        syscall: 'mkdir',
      });
    }
    return actual(path, options);
  });
  await store.put('a/b/c', Buffer.from('x'));
  expect((await store.get('a/b/c'))?.body.toString()).toBe('x');
  expect(thrown).toBe(2); // the failed mkdir, and the retry that went through
});

it('keeps writing under create/delete churn in one directory: no write fails', async () => {
  // Four writers each create and delete their own keys in one directory; each delete of the last key
  // removes the directory while the others create theirs (the upload sessions' uploads/ directory).
  const failures: string[] = [];
  await Promise.all(
    [1, 2, 3, 4].map(async (w) => {
      for (let i = 0; i < 150; i++) {
        const key = `uploads/${w}-${i}.json`;
        try {
          await store.put(key, Buffer.from('{}'), i % 2 ? { ifNoneMatch: '*' } : {});
          await store.delete(key);
        } catch (err) {
          failures.push(String(err));
        }
      }
    }),
  );
  expect(failures).toEqual([]);
  expect((await store.list('uploads/')).keys).toEqual([]);
});
