import { fstatSync, type BigIntStats } from 'node:fs';
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import * as z from 'zod';
import { ChecksumMismatch, type ObjectInfo } from '../port.ts';
import { writeAll, writeBody, writeFully } from './body-writer.ts';
import { hasCode } from './errno.ts';

/*
 * One object is one file, a header then the body, so that one rename replaces both together:
 *
 *   "BRT1" | n: header length (uint32 BE) | n bytes of JSON, padded with spaces | body
 *
 * The header's room is reserved before the body is written, large enough for any size, so that the
 * header can be finalized in place once the size is known (streamed puts, multipart uploads).
 */
const MAGIC = 'BRT1';
const PREFIX = 8;
/** Enough for the header of almost every object in one read (S3 caps user metadata at 2 KB). */
const FIRST_READ = 4096;

const headerSchema = z.object({
  etag: z.string(),
  size: z.number().int().nonnegative(),
  contentType: z.string().optional(),
  metadata: z.record(z.string(), z.string()),
});

export type Header = z.infer<typeof headerSchema>;

/** Where the body starts: after room for this header with any size. */
export function bodyOffsetFor(header: Omit<Header, 'size'>): number {
  return encodeHeader({ ...header, size: Number.MAX_SAFE_INTEGER }).length;
}

/** The header's bytes, padded up to `bodyOffset` when given. */
export function encodeHeader(header: Header, bodyOffset?: number): Buffer {
  const { etag, size, contentType, metadata } = header;
  const json = Buffer.from(JSON.stringify({ etag, size, contentType, metadata }));
  const end = bodyOffset ?? PREFIX + json.length;
  if (PREFIX + json.length > end) throw new Error('object header does not fit its room');
  const bytes = Buffer.alloc(end, ' ');
  bytes.write(MAGIC, 0, 'latin1');
  bytes.writeUInt32BE(end - PREFIX, 4);
  json.copy(bytes, PREFIX);
  return bytes;
}

/** Reads the header of an open object file, complete or not. */
export async function readHeader(handle: FileHandle): Promise<{ header: Header; bodyOffset: number }> {
  const first = await readAt(handle, 0, FIRST_READ);
  const end = headerEnd(first);
  return decodeHeader(end <= first.length ? first : await readAt(handle, 0, end));
}

/** Opens an object's file, or answers undefined when there is none. */
export async function openObject(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if (hasCode(error, 'ENOENT')) return undefined;
    throw error;
  }
}

/** What an open object file holds, checked against its length. */
export async function describeObject(
  handle: FileHandle,
  key: string,
): Promise<{ info: ObjectInfo; bodyOffset: number }> {
  const { header, bodyOffset } = await readHeader(handle);
  return { info: objectInfo(key, header, bodyOffset, statOpen(handle)), bodyOffset };
}

/** Reads a whole object: its info and body. */
export async function readObject(
  handle: FileHandle,
  key: string,
): Promise<{ info: ObjectInfo; body: Buffer }> {
  const stats = statOpen(handle);
  const bytes = await handle.readFile();
  const { header, bodyOffset } = decodeHeader(bytes);
  return { info: objectInfo(key, header, bodyOffset, stats), body: bytes.subarray(bodyOffset) };
}

/**
 * Writes a whole object file into `handle`, a file just made (and closes it): header, body, flushed
 * to disk before anyone renames it into place, so that a crash cannot leave a visible object with a
 * missing body. With `sha256Base64`, throws ChecksumMismatch when the body's differs (the caller
 * removes the file).
 */
export async function writeObjectFile(
  handle: FileHandle,
  key: string,
  header: Omit<Header, 'size'>,
  body: Uint8Array | ReadableStream<Uint8Array>,
  sha256Base64: string | undefined,
): Promise<{ info: ObjectInfo; stats: BigIntStats }> {
  try {
    if (body instanceof Uint8Array) {
      // The size is known: the header is written final, without room to spare, in one pwritev with
      // the body (one system call, not two).
      if (sha256Base64 !== undefined && sha256Of(body) !== sha256Base64) throw new ChecksumMismatch(key);
      const complete = { ...header, size: body.length };
      const head = encodeHeader(complete);
      await writeAll(handle, [head, body], 0);
      await handle.datasync();
      const stats = statOpen(handle);
      return { info: objectInfo(key, complete, head.length, stats), stats };
    }
    const bodyOffset = bodyOffsetFor(header);
    const written = await writeBody(handle, bodyOffset, body, { sha256: sha256Base64 !== undefined });
    if (sha256Base64 !== undefined && written.sha256Base64 !== sha256Base64) throw new ChecksumMismatch(key);
    const complete = { ...header, size: written.size };
    await writeFully(handle, encodeHeader(complete, bodyOffset), 0);
    await handle.datasync();
    const stats = statOpen(handle);
    return { info: objectInfo(key, complete, bodyOffset, stats), stats };
  } finally {
    await handle.close();
  }
}

function sha256Of(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('base64');
}

/**
 * The stats of an open file, read on the main thread: an fstat of a descriptor reads the inode the
 * kernel holds for it and never waits for the disk, so a trip through the thread pool (a wake-up of
 * a worker, then of the main thread) would cost more than the call.
 */
export function statOpen(handle: FileHandle): BigIntStats {
  return fstatSync(handle.fd, { bigint: true });
}

export function objectInfo(key: string, header: Header, bodyOffset: number, stats: BigIntStats): ObjectInfo {
  if (stats.size !== BigInt(bodyOffset + header.size)) {
    throw corrupt(`has ${stats.size} bytes, not the ${bodyOffset + header.size} its header says`);
  }
  const { etag, size, contentType, metadata } = header;
  return {
    key,
    size,
    etag,
    ...(contentType !== undefined && { contentType }),
    metadata,
    lastModified: stats.mtime,
  };
}

function decodeHeader(bytes: Buffer): { header: Header; bodyOffset: number } {
  const bodyOffset = headerEnd(bytes);
  if (bytes.length < bodyOffset) throw corrupt('ends inside its header');
  const parsed = headerSchema.safeParse(JSON.parse(bytes.toString('utf8', PREFIX, bodyOffset)));
  if (!parsed.success) throw corrupt('has an invalid header');
  return { header: parsed.data, bodyOffset };
}

function headerEnd(bytes: Buffer): number {
  if (bytes.length < PREFIX || bytes.toString('latin1', 0, MAGIC.length) !== MAGIC) {
    throw corrupt('has no header');
  }
  return PREFIX + bytes.readUInt32BE(4);
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const { bytesRead, buffer } = await handle.read(Buffer.alloc(length), 0, length, position);
  return buffer.subarray(0, bytesRead);
}

function corrupt(what: string): Error {
  return new Error(`corrupt object file: it ${what}`);
}
