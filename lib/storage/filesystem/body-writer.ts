import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

/**
 * Stream chunks are gathered into writes of this size (one syscall per small chunk would dominate),
 * and no write hands the kernel more than this at once: on the benchmark machine, writes of 4 MiB
 * took up to several times as long as the same bytes in writes of 1 MiB, and varied from run to run
 * where those did not (likely the page cache's large folios on a VM's lazily backed memory;
 * BENCHMARKS.md, "Writes of at most 1 MiB").
 */
const WRITE_SIZE = 1024 * 1024;

export interface WrittenBody {
  readonly size: number;
  /** The body's sha256 as base64, when asked for. */
  readonly sha256Base64?: string;
}

/**
 * Writes a body into a file from `position`, hashing it on the way when asked, in bounded memory.
 * With `expectedSize`, throws when the body turns out longer or shorter.
 */
export async function writeBody(
  handle: FileHandle,
  position: number,
  body: Uint8Array | ReadableStream<Uint8Array>,
  options: { readonly expectedSize?: number; readonly sha256?: boolean },
): Promise<WrittenBody> {
  const { expectedSize } = options;
  const hash = options.sha256 ? createHash('sha256') : undefined;
  let size = 0;
  if (body instanceof Uint8Array) {
    hash?.update(body);
    await writeFully(handle, body, position);
    size = body.length;
  } else {
    const buffer = Buffer.allocUnsafe(WRITE_SIZE);
    let filled = 0;
    for await (const chunk of body) {
      size += chunk.length;
      if (expectedSize !== undefined && size > expectedSize) {
        throw new Error(`body is longer than ${expectedSize} bytes`);
      }
      hash?.update(chunk);
      for (let taken = 0; taken < chunk.length;) {
        const piece = chunk.subarray(taken, taken + WRITE_SIZE - filled);
        buffer.set(piece, filled);
        filled += piece.length;
        taken += piece.length;
        if (filled === WRITE_SIZE) {
          await writeFully(handle, buffer, position);
          position += filled;
          filled = 0;
        }
      }
    }
    await writeFully(handle, buffer.subarray(0, filled), position);
  }
  if (expectedSize !== undefined && size !== expectedSize) {
    throw new Error(`body has ${size} bytes, not ${expectedSize}`);
  }
  return { size, ...(hash && { sha256Base64: hash.digest('base64') }) };
}

/** Writes all of `bytes` at `position`, as writeAll does. */
export function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  return writeAll(handle, [bytes], position);
}

/**
 * All of `chunks` at `position`, continuing after a short write: one `pwritev` per WRITE_SIZE bytes
 * (a chunk larger than that is written in pieces).
 */
export async function writeAll(handle: FileHandle, chunks: Uint8Array[], position: number): Promise<void> {
  // Empty chunks need no write (and a write of nothing at all would read as a stuck file).
  let rest = chunks.filter((chunk) => chunk.byteLength > 0);
  while (rest.length > 0) {
    let { bytesWritten } = await handle.writev(upTo(rest, WRITE_SIZE), position);
    if (bytesWritten === 0) throw new Error('the file took no bytes');
    position += bytesWritten;
    let i = 0;
    while (i < rest.length && bytesWritten >= rest[i]!.byteLength) bytesWritten -= rest[i++]!.byteLength;
    rest = rest.slice(i);
    if (bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
  }
}

/** The first `limit` bytes of `chunks` (all of them when they hold fewer), without copying. */
function upTo(chunks: Uint8Array[], limit: number): Uint8Array[] {
  const taken: Uint8Array[] = [];
  let room = limit;
  for (const chunk of chunks) {
    if (room === 0) break;
    taken.push(chunk.byteLength <= room ? chunk : chunk.subarray(0, room));
    room -= taken[taken.length - 1]!.byteLength;
  }
  return taken;
}
