import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { digestFromHex, parseDigest, tryParseDigest, type DigestAlgorithm } from '../../lib/oci/digest.ts';
import { computeDigest } from '../../lib/oci/manifest.ts';
import { expectRegistryError } from './registry-error.ts';

const LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const lowerHex = (length: number) =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: length, maxLength: length });
const algorithm = fc.constantFrom<DigestAlgorithm>('sha256', 'sha512');

describe('parseDigest', () => {
  it('accepts sha256 and sha512 digests with the right number of lowercase hex digits', () => {
    fc.assert(
      fc.property(
        algorithm.chain((alg) => lowerHex(LENGTH[alg]).map((hex) => [alg, hex] as const)),
        ([alg, hex]) => {
          const parsed = parseDigest(`${alg}:${hex}`);
          expect(parsed).toEqual({ digest: `${alg}:${hex}`, algorithm: alg, hex });
        },
      ),
    );
  });

  it('refuses a hex part of the wrong length', () => {
    fc.assert(
      fc.property(
        algorithm.chain((alg) =>
          fc
            .integer({ min: 1, max: 200 })
            .filter((n) => n !== LENGTH[alg])
            .chain((n) => lowerHex(n))
            .map((hex) => `${alg}:${hex}`),
        ),
        (digest) => {
          const err = expectRegistryError(() => parseDigest(digest), 'DIGEST_INVALID', 400);
          expect(err.message).toMatch(/exactly (64|128) lowercase hex digits/);
        },
      ),
    );
  });

  it('refuses upper-case hex', () => {
    fc.assert(
      fc.property(
        algorithm.chain((alg) =>
          fc.tuple(lowerHex(LENGTH[alg]), fc.nat(), fc.constantFrom(...'ABCDEF')).map(([hex, at, upper]) => {
            const i = at % hex.length;
            return `${alg}:${hex.slice(0, i)}${upper}${hex.slice(i + 1)}`;
          }),
        ),
        (digest) => {
          expectRegistryError(() => parseDigest(digest), 'DIGEST_INVALID', 400);
        },
      ),
    );
  });

  it.each([
    ['md5', 32],
    ['sha1', 40],
    ['sha384', 96],
    ['blake3', 64],
    ['sha256+b64u', 64],
    ['SHA256', 64],
  ])('refuses the unsupported algorithm %s', (alg, length) => {
    expectRegistryError(() => parseDigest(`${alg}:${'0'.repeat(length)}`), 'DIGEST_INVALID', 400);
  });

  it('names the supported algorithms when refusing another one', () => {
    const err = expectRegistryError(() => parseDigest(`sha384:${'0'.repeat(96)}`), 'DIGEST_INVALID', 400);
    expect(err.message).toContain('sha256');
  });

  it.each([
    '',
    'sha256',
    'sha256:',
    `:${'0'.repeat(64)}`,
    `sha256::${'0'.repeat(64)}`,
    ` sha256:${'0'.repeat(64)}`,
    `sha256:${'0'.repeat(64)} `,
    `sha256:${'0'.repeat(64)}\n`,
    `sha256-${'0'.repeat(64)}`,
    `sha256:${'g'.repeat(64)}`,
    `sha256:${'0'.repeat(1000)}`,
  ])('refuses the malformed digest %j', (value) => {
    expectRegistryError(() => parseDigest(value), 'DIGEST_INVALID', 400);
    expect(tryParseDigest(value)).toBeUndefined();
  });

  it('keeps error messages short for huge inputs', () => {
    const err = expectRegistryError(() => parseDigest('x'.repeat(100_000)), 'DIGEST_INVALID');
    expect(err.message.length).toBeLessThan(300);
  });
});

describe('digestFromHex', () => {
  it('refuses hex that is not a whole lowercase digest', () => {
    expectRegistryError(() => digestFromHex('sha256', 'abc'), 'DIGEST_INVALID');
    expectRegistryError(() => digestFromHex('sha512', 'a'.repeat(64)), 'DIGEST_INVALID');
  });
});

describe('computeDigest', () => {
  it('always produces a digest that parses back to itself and matches the bytes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 4096 }),
        fc.option(algorithm, { nil: undefined }),
        (bytes, alg) => {
          const computed = computeDigest(bytes, alg);
          const expectedAlgorithm = alg ?? 'sha256';
          expect(computed.algorithm).toBe(expectedAlgorithm);
          expect(computed.hex).toBe(createHash(expectedAlgorithm).update(bytes).digest('hex'));
          expect(parseDigest(computed.digest)).toEqual(computed);
        },
      ),
    );
  });

  it('gives the well-known digest of the empty blob', () => {
    expect(computeDigest(new Uint8Array()).digest).toBe(
      'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
  });
});
