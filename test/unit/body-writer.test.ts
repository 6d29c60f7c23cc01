import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { writeAll, writeFully } from '../../lib/storage/filesystem/body-writer.ts';

const MiB = 1024 * 1024;

/**
 * A file in memory behind the two FileHandle calls the writers use. `short` makes each write take
 * fewer bytes than it was given (the kernel may), so the writers' continuation is what is tested.
 */
function memoryFile(short = false) {
  const file = Buffer.alloc(16 * MiB);
  let end = 0;
  const calls: number[] = [];
  const take = (bytes: Uint8Array, position: number) => {
    const n = short && bytes.length > 1 ? Math.ceil(bytes.length / 2) : bytes.length;
    file.set(bytes.subarray(0, n), position);
    end = Math.max(end, position + n);
    calls.push(n);
    return n;
  };
  const handle = {
    write: async (buffer: Uint8Array, offset: number, length: number, position: number) => ({
      bytesWritten: take(buffer.subarray(offset, offset + length), position),
      buffer,
    }),
    writev: async (buffers: Uint8Array[], position: number) => {
      const n = take(Buffer.concat(buffers), position);
      return { bytesWritten: n, buffers };
    },
  } as unknown as FileHandle;
  return { handle, calls, contents: () => file.subarray(0, end) };
}

describe('the filesystem store writes a body in pieces of at most 1 MiB', () => {
  const chunks = [randomBytes(300 * 1024), randomBytes(2.5 * MiB), randomBytes(7), randomBytes(MiB)];
  const whole = Buffer.concat(chunks);

  it.each([false, true])('writeAll puts every byte where it belongs (short writes: %s)', async (short) => {
    const f = memoryFile(short);
    await writeAll(f.handle, chunks, 100);
    expect(f.contents().subarray(100).equals(whole)).toBe(true);
    expect(Math.max(...f.calls)).toBeLessThanOrEqual(MiB);
  });

  it.each([false, true])('writeFully puts every byte where it belongs (short writes: %s)', async (short) => {
    const f = memoryFile(short);
    await writeFully(f.handle, whole, 5);
    expect(f.contents().subarray(5).equals(whole)).toBe(true);
    expect(Math.max(...f.calls)).toBeLessThanOrEqual(MiB);
  });

  it.each(['writeAll', 'writeFully'] as const)(
    '%s fails, not loops, when the file takes no bytes',
    async (name) => {
      const stuck = {
        write: async (buffer: Uint8Array) => ({ bytesWritten: 0, buffer }),
        writev: async (buffers: Uint8Array[]) => ({ bytesWritten: 0, buffers }),
      } as unknown as FileHandle;
      const writing = name === 'writeAll' ? writeAll(stuck, chunks, 0) : writeFully(stuck, whole, 0);
      await expect(writing).rejects.toThrow('took no bytes');
    },
  );
});
