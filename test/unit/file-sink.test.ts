import type { FileHandle } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { FileSink } from '../../lib/storage/filesystem/file-sink.ts';

const MiB = 1024 * 1024;

/** A file that takes every write and logs writes and syncs; `failSync` makes the n-th sync fail. */
function fakeFile(failSync?: number) {
  const log: string[] = [];
  let syncs = 0;
  const handle = {
    writev: async (chunks: Uint8Array[], position: number) => {
      const bytes = chunks.reduce((n, c) => n + c.byteLength, 0);
      log.push(`write ${position / MiB}+${bytes / MiB}`);
      return { bytesWritten: bytes, buffers: chunks };
    },
    datasync: async () => {
      syncs++;
      log.push(`sync ${syncs}`);
      if (syncs === failSync) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    },
    close: async () => {
      log.push('close');
    },
  } as unknown as FileHandle;
  return { handle, log };
}

/** `n` MiB in writes of at most 1 MiB (one batch each). */
async function writeMiBs(sink: FileSink<number>, n: number) {
  for (let left = n * MiB; left > 0; left -= MiB) await sink.write(new Uint8Array(Math.min(MiB, left)));
}

describe('FileSink with syncAhead (an upload tail being written)', () => {
  it('starts the writeback of each batch as it is written, and syncs once more after the header at the end', async () => {
    const { handle, log } = fakeFile();
    const sink = new FileSink(handle, 0, async (size) => size, {
      seal: async () => {
        log.push('seal');
      },
      syncAhead: true,
    });
    await writeMiBs(sink, 2.5);
    expect(await sink.end()).toBe(2.5 * MiB);
    // The two full batches are synced ahead; the last one, written by the end, is covered by the
    // sync after the seal.
    expect(log.slice(0, 2)).toEqual(['write 0+1', 'sync 1']);
    expect(log.filter((l) => l.startsWith('sync')).length).toBe(3);
    expect(log.slice(-4)).toEqual(['write 2+0.5', 'seal', 'sync 3', 'close']);
  });

  it('fails the write when a sync started ahead failed, though a later sync would succeed', async () => {
    const { handle, log } = fakeFile(1);
    const sink = new FileSink(handle, 0, async (size) => size, { syncAhead: true });
    const writing = (async () => {
      await writeMiBs(sink, 3);
      return sink.end();
    })();
    await expect(writing).rejects.toThrow('EIO');
    await sink.abort();
    expect(log.at(-1)).toBe('close');
  });

  it('without it, syncs only at the end', async () => {
    const { handle, log } = fakeFile();
    const sink = new FileSink(handle, 0, async (size) => size);
    await writeMiBs(sink, 3);
    await sink.end();
    expect(log.filter((l) => l.startsWith('sync'))).toEqual(['sync 1']);
  });
});
