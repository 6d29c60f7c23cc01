import { createHmac, timingSafeEqual } from 'node:crypto';
import type { StorageDriver } from './port.ts';

/** Where the local gateway serves a store's objects by signed URL (no registry path starts so). */
export const LOCAL_STORAGE_PATH = '/_berth/storage/';

export interface SignedRequest {
  readonly key: string;
  readonly contentType: string | undefined;
}

/**
 * Signed, expiring URLs for objects of a local store, the stand-in for S3 presigned URLs behind
 * `berth serve --lambda` on the filesystem store: the function answers a blob GET with a 307 to one
 * (as on AWS), and the gateway serves it outside the Lambda response limit. The URL is relative
 * (`/_berth/storage/<key>?...`), so it names whatever host and port the client used. The signature
 * (HMAC-SHA256 with a key the gateway makes at start) covers the method, the key, the expiry and
 * the content type, like SigV4 does.
 */
export class LocalStorageUrls {
  constructor(private readonly secret: Buffer) {}

  static fromHex(hex: string): LocalStorageUrls {
    return new LocalStorageUrls(Buffer.from(hex, 'hex'));
  }

  sign(
    key: string,
    options: { method: 'GET' | 'HEAD'; expiresInSeconds: number; contentType?: string },
    now = Date.now(),
  ): string {
    const expires = Math.floor(now / 1000) + options.expiresInSeconds;
    const query = new URLSearchParams({ expires: String(expires) });
    if (options.contentType) query.set('content-type', options.contentType);
    query.set('signature', this.signature(options.method, key, expires, options.contentType));
    return `${LOCAL_STORAGE_PATH}${key.split('/').map(encodeURIComponent).join('/')}?${query}`;
  }

  /** The request a URL signs, or why it does not pass (`expired`, `forged`, `malformed`). */
  verify(
    method: string,
    url: string,
    now = Date.now(),
  ): SignedRequest | { readonly refused: 'expired' | 'forged' | 'malformed' } {
    const at = url.indexOf('?');
    const path = at < 0 ? url : url.slice(0, at);
    if (!path.startsWith(LOCAL_STORAGE_PATH)) return { refused: 'malformed' };
    const query = new URLSearchParams(at < 0 ? '' : url.slice(at + 1));
    let key: string;
    try {
      key = path.slice(LOCAL_STORAGE_PATH.length).split('/').map(decodeURIComponent).join('/');
    } catch {
      return { refused: 'malformed' };
    }
    const expires = Number(query.get('expires'));
    const given = query.get('signature') ?? '';
    const contentType = query.get('content-type') ?? undefined;
    if (!Number.isSafeInteger(expires) || key === '') return { refused: 'malformed' };
    const expected = Buffer.from(this.signature(method, key, expires, contentType));
    const actual = Buffer.from(given);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return { refused: 'forged' };
    if (expires * 1000 <= now) return { refused: 'expired' };
    return { key, contentType };
  }

  private signature(method: string, key: string, expires: number, contentType: string | undefined): string {
    return createHmac('sha256', this.secret)
      .update(`${method}\n${key}\n${expires}\n${contentType ?? ''}`)
      .digest('base64url');
  }
}

/** The store, with `presign` answered by local signed URLs (the filesystem store behind the local gateway). */
export function withLocalUrls(driver: StorageDriver, urls: LocalStorageUrls): StorageDriver {
  return {
    name: driver.name,
    multipart: driver.multipart,
    ...(driver.direct && { direct: driver.direct }),
    ...(driver.exclusive && { exclusive: driver.exclusive }),
    ...(driver.cleanTemporary && { cleanTemporary: (ms: number) => driver.cleanTemporary!(ms) }),
    ...(driver.listTemporary && { listTemporary: () => driver.listTemporary!() }),
    head: (key) => driver.head(key),
    get: (key) => driver.get(key),
    getStream: (key, range) => driver.getStream(key, range),
    put: (key, body, options) => driver.put(key, body, options),
    delete: (key) => driver.delete(key),
    list: (prefix, options) => driver.list(prefix, options),
    presign: async (key, options) => urls.sign(key, options),
  };
}
