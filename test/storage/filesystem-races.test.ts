import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { FilesystemDriver } from '../../lib/storage/filesystem/index.ts';

// The real fs, with rename and link spied on so that a test can slip a concurrent change in first.
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return { ...actual, rename: vi.fn(actual.rename), link: vi.fn(actual.link) };
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
