/** S3's page size: the most keys one list call returns. */
const MAX_PAGE = 1000;

/**
 * The order every driver lists keys in: S3's, the bytes of their UTF-8 encoding. It differs from JS
 * string order (UTF-16 code units) for characters beyond the Basic Multilingual Plane.
 */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The number of keys a list call returns at most, from the caller's limit. */
export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return MAX_PAGE;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`list limit ${limit} is not a positive integer`);
  }
  return Math.min(limit, MAX_PAGE);
}
