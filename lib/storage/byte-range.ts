import type { ByteRange } from './port.ts';

/**
 * The part of an object of `size` bytes that a range asks for, its end clamped to the last byte. A
 * range that starts beyond the object cannot be served (S3 answers 416), nor can one of an empty object.
 */
export function clampRange(range: ByteRange, size: number): ByteRange {
  const { start, end } = range;
  if (
    !Number.isSafeInteger(start) ||
    !Number.isSafeInteger(end) ||
    start < 0 ||
    end < start ||
    start >= size
  ) {
    throw new RangeError(`range ${start}-${end} cannot be served from an object of ${size} bytes`);
  }
  return { start, end: Math.min(end, size - 1) };
}
