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
  const storage = new MemoryDriver({ streamingParts: true });
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
