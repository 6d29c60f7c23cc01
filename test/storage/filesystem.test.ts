import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FilesystemDriver } from '../../lib/storage/filesystem/index.ts';
import { ChecksumMismatch, NoSuchUpload, PreconditionFailed } from '../../lib/storage/port.ts';
import { runStorageContract } from './contract.ts';
import { runOrderedPartsSuite } from './ordered-parts.ts';

async function makeRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'berth-fs-'));
}

async function makeDriver() {
  const root = await makeRoot();
  return {
    driver: new FilesystemDriver({ root }),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

runStorageContract('filesystem', makeDriver);
runOrderedPartsSuite('filesystem', makeDriver);

describe('filesystem driver', () => {
  let root: string;
  let store: FilesystemDriver;

  beforeEach(async () => {
    root = await makeRoot();
    store = new FilesystemDriver({ root });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it.each(['', '/a', 'a/', 'a//b', '.', '..', '../x', 'a/../b', 'a/./b', 'a\\b', 'a\0b'])(
    'refuses the unsafe key %j',
    async (key) => {
      await expect(store.put(key, Buffer.from('x'))).rejects.toThrow(/unsafe storage key/);
      await expect(store.head(key)).rejects.toThrow(/unsafe storage key/);
      await expect(store.get(key)).rejects.toThrow(/unsafe storage key/);
      await expect(store.getStream(key)).rejects.toThrow(/unsafe storage key/);
      await expect(store.delete(key)).rejects.toThrow(/unsafe storage key/);
      await expect(store.multipart.create(key)).rejects.toThrow(/unsafe storage key/);
    },
  );

  it('keeps keys apart whose segments end like the files and directories that hold them', async () => {
    const keys = ['x', 'x.obj', 'x.obj/y', 'x.d', 'x.d/y', 'x/y', 'x/y.d/z'];
    for (const key of keys) await store.put(key, Buffer.from(key));
    for (const key of keys) expect((await store.get(key))?.body.toString()).toBe(key);
    expect((await store.list('')).keys).toEqual(['x', 'x.d', 'x.d/y', 'x.obj', 'x.obj/y', 'x/y', 'x/y.d/z']);
  });

  it('finds nothing for an upload id that is not one of its own', async () => {
    const id = await store.multipart.create('data/a');
    for (const other of ['../../objects', `${id}/..`, 'nope']) {
      await expect(
        store.multipart.uploadPart('data/a', other, 1, Buffer.from('x'), 1),
      ).rejects.toBeInstanceOf(NoSuchUpload);
    }
  });

  it('leaves no temporary file behind a refused write', async () => {
    await store.put('k', Buffer.from('v'));
    await expect(store.put('sum', Buffer.from('a'), { sha256Base64: 'AAAA' })).rejects.toBeInstanceOf(
      ChecksumMismatch,
    );
    await expect(store.put('k', Buffer.from('w'), { ifNoneMatch: '*' })).rejects.toBeInstanceOf(
      PreconditionFailed,
    );
    await expect(store.put('k', Buffer.from('w'), { ifMatch: 'stale' })).rejects.toBeInstanceOf(
      PreconditionFailed,
    );
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
  });

  it('keeps writing after its data directory was emptied under it (.tmp/ is made again)', async () => {
    await store.put('a', Buffer.from('x'));
    await rm(root, { recursive: true, force: true });
    await store.put('b', Buffer.from('y'));
    await store.put('c', new Blob(['z']).stream());
    const upload = await store.multipart.create('d');
    await store.multipart.abort('d', upload);
    expect((await store.get('b'))?.body.toString()).toBe('y');
    expect((await store.get('c'))?.body.toString()).toBe('z');
    expect(await store.cleanTemporary(0)).toEqual({ removed: 0, bytes: 0 });
  });

  it('writes the header of a whole body exactly, and a streamed one with room for any size', async () => {
    await store.put('whole', Buffer.from('abc'), { metadata: { m: '1' } });
    await store.put('streamed', new Blob(['abc']).stream(), { metadata: { m: '1' } });
    const whole = await stat(join(root, 'objects', 'whole.obj'));
    const streamed = await stat(join(root, 'objects', 'streamed.obj'));
    expect(whole.size).toBeLessThan(streamed.size);
    for (const key of ['whole', 'streamed']) {
      const got = await store.get(key);
      expect(got?.body.toString()).toBe('abc');
      expect(got).toMatchObject({ size: 3, metadata: { m: '1' } });
      const range = await store.getStream(key, { start: 1, end: 2 });
      expect(await new Response(range?.body).text()).toBe('bc');
    }
  });

  it('checks ifMatch against the file there now, also one replaced or removed behind its back', async () => {
    // Another driver on the same directory stands for what this one did not write: another process,
    // the process before a restart, a hand edit.
    const other = new FilesystemDriver({ root });
    const first = await store.put('k', Buffer.from('1'));
    const second = await store.put('k', Buffer.from('2'), { ifMatch: first.etag });
    await expect(store.put('k', Buffer.from('x'), { ifMatch: first.etag })).rejects.toBeInstanceOf(
      PreconditionFailed,
    );
    const replaced = await other.put('k', Buffer.from('3'));
    await expect(store.put('k', Buffer.from('x'), { ifMatch: second.etag })).rejects.toBeInstanceOf(
      PreconditionFailed,
    );
    const fourth = await store.put('k', Buffer.from('4'), { ifMatch: replaced.etag });
    await other.delete('k');
    await expect(store.put('k', Buffer.from('x'), { ifMatch: fourth.etag })).rejects.toBeInstanceOf(
      PreconditionFailed,
    );
    expect(await store.head('k')).toBeUndefined();
  });

  it('lists neither temporary files nor stray files', async () => {
    await store.put('a/b', Buffer.from('x'));
    await writeFile(join(root, '.tmp', 'leftover'), 'half written');
    await writeFile(join(root, 'objects', 'a.d', 'notes.txt'), 'not an object');
    await mkdir(join(root, 'objects', 'a.d', 'empty.d'));
    expect(await store.list('')).toEqual({ keys: ['a/b'], truncated: false });
  });

  it("removes the directories a delete empties but the first segment's, and puts into them again", async () => {
    await store.put('a/b/c/d', Buffer.from('x'));
    await store.put('a/e', Buffer.from('y'));
    await store.delete('a/b/c/d');
    expect(await readdir(join(root, 'objects', 'a.d'))).toEqual(['e.obj']);
    await store.delete('a/e');
    expect(await readdir(join(root, 'objects'))).toEqual(['a.d']);
    expect(await readdir(join(root, 'objects', 'a.d'))).toEqual([]);
    expect(await store.list('')).toEqual({ keys: [], truncated: false });
    await store.put('a/b/c', Buffer.from('z'));
    expect((await store.get('a/b/c'))?.body.toString()).toBe('z');
  });

  it('completes a multipart upload by renaming its file, without copying', async () => {
    const id = await store.multipart.create('data/big');
    const part = await store.multipart.uploadPart('data/big', id, 1, Buffer.alloc(1000, 1), 1000);
    const { ino } = await stat(join(root, 'multipart', id, 'data'));
    await store.multipart.complete('data/big', id, [part]);
    expect((await stat(join(root, 'objects', 'data.d', 'big.obj'))).ino).toBe(ino);
    expect(await readdir(join(root, 'multipart'))).toEqual([]);
  });
});
