import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ChecksumMismatch,
  NoSuchUpload,
  PreconditionFailed,
  S3_LIMITS,
  type PartInfo,
  type StorageDriver,
} from '../../lib/storage/port.ts';

export type DriverFactory = () => Promise<{ driver: StorageDriver; cleanup: () => Promise<void> }>;

const MiB = 1024 * 1024;
const PART = S3_LIMITS.minPartSize;

/**
 * The one suite every storage driver passes: what the registry relies on, written against the port
 * only. Each test gets a fresh, empty store from `makeDriver`.
 */
export function runStorageContract(name: string, makeDriver: DriverFactory): void {
  describe(`storage contract: ${name}`, () => {
    let store: StorageDriver;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ driver: store, cleanup } = await makeDriver());
    });
    afterEach(async () => {
      await cleanup();
    });

    describe('objects', () => {
      it('round-trips body, content type and metadata through put, head and get', async () => {
        const body = text('{"schemaVersion":2}');
        const options = {
          contentType: 'application/vnd.oci.image.manifest.v1+json',
          metadata: { digest: 'sha256:ab' },
        };
        const put = await store.put('repos/a/_manifests/sha256/ab', body, options);
        expect(put).toMatchObject({ key: 'repos/a/_manifests/sha256/ab', size: body.length, ...options });
        expect(put.etag).not.toBe('');

        const head = await store.head('repos/a/_manifests/sha256/ab');
        expect(head).toMatchObject({ size: body.length, etag: put.etag, ...options });
        expect(head?.lastModified).toBeInstanceOf(Date);
        expect(head?.lastModified.getTime()).not.toBeNaN();

        const got = await store.get('repos/a/_manifests/sha256/ab');
        expect(got).toMatchObject({ size: body.length, etag: put.etag, ...options });
        expect(bytes(got?.body)).toEqual(bytes(body));
      });

      it('stores an empty object', async () => {
        await store.put('empty', new Uint8Array(0));
        expect((await store.head('empty'))?.size).toBe(0);
        expect((await store.get('empty'))?.body.length).toBe(0);
        const stream = await store.getStream('empty');
        expect((await readAll(stream?.body)).length).toBe(0);
      });

      it('answers undefined for a key that does not exist', async () => {
        await store.put('a/b', text('x'));
        for (const key of ['missing', 'a', 'a/b/c', 'a/bb']) {
          expect(await store.head(key)).toBeUndefined();
          expect(await store.get(key)).toBeUndefined();
          expect(await store.getStream(key)).toBeUndefined();
        }
      });

      it('keeps keys that are prefixes of each other apart', async () => {
        await store.put('a', text('1'));
        await store.put('a/b', text('2'));
        await store.put('a/b/c', text('3'));
        expect(bytes((await store.get('a'))?.body).toString()).toBe('1');
        expect(bytes((await store.get('a/b'))?.body).toString()).toBe('2');
        expect(bytes((await store.get('a/b/c'))?.body).toString()).toBe('3');
      });

      it('replaces an object on overwrite, with a new etag, content type and metadata', async () => {
        const first = await store.put('k', text('one'), { contentType: 'text/plain', metadata: { n: '1' } });
        const second = await store.put('k', text('two!'), { contentType: 'text/csv', metadata: { m: '2' } });
        expect(second.etag).not.toBe(first.etag);
        const head = await store.head('k');
        expect(head).toMatchObject({
          size: 4,
          etag: second.etag,
          contentType: 'text/csv',
          metadata: { m: '2' },
        });
        expect(head?.metadata).not.toHaveProperty('n');
        expect(bytes((await store.get('k'))?.body).toString()).toBe('two!');
      });

      it('streams a multi-MiB body into an object', async () => {
        const { stream, digest, size } = generated(6 * MiB + 123, 64 * 1024 + 7);
        const info = await store.put('big', stream, { contentType: 'application/octet-stream' });
        expect(info.size).toBe(size);
        expect((await store.head('big'))?.size).toBe(size);
        expect(sha256(await readAll((await store.getStream('big'))?.body))).toBe(digest());
      });

      it('deletes objects, and deleting a missing key is not an error', async () => {
        await store.put('d/x', text('x'));
        await store.put('d/y', text('y'));
        await store.delete('d/x');
        expect(await store.head('d/x')).toBeUndefined();
        expect(await store.head('d/y')).toBeDefined();
        await store.delete('d/x');
        await store.delete('never/was');
        await store.delete('d/y');
        expect(await store.list('d/')).toEqual({ keys: [], truncated: false });
        await store.put('d/z', text('z'));
        expect(bytes((await store.get('d/z'))?.body).toString()).toBe('z');
      });
    });

    describe('conditional writes', () => {
      it('ifNoneMatch * creates a missing object and refuses to replace one', async () => {
        const created = await store.put('c', text('first'), { ifNoneMatch: '*' });
        await expect(store.put('c', text('second'), { ifNoneMatch: '*' })).rejects.toBeInstanceOf(
          PreconditionFailed,
        );
        expect((await store.head('c'))?.etag).toBe(created.etag);
        expect(bytes((await store.get('c'))?.body).toString()).toBe('first');
      });

      it('lets exactly one of many concurrent ifNoneMatch * writers win', async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 12 }, (_, i) => store.put('race', text(`writer ${i}`), { ifNoneMatch: '*' })),
        );
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, info: r.value }] : []));
        expect(winners).toHaveLength(1);
        for (const r of results)
          if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(PreconditionFailed);
        const stored = await store.get('race');
        expect(stored?.etag).toBe(winners[0]?.info.etag);
        expect(bytes(stored?.body).toString()).toBe(`writer ${winners[0]?.i}`);
      });

      it('ifMatch writes over the current etag only', async () => {
        const first = await store.put('m', text('v1'));
        const second = await store.put('m', text('v2'), { ifMatch: first.etag });
        expect(second.etag).not.toBe(first.etag);
        await expect(store.put('m', text('v3'), { ifMatch: first.etag })).rejects.toBeInstanceOf(
          PreconditionFailed,
        );
        expect((await store.head('m'))?.etag).toBe(second.etag);
        expect(bytes((await store.get('m'))?.body).toString()).toBe('v2');
      });

      it('ifMatch refuses to write when the object does not exist', async () => {
        const gone = await store.put('m', text('v1'));
        await store.delete('m');
        await expect(store.put('m', text('v2'), { ifMatch: gone.etag })).rejects.toBeInstanceOf(
          PreconditionFailed,
        );
        expect(await store.head('m')).toBeUndefined();
      });

      it('lets exactly one of many concurrent ifMatch writers win', async () => {
        const base = await store.put('session', text('state 0'));
        const results = await Promise.allSettled(
          Array.from({ length: 12 }, (_, i) =>
            store.put('session', text(`state ${i + 1}`), { ifMatch: base.etag }),
          ),
        );
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, info: r.value }] : []));
        expect(winners).toHaveLength(1);
        for (const r of results)
          if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(PreconditionFailed);
        const stored = await store.get('session');
        expect(stored?.etag).toBe(winners[0]?.info.etag);
        expect(bytes(stored?.body).toString()).toBe(`state ${(winners[0]?.i ?? 0) + 1}`);
      });
    });

    describe('objects written as they arrive (openObject), where the store offers it', () => {
      const open = (key: string, options?: Parameters<NonNullable<StorageDriver['openObject']>>[1]) => {
        if (!store.openObject) throw new Error('no openObject');
        return store.openObject(key, options);
      };
      const skipWithout = (ctx: { skip: () => void }) => {
        // S3 takes a whole object in one request: a streamed write would cost what put does.
        if (!store.openObject) ctx.skip();
      };

      it('shows nothing until end, then the object put would have made, from many chunks', async (ctx) => {
        skipWithout(ctx);
        const body = randomBytes(3 * MiB + 12_345);
        const options = { contentType: 'application/octet-stream', metadata: { upload: 'u1' } };
        const sink = await open('data/u1.tail', options);
        for (let at = 0; at < body.length; at += 65_536) {
          await sink.write(body.subarray(at, at + 65_536));
          if (at === 65_536) expect(await store.head('data/u1.tail')).toBeUndefined();
        }
        expect(await store.head('data/u1.tail')).toBeUndefined();
        const info = await sink.end();
        expect(info).toMatchObject({ key: 'data/u1.tail', size: body.length, ...options });
        const got = await store.get('data/u1.tail');
        expect(got).toMatchObject({ size: body.length, etag: info.etag, ...options });
        expectBytes(bytes(got?.body), body);
        expect((await store.listTemporary?.()) ?? []).toEqual([]);
      });

      it('leaves nothing, not even a temporary file, when aborted', async (ctx) => {
        skipWithout(ctx);
        const sink = await open('data/u2.tail');
        await sink.write(randomBytes(2 * MiB));
        await sink.abort();
        await expect(sink.write(text('more'))).rejects.toThrow();
        expect(await store.head('data/u2.tail')).toBeUndefined();
        expect((await store.list('data/')).keys).toEqual([]);
        expect((await store.listTemporary?.()) ?? []).toEqual([]);
      });

      it('keeps the conditions of put: ifNoneMatch and ifMatch refuse, and the object stays', async (ctx) => {
        skipWithout(ctx);
        const first = await store.put('c', text('first'));
        const refused = await open('c', { ifNoneMatch: '*' });
        await refused.write(text('second'));
        await expect(refused.end()).rejects.toBeInstanceOf(PreconditionFailed);
        const stale = await open('c', { ifMatch: 'not-the-etag' });
        await stale.write(text('third'));
        await expect(stale.end()).rejects.toBeInstanceOf(PreconditionFailed);
        expect((await store.head('c'))?.etag).toBe(first.etag);
        expect(bytes((await store.get('c'))?.body).toString()).toBe('first');
        const matching = await open('c', { ifMatch: first.etag });
        await matching.write(text('fourth'));
        expect((await matching.end()).etag).not.toBe(first.etag);
        expect(bytes((await store.get('c'))?.body).toString()).toBe('fourth');
        expect((await store.listTemporary?.()) ?? []).toEqual([]);
      });
    });

    describe('checksums', () => {
      it('accepts a body whose sha256 matches', async () => {
        const body = text('checked');
        await store.put('sum', body, { sha256Base64: sha256Base64(body) });
        expect(bytes((await store.get('sum'))?.body).toString()).toBe('checked');
      });

      it('refuses a body whose sha256 differs and leaves nothing', async () => {
        await expect(
          store.put('sum', text('actual'), { sha256Base64: sha256Base64(text('promised')) }),
        ).rejects.toBeInstanceOf(ChecksumMismatch);
        expect(await store.head('sum')).toBeUndefined();
        expect((await store.list('')).keys).toEqual([]);
      });

      it('refuses a streamed body whose sha256 differs and keeps the previous object', async () => {
        const previous = await store.put('sum', text('previous'));
        const { stream } = generated(2 * MiB, 100_000);
        await expect(
          store.put('sum', stream, { sha256Base64: sha256Base64(text('other')) }),
        ).rejects.toBeInstanceOf(ChecksumMismatch);
        expect((await store.head('sum'))?.etag).toBe(previous.etag);
        expect(bytes((await store.get('sum'))?.body).toString()).toBe('previous');
      });
    });

    describe('ranged streams', () => {
      const body = randomBytes(100_000);

      beforeEach(async () => {
        await store.put('blob', body, {
          contentType: 'application/octet-stream',
          metadata: { digest: 'sha256:x' },
        });
      });

      it('streams a whole object with its info and no range', async () => {
        const stream = await store.getStream('blob');
        expect(stream).toMatchObject({ size: body.length, contentType: 'application/octet-stream' });
        expect(stream?.metadata).toEqual({ digest: 'sha256:x' });
        expect(stream?.range).toBeUndefined();
        expectBytes(await readAll(stream?.body), body);
      });

      it.each([
        ['the first byte', 0, 0],
        ['the last byte', 99_999, 99_999],
        ['a middle slice', 1_000, 64_999],
        ['the whole object', 0, 99_999],
      ])('streams %s', async (_, start, end) => {
        const stream = await store.getStream('blob', { start, end });
        // size stays the whole object's: it is what a Content-Range header needs after the slash.
        expect(stream).toMatchObject({ size: body.length, range: { start, end } });
        expectBytes(await readAll(stream?.body), body.subarray(start, end + 1));
      });

      it('clamps a range that ends beyond the object', async () => {
        const stream = await store.getStream('blob', { start: 99_990, end: 10_000_000 });
        expect(stream?.range).toEqual({ start: 99_990, end: 99_999 });
        expectBytes(await readAll(stream?.body), body.subarray(99_990));
      });
    });

    describe('list', () => {
      // In byte order: '-' 0x2d < '.' 0x2e < '/' 0x2f < '0' 0x30 < 'b' 0x62. No key is another key
      // plus '/...': MinIO hides such keys from listings, and the registry's layout never makes them.
      const ordered = ['a-d', 'a.c', 'a/b', 'a/bc', 'a/c/d', 'a0', 'ab', 'b'];

      beforeEach(async () => {
        for (const key of [...ordered].reverse()) await store.put(key, text(key));
      });

      it('lists every key, recursively, in byte order', async () => {
        expect(await store.list('')).toEqual({ keys: ordered, truncated: false });
      });

      it('lists the keys under a prefix, including one equal to it', async () => {
        expect((await store.list('a/')).keys).toEqual(['a/b', 'a/bc', 'a/c/d']);
        expect((await store.list('a/b')).keys).toEqual(['a/b', 'a/bc']);
        expect((await store.list('a')).keys).toEqual(ordered.slice(0, 7));
      });

      it('lists a prefix that ends inside a segment', async () => {
        for (const key of [
          'catalog/ab',
          'catalog/abc',
          'catalog/abd/x',
          'catalog/a',
          'catalog/b',
          'catalogx',
        ]) {
          await store.put(key, text(key));
        }
        expect((await store.list('catalog/ab')).keys).toEqual(['catalog/ab', 'catalog/abc', 'catalog/abd/x']);
        expect((await store.list('catalog/')).keys).toHaveLength(5);
      });

      it('answers an empty page for a prefix nothing has', async () => {
        for (const prefix of ['c', 'a/d', 'a/c/d/', 'zz/']) {
          expect(await store.list(prefix)).toEqual({ keys: [], truncated: false });
        }
      });

      it('starts after a given key, present or not', async () => {
        for (const [i, key] of ordered.entries()) {
          expect((await store.list('', { startAfter: key })).keys).toEqual(ordered.slice(i + 1));
        }
        expect((await store.list('', { startAfter: 'a/a' })).keys).toEqual([
          'a/b',
          'a/bc',
          'a/c/d',
          'a0',
          'ab',
          'b',
        ]);
        expect((await store.list('', { startAfter: 'a/b/' })).keys).toEqual([
          'a/bc',
          'a/c/d',
          'a0',
          'ab',
          'b',
        ]);
        expect((await store.list('', { startAfter: 'a/z' })).keys).toEqual(['a0', 'ab', 'b']);
        expect((await store.list('a/', { startAfter: 'a/b' })).keys).toEqual(['a/bc', 'a/c/d']);
        expect(await store.list('', { startAfter: 'c' })).toEqual({ keys: [], truncated: false });
      });

      it('pages with limit, truncated while keys remain', async () => {
        const pages = [];
        let startAfter: string | undefined;
        for (;;) {
          const page = await store.list('', { limit: 3, ...(startAfter !== undefined && { startAfter }) });
          pages.push(page);
          if (!page.truncated) break;
          startAfter = page.keys.at(-1);
        }
        expect(pages).toEqual([
          { keys: ordered.slice(0, 3), truncated: true },
          { keys: ordered.slice(3, 6), truncated: true },
          { keys: ordered.slice(6), truncated: false },
        ]);
        expect(await store.list('', { limit: 8 })).toEqual({ keys: ordered, truncated: false });
        expect(await store.list('a/', { limit: 1 })).toEqual({ keys: ['a/b'], truncated: true });
      });

      it('orders keys by their UTF-8 bytes, not JS string order', async () => {
        // U+FF21 is EF BC A1 in UTF-8 and U+1F600 is F0 9F 98 80, but the latter's UTF-16 comes first.
        for (const key of ['u/\u{1F600}', 'u/\uFF21', 'u/\u00E9', 'u/z']) await store.put(key, text(key));
        expect((await store.list('u/')).keys).toEqual(['u/z', 'u/\u00E9', 'u/\uFF21', 'u/\u{1F600}']);
      });

      it('stops listing deleted keys', async () => {
        await store.delete('a/c/d');
        await store.delete('a/bc');
        await store.delete('a/b');
        expect((await store.list('')).keys).toEqual(['a-d', 'a.c', 'a0', 'ab', 'b']);
        expect(await store.list('a/')).toEqual({ keys: [], truncated: false });
      });
    });

    describe('multipart uploads', () => {
      it('has S3 limits', () => {
        expect(store.multipart).toMatchObject(S3_LIMITS);
      });

      it('assembles parts of minPartSize and a small last part', async () => {
        const chunks = [randomBytes(PART), randomBytes(PART), randomBytes(1234)];
        const options = {
          contentType: 'application/vnd.oci.image.layer.v1.tar',
          metadata: { 'blob-size': '1' },
        };
        const id = await store.multipart.create('data/u1', options);
        const parts: PartInfo[] = [];
        for (const [i, chunk] of chunks.entries()) {
          const part = await store.multipart.uploadPart('data/u1', id, i + 1, chunk, chunk.length);
          expect(part).toMatchObject({ partNumber: i + 1, size: chunk.length });
          parts.push(part);
        }
        const info = await store.multipart.complete('data/u1', id, parts);
        const whole = Buffer.concat(chunks);
        expect(info).toMatchObject({ key: 'data/u1', size: whole.length, ...options });
        expect(await store.head('data/u1')).toMatchObject({
          size: whole.length,
          etag: info.etag,
          ...options,
        });
        expectBytes(await readAll((await store.getStream('data/u1'))?.body), whole);
        expectBytes(bytes((await store.get('data/u1'))?.body), whole);
        const seam = await store.getStream('data/u1', { start: PART - 1, end: PART });
        expectBytes(await readAll(seam?.body), whole.subarray(PART - 1, PART + 1));
        expect((await store.list('data/')).keys).toEqual(['data/u1']);
      });

      it('takes a single part smaller than minPartSize', async () => {
        const id = await store.multipart.create('data/small');
        const part = await store.multipart.uploadPart('data/small', id, 1, text('tiny'), 4);
        await store.multipart.complete('data/small', id, [part]);
        expect(bytes((await store.get('data/small'))?.body).toString()).toBe('tiny');
      });

      it('takes parts as streams', async () => {
        const id = await store.multipart.create('data/streamed');
        const first = generated(PART, 100_000 + 3);
        const last = generated(1000, 300);
        const parts = [
          await store.multipart.uploadPart('data/streamed', id, 1, first.stream, PART),
          await store.multipart.uploadPart('data/streamed', id, 2, last.stream, 1000),
        ];
        const info = await store.multipart.complete('data/streamed', id, parts);
        expect(info.size).toBe(PART + 1000);
        const whole = await readAll((await store.getStream('data/streamed'))?.body);
        expect(sha256(whole.subarray(0, PART))).toBe(first.digest());
        expect(sha256(whole.subarray(PART))).toBe(last.digest());
      });

      it('refuses a stream part whose length is not the size given', async () => {
        const id = await store.multipart.create('data/sized');
        await expect(
          store.multipart.uploadPart('data/sized', id, 1, generated(99, 10).stream, 100),
        ).rejects.toThrow();
        await expect(
          store.multipart.uploadPart('data/sized', id, 1, generated(101, 10).stream, 100),
        ).rejects.toThrow();
        const part = await store.multipart.uploadPart('data/sized', id, 1, generated(100, 10).stream, 100);
        expect((await store.multipart.complete('data/sized', id, [part])).size).toBe(100);
      });

      it('replaces a part uploaded again, and refuses the replaced one', async () => {
        const first = randomBytes(PART);
        const id = await store.multipart.create('data/again');
        const one = await store.multipart.uploadPart('data/again', id, 1, first, PART);
        const stale = await store.multipart.uploadPart('data/again', id, 2, text('old tail'), 8);
        const fresh = await store.multipart.uploadPart('data/again', id, 2, text('new tail!'), 9);
        await expect(store.multipart.complete('data/again', id, [one, stale])).rejects.toThrow();
        await store.multipart.complete('data/again', id, [one, fresh]);
        const stored = await store.get('data/again');
        expectBytes(bytes(stored?.body), Buffer.concat([first, text('new tail!')]));
      });

      it('refuses at completion a part smaller than minPartSize that is not the last', async () => {
        const id = await store.multipart.create('data/tiny');
        const parts = [
          await store.multipart.uploadPart('data/tiny', id, 1, text('too small'), 9),
          await store.multipart.uploadPart('data/tiny', id, 2, text('last'), 4),
        ];
        await expect(store.multipart.complete('data/tiny', id, parts)).rejects.toThrow();
        expect(await store.head('data/tiny')).toBeUndefined();
        await store.multipart.abort('data/tiny', id);
      });

      it('refuses a completion with a wrong etag', async () => {
        const id = await store.multipart.create('data/etag');
        const part = await store.multipart.uploadPart('data/etag', id, 1, text('bytes'), 5);
        await expect(
          store.multipart.complete('data/etag', id, [{ ...part, etag: 'not-the-etag' }]),
        ).rejects.toThrow();
        expect(await store.head('data/etag')).toBeUndefined();
        await store.multipart.complete('data/etag', id, [part]);
        expect(bytes((await store.get('data/etag'))?.body).toString()).toBe('bytes');
      });

      it('shows nothing until completion', async () => {
        const id = await store.multipart.create('data/atomic');
        const parts = [
          await store.multipart.uploadPart('data/atomic', id, 1, randomBytes(PART), PART),
          await store.multipart.uploadPart('data/atomic', id, 2, text('end'), 3),
        ];
        expect(await store.head('data/atomic')).toBeUndefined();
        expect(await store.getStream('data/atomic')).toBeUndefined();
        expect(await store.list('')).toEqual({ keys: [], truncated: false });
        await store.multipart.complete('data/atomic', id, parts);
        expect((await store.head('data/atomic'))?.size).toBe(PART + 3);
      });

      it('forgets an aborted upload', async () => {
        const id = await store.multipart.create('data/aborted');
        const part = await store.multipart.uploadPart('data/aborted', id, 1, text('x'), 1);
        await store.multipart.abort('data/aborted', id);
        await expect(store.multipart.uploadPart('data/aborted', id, 1, text('y'), 1)).rejects.toBeInstanceOf(
          NoSuchUpload,
        );
        await expect(store.multipart.complete('data/aborted', id, [part])).rejects.toBeInstanceOf(
          NoSuchUpload,
        );
        await store.multipart.abort('data/aborted', id);
        expect(await store.head('data/aborted')).toBeUndefined();
      });

      it('forgets a completed upload', async () => {
        const id = await store.multipart.create('data/done');
        const part = await store.multipart.uploadPart('data/done', id, 1, text('x'), 1);
        await store.multipart.complete('data/done', id, [part]);
        await expect(store.multipart.uploadPart('data/done', id, 1, text('y'), 1)).rejects.toBeInstanceOf(
          NoSuchUpload,
        );
        await store.multipart.abort('data/done', id);
        expect(bytes((await store.get('data/done'))?.body).toString()).toBe('x');
      });

      describe('parts written as they arrive (openPart), where the store offers it', () => {
        const open = (key: string, id: string, n: number) => {
          if (!store.multipart.openPart) throw new Error('no openPart');
          return store.multipart.openPart(key, id, n);
        };

        it('assembles streamed parts, in many chunks, with a part uploaded whole after them', async (ctx) => {
          if (!store.multipart.openPart) return ctx.skip(); // S3 needs a part's length first
          const first = randomBytes(PART + 12_345);
          const second = randomBytes(PART);
          const last = text('the last few bytes');
          const id = await store.multipart.create('data/sunk');
          const parts: PartInfo[] = [];
          for (const [i, body] of [first, second].entries()) {
            const sink = await open('data/sunk', id, i + 1);
            for (let at = 0; at < body.length; at += 65_536) await sink.write(body.subarray(at, at + 65_536));
            const part = await sink.end({ durable: i === 1 });
            expect(part).toMatchObject({ partNumber: i + 1, size: body.length });
            parts.push(part);
          }
          parts.push(await store.multipart.uploadPart('data/sunk', id, 3, last, last.length));
          const info = await store.multipart.complete('data/sunk', id, parts);
          const whole = Buffer.concat([first, second, last]);
          expect(info.size).toBe(whole.length);
          expectBytes(await readAll((await store.getStream('data/sunk'))?.body), whole);
        });

        it('records nothing for an aborted part, and the next try of that part replaces its bytes', async (ctx) => {
          if (!store.multipart.openPart) return ctx.skip(); // S3 needs a part's length first
          const id = await store.multipart.create('data/retry');
          const given = await open('data/retry', id, 1);
          await given.write(randomBytes(PART + 99));
          await given.abort();
          await expect(given.write(text('x'))).rejects.toThrow();
          const body = randomBytes(100);
          const sink = await open('data/retry', id, 1);
          await sink.write(body);
          const part = await sink.end();
          await store.multipart.complete('data/retry', id, [part]);
          expectBytes(bytes((await store.get('data/retry'))?.body), body);
        });

        it('refuses a part whose predecessor is missing, and ends with NoSuchUpload once the upload is aborted', async (ctx) => {
          if (!store.multipart.openPart) return ctx.skip(); // S3 needs a part's length first
          const id = await store.multipart.create('data/gone');
          await expect(open('data/gone', id, 2)).rejects.toThrow();
          const sink = await open('data/gone', id, 1);
          await sink.write(randomBytes(1000));
          await store.multipart.abort('data/gone', id);
          await expect(sink.end()).rejects.toBeInstanceOf(NoSuchUpload);
          await expect(open('data/gone', id, 1)).rejects.toBeInstanceOf(NoSuchUpload);
          expect((await store.list('data/')).keys).toEqual([]);
        });
      });

      it('knows an upload only under its own key', async () => {
        const id = await store.multipart.create('data/mine');
        await expect(store.multipart.uploadPart('data/other', id, 1, text('x'), 1)).rejects.toBeInstanceOf(
          NoSuchUpload,
        );
        await store.multipart.abort('data/mine', id);
      });
    });
  });
}

function text(value: string): Buffer {
  return Buffer.from(value);
}

function bytes(value: Uint8Array | undefined): Buffer {
  if (!value) throw new Error('expected bytes, got undefined');
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** Compares bytes by length and digest: a deep equality over megabytes is slow and its diff useless. */
function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect({ size: actual.length, sha256: sha256(actual) }).toEqual({
    size: expected.length,
    sha256: sha256(expected),
  });
}

function sha256(value: Uint8Array): string {
  return createHash('sha256').update(value).digest('hex');
}

function sha256Base64(value: Uint8Array): string {
  return createHash('sha256').update(value).digest('base64');
}

async function readAll(stream: ReadableStream<Uint8Array> | undefined): Promise<Buffer> {
  if (!stream) throw new Error('expected a stream, got undefined');
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * A stream of `size` random bytes made as it is read, in chunks of `chunkSize`, and the sha256 of what
 * it produced (once read).
 */
function generated(
  size: number,
  chunkSize: number,
): { stream: ReadableStream<Uint8Array>; size: number; digest: () => string } {
  const hash = createHash('sha256');
  let left = size;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (left === 0) return controller.close();
      const chunk = randomBytes(Math.min(chunkSize, left));
      left -= chunk.length;
      hash.update(chunk);
      controller.enqueue(chunk);
    },
  });
  return { stream, size, digest: () => hash.copy().digest('hex') };
}
