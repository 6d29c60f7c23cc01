import { StorageUnavailable } from '../port.ts';

/** What an S3 failure means to the port; each operation decides what to throw for it. */
export type S3Failure =
  'missing' | 'precondition' | 'checksum' | 'no-such-upload' | 'invalid-range' | 'unavailable' | 'other';

interface SdkError {
  readonly name?: string;
  readonly code?: string;
  readonly $metadata?: { readonly httpStatusCode?: number };
}

/** Connection failures, which leave no HTTP status behind. */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

export function classify(err: unknown): S3Failure {
  const { name, code, $metadata } = (typeof err === 'object' && err !== null ? err : {}) as SdkError;
  const status = $metadata?.httpStatusCode;
  switch (name) {
    // HeadObject answers have no body, so a missing key is a bare 404 there.
    case 'NoSuchKey':
    case 'NotFound':
      return 'missing';
    // ConditionalRequestConflict: another conditional write to the key was in flight; ours did not happen.
    case 'PreconditionFailed':
    case 'ConditionalRequestConflict':
      return 'precondition';
    case 'BadDigest':
    case 'XAmzContentChecksumMismatch':
      return 'checksum';
    case 'NoSuchUpload':
      return 'no-such-upload';
    case 'InvalidRange':
      return 'invalid-range';
    case 'SlowDown':
    case 'RequestTimeout':
    case 'TimeoutError':
      return 'unavailable';
  }
  if (status === 412) return 'precondition';
  if (status === 416) return 'invalid-range';
  if (status === 429 || (status !== undefined && status >= 500)) return 'unavailable';
  if (status === undefined && code !== undefined && NETWORK_CODES.has(code)) return 'unavailable';
  return 'other';
}

/**
 * The error to throw for a failure the operation has no meaning of its own for: StorageUnavailable
 * when the store was throttling, failing or unreachable (the SDK has already retried), else the
 * SDK's error as it is (access denied, no such bucket: configuration mistakes, a 500 for the client).
 */
export function storageError(err: unknown, operation: string): unknown {
  if (classify(err) !== 'unavailable') return err;
  const { name, code } = err as SdkError;
  return new StorageUnavailable(`S3 ${operation} failed: ${code ?? name ?? String(err)}`, { cause: err });
}
