import { RegistryError } from '../oci/errors.ts';
import type { ByteRange } from '../storage/port.ts';

/**
 * Parses a request `Range: bytes=...` header against an object of `size` bytes. Only a single
 * range is served; a multi-range request gets the whole object (undefined), as RFC 9110 allows.
 */
export function parseByteRange(header: string | undefined, size: number): ByteRange | undefined {
  // A unit other than bytes is ignored, as RFC 9110 requires: the whole blob is served.
  if (!header || !/^bytes=/i.test(header.trim())) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/i.exec(header.trim());
  if (!match) {
    if (/^bytes=[\d\s,-]+$/i.test(header.trim())) return undefined;
    throw unsatisfiable(size, `malformed Range header "${header.slice(0, 100)}"; use bytes=<first>-<last>`);
  }
  const [, first, last] = match;
  if (first === '' && last === '') throw unsatisfiable(size, 'Range "bytes=-" names no bytes');
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) throw unsatisfiable(size, 'the requested range is empty');
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size || (last !== '' && Number(last) < start)) {
    throw unsatisfiable(size, `range ${start}-${last} is outside the blob's ${size} bytes`);
  }
  return { start, end };
}

function unsatisfiable(size: number, message: string): RegistryError {
  return new RegistryError('RANGE_INVALID', message, { status: 416, detail: { size } });
}

export interface ContentRange {
  readonly start: number;
  readonly end: number;
}

/**
 * Parses an upload chunk's `Content-Range: <start>-<end>` (inclusive; the spec's form, without the
 * `bytes ` unit, which older clients send and is accepted too).
 */
export function parseContentRange(header: string | undefined): ContentRange | undefined {
  if (header === undefined) return undefined;
  const match = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  const start = Number(match?.[1]);
  const end = Number(match?.[2]);
  if (!match || !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) {
    throw new RegistryError(
      'BLOB_UPLOAD_INVALID',
      `malformed Content-Range "${header.slice(0, 100)}"; use <first byte>-<last byte>, e.g. 0-1023`,
      { status: 416 },
    );
  }
  return { start, end };
}
