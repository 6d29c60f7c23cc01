import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

export interface PresignOptions {
  readonly method: 'GET' | 'HEAD';
  readonly expiresInSeconds: number;
  /** Served as the answer's Content-Type instead of the stored one. */
  readonly contentType?: string;
  /** Served as an attachment with this file name. */
  readonly filename?: string;
}

/** SigV4's longest validity for a presigned URL: seven days. */
const MAX_EXPIRY_SECONDS = 7 * 24 * 60 * 60;

/**
 * Presigns object URLs for clients to fetch directly.
 *
 * A presigned URL signs the host it names, so a different public origin cannot be pasted onto a
 * signed URL: the signature would no longer match. With a public endpoint, URLs are signed by a
 * second client whose endpoint is that origin (same credentials, region and addressing style). The
 * store must then see that host in the request: a proxy that keeps the Host header, an S3-compatible
 * server's public address, or an S3 endpoint such as a dual-stack one. A CDN that re-signs requests
 * to its origin needs URLs signed by the CDN instead, which this does not make.
 */
export class Presigner {
  /** The client URLs are signed with (the public endpoint's, when there is one). */
  readonly client: S3Client;

  constructor(
    private readonly dataClient: S3Client,
    private readonly bucket: string,
    publicEndpoint?: string,
  ) {
    const client = dataClient;
    this.client =
      publicEndpoint === undefined
        ? client
        : new S3Client({
            endpoint: publicEndpoint,
            region: client.config.region,
            credentials: client.config.credentials,
            forcePathStyle: client.config.forcePathStyle ?? false,
          });
  }

  async url(bucketKey: string, options: PresignOptions): Promise<string> {
    const { expiresInSeconds } = options;
    if (
      !Number.isInteger(expiresInSeconds) ||
      expiresInSeconds < 1 ||
      expiresInSeconds > MAX_EXPIRY_SECONDS
    ) {
      throw new RangeError(`presigned URL expiry ${expiresInSeconds} s is outside 1..${MAX_EXPIRY_SECONDS}`);
    }
    const input = {
      Bucket: this.bucket,
      Key: bucketKey,
      ...(options.contentType !== undefined && { ResponseContentType: options.contentType }),
      ...(options.filename !== undefined && { ResponseContentDisposition: attachment(options.filename) }),
    };
    const command = options.method === 'GET' ? new GetObjectCommand(input) : new HeadObjectCommand(input);
    return getSignedUrl(this.client, command, {
      expiresIn: expiresInSeconds,
      signingDate: signingDate(this.dataClient),
    });
  }
}

/**
 * The time to sign a presigned URL with: this machine's clock corrected by the offset the SDK learned
 * from the store's answers (it adjusts `systemClockOffset` when S3 says a request's time is skewed,
 * and retries). Requests the SDK sends itself are corrected that way; a presigned URL is not unless
 * we pass the date, and one signed with a clock that is off is refused by S3 ("Request is not valid
 * yet", or expired) although every other call works.
 */
export function signingDate(client: S3Client): Date {
  return new Date(Date.now() + (client.config.systemClockOffset ?? 0));
}

/**
 * A Content-Disposition naming the file (RFC 6266): an ASCII fallback for old clients, and the exact
 * name percent-encoded as UTF-8 for the others.
 */
function attachment(filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  const exact = encodeURIComponent(filename).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${exact}`;
}
