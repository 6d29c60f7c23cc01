import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseByteRange, parseContentRange } from '../../lib/http/ranges.ts';
import { expectRegistryError } from './registry-error.ts';

describe('parseByteRange', () => {
  it('serves the whole object when there is no Range header', () => {
    expect(parseByteRange(undefined, 100)).toBeUndefined();
    expect(parseByteRange('', 100)).toBeUndefined();
  });

  it.each([
    ['bytes=0-0', 100, { start: 0, end: 0 }],
    ['bytes=0-99', 100, { start: 0, end: 99 }],
    ['bytes=10-19', 100, { start: 10, end: 19 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=0-', 1, { start: 0, end: 0 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=-1', 100, { start: 99, end: 99 }],
    [' bytes=5-6 ', 100, { start: 5, end: 6 }],
  ])('reads %j of %i bytes', (header, size, range) => {
    expect(parseByteRange(header, size)).toEqual(range);
  });

  it.each([
    ['bytes=50-1000', 100, { start: 50, end: 99 }],
    ['bytes=0-99999999999999999999', 100, { start: 0, end: 99 }],
    ['bytes=-1000', 100, { start: 0, end: 99 }],
  ])('clamps %j past the end of %i bytes', (header, size, range) => {
    expect(parseByteRange(header, size)).toEqual(range);
  });

  it('always yields a range inside the object for satisfiable first-last ranges', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e9 }), fc.nat(), fc.nat(), (size, a, b) => {
        const start = a % size;
        const last = start + b;
        const range = parseByteRange(`bytes=${start}-${last}`, size);
        expect(range).toEqual({ start, end: Math.min(last, size - 1) });
      }),
    );
  });

  it.each([
    ['bytes=100-', 100],
    ['bytes=100-200', 100],
    ['bytes=5000-', 100],
    ['bytes=0-', 0],
    ['bytes=-5', 0],
    ['bytes=-0', 100],
    ['bytes=-', 100],
    ['bytes=10-5', 100],
    ['bytes=1-0', 100],
  ])('answers %j of %i bytes with 416 RANGE_INVALID', (header, size) => {
    const err = expectRegistryError(() => parseByteRange(header, size), 'RANGE_INVALID', 416);
    expect(err.detail).toEqual({ size });
  });

  it.each(['bytes=0-1,5-6', 'bytes=0-1, 5-6', 'bytes=-5,0-0'])(
    'serves the whole object for multi-range %j',
    (header) => {
      expect(parseByteRange(header, 100)).toBeUndefined();
    },
  );

  it.each(['items=0-1', 'bytes 0-1', 'garbage'])(
    'ignores %j, which is not a bytes range, and serves the whole object (RFC 9110)',
    (header) => {
      expect(parseByteRange(header, 100)).toBeUndefined();
    },
  );

  it('takes the unit case-insensitively', () => {
    expect(parseByteRange('Bytes=0-1', 100)).toEqual({ start: 0, end: 1 });
  });

  it.each(['bytes=abc', 'bytes=a-b', 'bytes=0-1;', 'bytes=0x10-', 'bytes=1.5-2'])(
    'answers the malformed %j with 416 RANGE_INVALID',
    (header) => {
      expectRegistryError(() => parseByteRange(header, 100), 'RANGE_INVALID', 416);
    },
  );

  it('keeps the message short for a huge header', () => {
    const err = expectRegistryError(
      () => parseByteRange(`bytes=${'x'.repeat(10_000)}`, 100),
      'RANGE_INVALID',
    );
    expect(err.message.length).toBeLessThan(300);
  });
});

describe('parseContentRange', () => {
  it('is undefined without a header', () => {
    expect(parseContentRange(undefined)).toBeUndefined();
  });

  it.each([
    ['0-99', { start: 0, end: 99 }],
    ['0-0', { start: 0, end: 0 }],
    ['100-199', { start: 100, end: 199 }],
    ['bytes 0-99', { start: 0, end: 99 }],
    ['bytes=0-99', { start: 0, end: 99 }],
    ['bytes=0-99/100', { start: 0, end: 99 }],
    ['bytes 0-99/*', { start: 0, end: 99 }],
    ['0-99/100', { start: 0, end: 99 }],
    [' 0-99 ', { start: 0, end: 99 }],
  ])('reads %j', (header, range) => {
    expect(parseContentRange(header)).toEqual(range);
  });

  it('reads any start-end pair with end >= start', () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(), (start, length) => {
        expect(parseContentRange(`${start}-${start + length}`)).toEqual({ start, end: start + length });
      }),
    );
  });

  it.each([
    '',
    '99-0',
    '0-',
    '-99',
    'abc',
    'bytes',
    'bytes 0-99/abc',
    '0-99/',
    'bytes: 0-99',
    'octets 0-99',
    '1e3-2e3',
    '0x0-0x10',
    '0-99,100-199',
    '99999999999999999999-99999999999999999999',
  ])('refuses %j with BLOB_UPLOAD_INVALID', (header) => {
    expectRegistryError(() => parseContentRange(header), 'BLOB_UPLOAD_INVALID', 416);
  });
});
