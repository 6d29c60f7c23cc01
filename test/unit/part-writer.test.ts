import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PartWriter } from '../../lib/registry/part-writer.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { S3_LIMITS } from '../../lib/storage/port.ts';

const MiB = 1024 * 1024;
const MIN = S3_LIMITS.minPartSize;
const PART = 8 * MiB;

/**
 * A store that writes parts as they arrive and records how each part was ended: `durable` when it
 * was synced (a sink ended durably, or a part uploaded in one piece, which always is), `lazy` when a
 * later part of the same request syncs it.
 */
function recordingStore() {
  const storage = new MemoryDriver({ streaming: true });
  const ends: string[] = [];
  const multipart = storage.multipart;
  const openPart = multipart.openPart!.bind(multipart);
  multipart.openPart = async (key, uploadId, n) => {
    const sink = await openPart(key, uploadId, n);
    return {
      write: (chunk) => sink.write(chunk),
      abort: () => sink.abort(),
      end: async (options) => {
        const part = await sink.end(options);
        ends.push(`${n}:${options?.durable === false ? 'lazy' : 'durable'}:${part.size / MiB}`);
        return part;
      },
    };
  };
  const uploadPart = multipart.uploadPart.bind(multipart);
  multipart.uploadPart = async (key, uploadId, n, body, size) => {
    const part = await uploadPart(key, uploadId, n, body, size);
    ends.push(`${n}:durable:${size / MiB}`);
    return part;
  };
  return { storage, ends };
}

/** One request of `size` bytes in 1 MiB chunks (plus a remainder), ended as a PATCH is. */
async function request(size: number) {
  const { storage, ends } = recordingStore();
  const writer = new PartWriter(storage, 'data/x', PART, [], undefined, async () => {});
  const chunk = new Uint8Array(MiB);
  for (let sent = 0; sent < size; sent += MiB)
    await writer.write(chunk.subarray(0, Math.min(MiB, size - sent)));
  await writer.endRequest();
  return { ends: ends.sort(), tail: writer.buffered / MiB, parts: writer.parts.map((p) => p.size / MiB) };
}

describe('PartWriter on a store that takes parts as they arrive', () => {
  it('syncs once per request: only the last part it writes is ended durably', async () => {
    expect(await request(3 * PART + 6 * MiB)).toEqual({
      ends: ['1:lazy:8', '2:lazy:8', '3:lazy:8', '4:durable:6'],
      tail: 0,
      parts: [8, 8, 8, 6],
    });
  });

  it('a full part followed by fewer than minPartSize bytes is the last part, so it is synced, and the rest waits as the tail', async () => {
    expect(await request(2 * PART + 3 * MiB)).toEqual({
      ends: ['1:lazy:8', '2:durable:8'],
      tail: 3,
      parts: [8, 8],
    });
  });

  it('fewer than minPartSize bytes make no part at all', async () => {
    expect(MIN).toBeGreaterThan(4 * MiB);
    expect(await request(4 * MiB)).toEqual({ ends: [], tail: 4, parts: [] });
  });

  it('the last part of a completed upload takes what is left, whatever its size', async () => {
    const { storage, ends } = recordingStore();
    const writer = new PartWriter(storage, 'data/x', PART, [], undefined, async () => {});
    for (let i = 0; i < 10; i++) await writer.write(new Uint8Array(MiB));
    await writer.flushAll();
    expect(ends.sort()).toEqual(['1:durable:8', '2:durable:2']);
    expect(writer.parts.map((p) => p.size / MiB)).toEqual([8, 2]);
  });

  it('a part that fails in the background fails a later write of the request, and abandoning settles it', async () => {
    const { storage } = recordingStore();
    const multipart = storage.multipart;
    const openPart = multipart.openPart!.bind(multipart);
    multipart.openPart = async (key, uploadId, n) => {
      const sink = await openPart(key, uploadId, n);
      return { ...sink, end: async () => Promise.reject(new Error(`part ${n} failed`)) };
    };
    const writer = new PartWriter(storage, 'data/x', PART, [], undefined, async () => {});
    const write = async () => {
      for (let i = 0; i < 4 * PART; i += MiB) await writer.write(new Uint8Array(MiB));
    };
    await expect(write()).rejects.toThrow('part 1 failed');
    await writer.abandon();
    expect(writer.parts).toEqual([]);
  });
});

/**
 * A store that writes objects as they arrive (openObject, the filesystem's way), logging what its
 * object sinks are given and when: `w:<key>:<MiB so far>`, `end:<key>`, `abort:<key>`.
 */
function streamingStore() {
  const { storage, ends } = recordingStore();
  const log: string[] = [];
  const openObject = storage.openObject!.bind(storage);
  storage.openObject = async (key, options) => {
    const sink = await openObject(key, options);
    let written = 0;
    return {
      write: async (chunk) => {
        written += chunk.byteLength;
        log.push(`w:${key}:${written / MiB}`);
        return sink.write(chunk);
      },
      end: async () => {
        log.push(`end:${key}`);
        return sink.end();
      },
      abort: async () => {
        log.push(`abort:${key}`);
        return sink.abort();
      },
    };
  };
  return { storage, ends, log };
}

describe('PartWriter: the tail of a request, on a store that takes objects as they arrive', () => {
  it('writes the bytes of a small request into the tail object as each arrives, not after the last', async () => {
    const { storage, log } = streamingStore();
    const writer = new PartWriter(storage, 'data/x', PART, [], undefined, async () => {});
    writer.streamTail('data/x.tail-1');
    const body = randomBytes(4 * MiB);
    for (let at = 0; at < body.length; at += MiB) {
      await writer.write(body.subarray(at, at + MiB));
      // Each chunk has reached the object before the next one comes.
      expect(log.at(-1)).toBe(`w:data/x.tail-1:${at / MiB + 1}`);
    }
    await writer.endRequest();
    expect(writer.buffered).toBe(4 * MiB);
    const chunks = await writer.storeTail();
    expect(log.at(-1)).toBe('end:data/x.tail-1');
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
    expect(Buffer.from((await storage.get('data/x.tail-1'))!.body).equals(body)).toBe(true);
    expect(writer.buffered).toBe(0);
  });

  it('puts an earlier tail first, and a request that makes a part gives its tail object up', async () => {
    const { storage, log } = streamingStore();
    const writer = new PartWriter(storage, 'data/x', PART, [], undefined, async () => {});
    writer.streamTail('data/x.tail-2');
    // An earlier tail of 3 MiB, then 4 MiB more: over minPartSize, so a part is made, not a tail.
    for (let i = 0; i < 7; i++) await writer.write(new Uint8Array(MiB));
    expect(log).toEqual([
      'w:data/x.tail-2:1',
      'w:data/x.tail-2:2',
      'w:data/x.tail-2:3',
      'w:data/x.tail-2:4',
      'w:data/x.tail-2:5',
      'abort:data/x.tail-2',
    ]);
    await writer.endRequest();
    expect(writer.parts.map((p) => p.size / MiB)).toEqual([7]);
    expect(await storage.head('data/x.tail-2')).toBeUndefined();
  });

  it('a request whose length says it makes a part writes no tail object on the way', async () => {
    const { storage, log } = streamingStore();
    const writer = new PartWriter(storage, 'data/x', PART, [], undefined, async () => {});
    writer.streamTail('data/x.tail-5', 7 * MiB);
    for (let i = 0; i < 7; i++) await writer.write(new Uint8Array(MiB));
    await writer.endRequest();
    expect(log).toEqual([]);
    expect(writer.parts.map((p) => p.size / MiB)).toEqual([7]);
  });

  it('a request that fails leaves no tail object', async () => {
    const { storage, log } = streamingStore();
    const writer = new PartWriter(storage, 'data/x', PART, [], undefined, async () => {});
    writer.streamTail('data/x.tail-3');
    await writer.write(new Uint8Array(MiB));
    await writer.abandon();
    expect(log).toEqual(['w:data/x.tail-3:1', 'abort:data/x.tail-3']);
    expect(await storage.head('data/x.tail-3')).toBeUndefined();
  });

  it('on a store without it (S3), the tail is written whole at the end', async () => {
    const storage = new MemoryDriver();
    const puts: string[] = [];
    const put = storage.put.bind(storage);
    storage.put = async (key, body, options) => {
      puts.push(key);
      return put(key, body, options);
    };
    const writer = new PartWriter(storage, 'data/x', PART, [], undefined, async () => {});
    writer.streamTail('data/x.tail-4');
    for (let i = 0; i < 3; i++) await writer.write(new Uint8Array(MiB).fill(i));
    await writer.endRequest();
    expect(puts).toEqual([]);
    await writer.storeTail();
    expect(puts).toEqual(['data/x.tail-4']);
    expect((await storage.head('data/x.tail-4'))?.size).toBe(3 * MiB);
  });
});
