import type { ByteRange, ObjectInfo } from '../port.ts';

/** The fields HeadObject and GetObject answer with. */
export interface S3ObjectHeaders {
  readonly ContentLength?: number | undefined;
  readonly ContentRange?: string | undefined;
  readonly ETag?: string | undefined;
  readonly ContentType?: string | undefined;
  readonly Metadata?: Record<string, string> | undefined;
  readonly LastModified?: Date | undefined;
}

export function objectInfo(key: string, headers: S3ObjectHeaders): ObjectInfo {
  const { ETag, LastModified, ContentRange } = headers;
  // A ranged answer's Content-Length is the range's; the object's size is in its Content-Range.
  const size = ContentRange !== undefined ? contentRange(ContentRange).size : headers.ContentLength;
  if (ETag === undefined || LastModified === undefined || size === undefined) {
    throw new Error(`S3 answered for ${key} without an ETag, Last-Modified or size`);
  }
  return {
    key,
    size,
    etag: ETag,
    ...(headers.ContentType !== undefined && { contentType: headers.ContentType }),
    metadata: { ...headers.Metadata },
    lastModified: LastModified,
  };
}

/** Parses `bytes <start>-<end>/<size>`. */
export function contentRange(header: string): { range: ByteRange; size: number } {
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header);
  if (!match) throw new Error(`S3 answered with an unexpected Content-Range: ${header}`);
  const [, start, end, size] = match.map(Number) as [number, number, number, number];
  return { range: { start, end }, size };
}
