import { S3Client } from '@aws-sdk/client-s3';

export interface S3ClientOptions {
  readonly region: string;
  /** A non-AWS or private endpoint (MinIO, a VPC endpoint); AWS's own when absent. */
  readonly endpoint?: string;
  /** `bucket` in the path rather than the host name; most S3-compatible servers need it. */
  readonly forcePathStyle?: boolean;
  /** Attempts per call, the first included (default 5). */
  readonly maxAttempts?: number;
  /** `adaptive` also rate-limits this client after throttling; `standard` only backs off (default). */
  readonly retryMode?: 'standard' | 'adaptive';
  readonly timeouts?: {
    /** To open a connection (default 5 s). */
    readonly connectMs?: number;
    /** From sending a request to its response headers (default 30 s); streamed part bodies are exempt. */
    readonly requestMs?: number;
    /** A connection with no bytes moving either way (default 30 s). */
    readonly idleMs?: number;
  };
}

/**
 * An S3 client for the driver. Credentials come from the SDK's default chain (environment, Lambda
 * role, profile). Throttling (SlowDown), 5xx answers, timeouts and dropped connections are retried
 * with exponential backoff and jitter by the SDK; bodies that are streams cannot be replayed, so the
 * SDK sends those once.
 */
export function createS3Client(options: S3ClientOptions): S3Client {
  const timeouts = options.timeouts ?? {};
  return new S3Client({
    region: options.region,
    ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
    forcePathStyle: options.forcePathStyle ?? false,
    maxAttempts: options.maxAttempts ?? 5,
    retryMode: options.retryMode ?? 'standard',
    requestHandler: {
      connectionTimeout: timeouts.connectMs ?? 5_000,
      requestTimeout: timeouts.requestMs ?? 30_000,
      // Without it the SDK only logs a warning when requestTimeout passes and keeps waiting.
      throwOnRequestTimeout: true,
      socketTimeout: timeouts.idleMs ?? 30_000,
    },
    // Checksums only where we ask for one (ChecksumSHA256 on put): the SDK's default CRC32 on every
    // part would differ from the parts that clients upload to presigned URLs, and the registry checks
    // blob digests itself.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
