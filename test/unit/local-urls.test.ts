import { describe, expect, it } from 'vitest';
import { LocalStorageUrls } from '../../lib/storage/local-urls.ts';

const urls = LocalStorageUrls.fromHex('01'.repeat(32));
const at = 1_700_000_000_000;

describe('local storage URLs (the S3 stand-in behind berth serve --lambda)', () => {
  it('signs a relative URL that verifies for its method, key and content type until it expires', () => {
    const url = urls.sign(
      'blobs/sha256/ab cd',
      { method: 'GET', expiresInSeconds: 60, contentType: 'x/y' },
      at,
    );
    expect(url.startsWith('/_berth/storage/blobs/sha256/ab%20cd?')).toBe(true);
    expect(urls.verify('GET', url, at + 59_000)).toEqual({ key: 'blobs/sha256/ab cd', contentType: 'x/y' });
    expect(urls.verify('GET', url, at + 60_000)).toEqual({ refused: 'expired' });
    expect(urls.verify('HEAD', url, at)).toEqual({ refused: 'forged' });
  });

  it('refuses a URL whose key, expiry or content type was changed, or signed with another key', () => {
    const url = urls.sign('data/1', { method: 'GET', expiresInSeconds: 60 }, at);
    expect(urls.verify('GET', url.replace('data/1', 'data/2'), at)).toEqual({ refused: 'forged' });
    expect(urls.verify('GET', url.replace(/expires=\d+/, 'expires=9999999999'), at)).toEqual({
      refused: 'forged',
    });
    expect(urls.verify('GET', `${url}&content-type=text%2Fhtml`, at)).toEqual({ refused: 'forged' });
    const other = LocalStorageUrls.fromHex('02'.repeat(32));
    expect(other.verify('GET', url, at)).toEqual({ refused: 'forged' });
    expect(urls.verify('GET', '/_berth/storage/%E0%A4%A?expires=1&signature=x', at)).toEqual({
      refused: 'malformed',
    });
  });
});
