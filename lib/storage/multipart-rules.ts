import { S3_LIMITS, type PartInfo } from './port.ts';

/** Refuses, as S3 does on upload, a part number or size out of S3's limits. */
export function checkPartUpload(partNumber: number, size: number): void {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > S3_LIMITS.maxParts) {
    throw new RangeError(`part number ${partNumber} is outside 1..${S3_LIMITS.maxParts}`);
  }
  if (!Number.isSafeInteger(size) || size < 0 || size > S3_LIMITS.maxPartSize) {
    throw new RangeError(`part size ${size} is outside 0..${S3_LIMITS.maxPartSize}`);
  }
}

/**
 * Checks a completion the way S3 does, when it happens: each listed part is the one stored under its
 * number (same etag and size), and every part but the last is at least minPartSize. Stricter than S3,
 * the parts must be exactly 1..n: the drivers that keep parts in one file have no gaps to skip.
 * `stored` holds what the store has under each listed part's number, in order; it is answered checked.
 */
export function checkCompletion<T extends PartInfo>(
  listed: readonly PartInfo[],
  stored: readonly (T | undefined)[],
): T[] {
  if (listed.length === 0) throw new Error('a multipart upload needs at least one part');
  return listed.map((part, index) => {
    const held = stored[index];
    if (part.partNumber !== index + 1) throw new Error(`part ${index + 1} expected, got ${part.partNumber}`);
    if (!held || held.etag !== part.etag || held.size !== part.size) {
      throw new Error(`part ${part.partNumber} is not the one stored (unknown, replaced or wrong size)`);
    }
    if (index < listed.length - 1 && part.size < S3_LIMITS.minPartSize) {
      throw new Error(
        `part ${part.partNumber} is smaller than ${S3_LIMITS.minPartSize} bytes and not the last`,
      );
    }
    return held;
  });
}
