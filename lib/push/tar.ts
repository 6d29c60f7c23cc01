import { open } from 'node:fs/promises';

export interface TarEntry {
  readonly name: string;
  /** Where the entry's bytes start in the tar file. */
  readonly offset: number;
  readonly size: number;
}

const BLOCK = 512;
/** Longest pax or GNU long-name record read; real ones are a few hundred bytes. */
const MAX_META = 1024 * 1024;

/**
 * The regular files of an (uncompressed) tar archive and where their bytes are, read from the
 * headers alone: a `docker save` archive's layers can then be streamed from their place in the
 * file, without extracting gigabytes. Understands ustar names with prefixes, pax `path` records and
 * GNU long names.
 */
export async function indexTar(file: string): Promise<Map<string, TarEntry>> {
  const handle = await open(file, 'r');
  try {
    const entries = new Map<string, TarEntry>();
    const { size: fileSize } = await handle.stat();
    const header = Buffer.alloc(BLOCK);
    let position = 0;
    let longName: string | undefined;
    while (position + BLOCK <= fileSize) {
      await handle.read(header, 0, BLOCK, position);
      if (header.every((b) => b === 0)) break;
      if (!validChecksum(header))
        throw new Error(`${file} is not a tar archive (bad header at byte ${position})`);
      const size = parseOctal(header.subarray(124, 136));
      const type = String.fromCharCode(header[156]!);
      const dataAt = position + BLOCK;
      position = dataAt + Math.ceil(size / BLOCK) * BLOCK;
      if (type === 'x' || type === 'L') {
        if (size > MAX_META) throw new Error(`${file}: a tar metadata record of ${size} bytes is too large`);
        const meta = Buffer.alloc(size);
        await handle.read(meta, 0, size, dataAt);
        longName = type === 'L' ? cString(meta) : paxPath(meta.toString('utf8'));
        continue;
      }
      const name = normalize(longName ?? ustarName(header));
      longName = undefined;
      if (type === '0' || type === '\0') entries.set(name, { name, offset: dataAt, size });
    }
    return entries;
  } finally {
    await handle.close();
  }
}

function ustarName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const magic = header.subarray(257, 262).toString('latin1');
  const prefix = magic === 'ustar' ? cString(header.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function paxPath(records: string): string | undefined {
  for (const line of records.split('\n')) {
    const match = /^\d+ path=(.*)$/.exec(line);
    if (match) return match[1];
  }
  return undefined;
}

function normalize(name: string): string {
  return name.replace(/^\.\//, '');
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
}

function parseOctal(field: Buffer): number {
  // GNU base-256 for sizes of 8 GiB and more: the high bit of the first byte is set.
  if (field[0]! & 0x80) {
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = cString(field).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function validChecksum(header: Buffer): boolean {
  const stored = parseOctal(header.subarray(148, 156));
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
  return sum === stored;
}
