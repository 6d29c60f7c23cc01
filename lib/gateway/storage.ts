import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { parseByteRange } from '../http/ranges.ts';
import { isRegistryError } from '../oci/errors.ts';
import type { LocalStorageUrls } from '../storage/local-urls.ts';
import type { ByteRange, StorageDriver } from '../storage/port.ts';

/** The store the local gateway serves signed URLs of, standing in for S3 behind `berth serve --lambda`. */
export interface LocalStorage {
  readonly driver: StorageDriver;
  readonly urls: LocalStorageUrls;
}

/**
 * GET or HEAD of a signed `/_berth/storage/<key>` URL, answered as S3 answers a presigned GET:
 * the object's bytes (a single `Range` gives 206), or an XML error (403 for an expired or forged
 * signature, 404 for a missing key, 416 for a range outside the object). Returns the status sent.
 */
export async function serveStorage(
  req: IncomingMessage,
  res: ServerResponse,
  storage: LocalStorage,
): Promise<number> {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') {
    return s3Error(
      res,
      405,
      'MethodNotAllowed',
      'The specified method is not allowed against this resource.',
      {
        Allow: 'GET, HEAD',
      },
    );
  }
  const signed = storage.urls.verify(method, req.url ?? '');
  if ('refused' in signed) {
    return signed.refused === 'expired'
      ? s3Error(res, 403, 'AccessDenied', 'Request has expired')
      : s3Error(
          res,
          403,
          'SignatureDoesNotMatch',
          'The request signature we calculated does not match the signature you provided.',
        );
  }
  const info = await storage.driver.head(signed.key);
  if (!info) return s3Error(res, 404, 'NoSuchKey', 'The specified key does not exist.');
  let range: ByteRange | undefined;
  try {
    range = parseByteRange(req.headers.range, info.size);
  } catch (err) {
    if (!isRegistryError(err)) throw err;
    return s3Error(res, 416, 'InvalidRange', 'The requested range is not satisfiable', {
      'Content-Range': `bytes */${info.size}`,
    });
  }
  const headers: Record<string, string> = {
    'Content-Type': signed.contentType ?? info.contentType ?? 'application/octet-stream',
    'Accept-Ranges': 'bytes',
    ETag: `"${info.etag}"`,
    'Last-Modified': info.lastModified.toUTCString(),
    'Content-Length': String(range ? range.end - range.start + 1 : info.size),
    ...(range ? { 'Content-Range': `bytes ${range.start}-${range.end}/${info.size}` } : {}),
  };
  const status = range ? 206 : 200;
  if (method === 'HEAD') {
    res.writeHead(status, headers);
    res.end();
    return status;
  }
  const object = await storage.driver.getStream(signed.key, range);
  if (!object) return s3Error(res, 404, 'NoSuchKey', 'The specified key does not exist.');
  res.writeHead(status, headers);
  // A client that goes away mid-blob ends the pipeline with an error: nothing to answer then.
  await pipeline(Readable.fromWeb(object.body as NodeReadableStream<Uint8Array>), res).catch(() => {
    res.destroy();
  });
  return status;
}

function s3Error(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  extra: Record<string, string> = {},
): number {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, {
    'Content-Type': 'application/xml',
    'Content-Length': String(Buffer.byteLength(body)),
    ...extra,
  });
  res.end(body);
  return status;
}
