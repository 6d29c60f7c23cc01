import { RegistryError } from './errors.ts';

/** The digest algorithms Berth computes. sha256 is the default; sha512 is accepted everywhere. */
export type DigestAlgorithm = 'sha256' | 'sha512';

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

declare const digestBrand: unique symbol;
/** `<algorithm>:<lowercase hex>`, made only by parseDigest / digestFromHex. */
export type Digest = string & { readonly [digestBrand]: true };

export interface ParsedDigest {
  readonly digest: Digest;
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
}

// The spec's grammar: algorithm ":" encoded, algorithm = component (separator component)*.
const GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function isDigestAlgorithm(value: string): value is DigestAlgorithm {
  return value === 'sha256' || value === 'sha512';
}

/** Parses a digest string; anything that is not a well-formed sha256/sha512 digest is DIGEST_INVALID. */
export function parseDigest(value: string): ParsedDigest {
  if (value.length > 256 || !GRAMMAR.test(value)) {
    throw new RegistryError(
      'DIGEST_INVALID',
      `"${truncate(value)}" is not a digest of the form sha256:<64 hex digits>`,
    );
  }
  const colon = value.indexOf(':');
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  if (!isDigestAlgorithm(algorithm)) {
    throw new RegistryError(
      'DIGEST_INVALID',
      `digest algorithm "${truncate(algorithm)}" is not supported; use sha256 or sha512`,
      {
        status: 400,
      },
    );
  }
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError(
      'DIGEST_INVALID',
      `a ${algorithm} digest has exactly ${HEX_LENGTH[algorithm]} lowercase hex digits; got "${truncate(hex)}"`,
    );
  }
  return { digest: value as Digest, algorithm, hex };
}

export function tryParseDigest(value: string): ParsedDigest | undefined {
  try {
    return parseDigest(value);
  } catch {
    return undefined;
  }
}

/** Makes a Digest from a hex string produced by our own hashing. */
export function digestFromHex(algorithm: DigestAlgorithm, hex: string): ParsedDigest {
  return parseDigest(`${algorithm}:${hex}`);
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 77)}...` : value;
}
