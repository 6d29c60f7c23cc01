import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl, S3RequestPresigner } from '@aws-sdk/s3-request-presigner';

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
 *
 * Every blob GET signs one URL, so signing is on the pull's hot path. The SDK's `getSignedUrl` runs
 * the command's whole middleware stack (endpoint rules, serialization) and builds a new signer, with
 * an empty signing-key cache, for every URL: about 0.5 ms of CPU each, more than the rest of the
 * request. Nothing it computes depends on the key but the path, so the first URL of each method is
 * signed by `getSignedUrl` and teaches the rest (`UrlTemplate`): the endpoint's origin and path
 * prefix, the query parameters the SDK adds, the signing region and service. Later URLs are the same
 * request with the key's path and the response overrides, signed by one long-lived
 * `S3RequestPresigner` (the SDK's signer, keeping its signing keys per day, region and credentials).
 * test/storage/s3-presign.test.ts checks that both give the same URL, byte for byte.
 */
export class Presigner {
  /** The client URLs are signed with (the public endpoint's, when there is one). */
  readonly client: S3Client;
  private readonly signer: S3RequestPresigner;
  /** Per method: what the first URL taught, or undefined when URLs are always signed the SDK's way. */
  private readonly templates = new Map<PresignOptions['method'], Promise<UrlTemplate | undefined>>();

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
    this.signer = new S3RequestPresigner({ ...this.client.config });
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
    const signing = { expiresIn: expiresInSeconds, signingDate: signingDate(this.dataClient) };
    let template = this.templates.get(options.method);
    if (!template) {
      // The first URL of a method: the SDK's own way, which the template is read from.
      const learned = this.sdkUrl(bucketKey, options, signing).then((url) => ({
        url,
        template: UrlTemplate.from(url, bucketKey),
      }));
      template = learned.then((l) => l.template);
      this.templates.set(options.method, template);
      // A failure (credentials not available yet, say) is not kept: the next URL tries again.
      template.catch(() => this.templates.delete(options.method));
      return (await learned).url;
    }
    const t = await template;
    if (!t) return this.sdkUrl(bucketKey, options, signing);
    const query: Record<string, string> = { ...t.query };
    if (options.contentType !== undefined) query['response-content-type'] = options.contentType;
    if (options.filename !== undefined) query['response-content-disposition'] = attachment(options.filename);
    const signed = await this.signer.presign(
      {
        method: options.method,
        protocol: t.protocol,
        hostname: t.hostname,
        ...(t.port !== undefined && { port: t.port }),
        path: t.pathPrefix + encodeKey(bucketKey),
        query,
        headers: { host: t.host },
      },
      { ...signing, signingRegion: t.region, signingService: t.service },
    );
    return `${t.protocol}//${t.host}${signed.path}?${queryString(signed.query)}`;
  }

  /** A URL signed the SDK's way: the command through the client's middleware stack. */
  private sdkUrl(
    bucketKey: string,
    options: PresignOptions,
    signing: { expiresIn: number; signingDate: Date },
  ): Promise<string> {
    const input = {
      Bucket: this.bucket,
      Key: bucketKey,
      ...(options.contentType !== undefined && { ResponseContentType: options.contentType }),
      ...(options.filename !== undefined && { ResponseContentDisposition: attachment(options.filename) }),
    };
    const command = options.method === 'GET' ? new GetObjectCommand(input) : new HeadObjectCommand(input);
    return getSignedUrl(this.client, command, signing);
  }
}

/**
 * What a presigned URL of one method has in common with every other of this bucket and client,
 * read from one the SDK signed: where the bucket's objects are (origin and path prefix), the query
 * parameters the SDK adds to every such request (`x-id`, `x-amz-checksum-mode`), and the scope it
 * signed for (region, service).
 */
class UrlTemplate {
  private constructor(
    readonly protocol: string,
    readonly hostname: string,
    readonly port: number | undefined,
    /** `hostname[:port]`, as the URL and its signed `host` header name it. */
    readonly host: string,
    readonly pathPrefix: string,
    readonly query: Readonly<Record<string, string>>,
    readonly region: string,
    readonly service: string,
  ) {}

  /**
   * The template of a URL the SDK signed for `bucketKey`; undefined for anything but a plain SigV4
   * URL signing the host header alone (SigV4a for multi-region access points, S3 Express sessions),
   * which are then always signed the SDK's way.
   */
  static from(signedUrl: string, bucketKey: string): UrlTemplate | undefined {
    const url = new URL(signedUrl);
    const keyPath = encodeKey(bucketKey);
    if (!url.pathname.endsWith(keyPath)) return undefined;
    const params = url.searchParams;
    if (params.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256' || params.get('X-Amz-SignedHeaders') !== 'host')
      return undefined;
    // X-Amz-Credential: <access key>/<yyyymmdd>/<region>/<service>/aws4_request
    const scope = params.get('X-Amz-Credential')?.split('/') ?? [];
    const [region, service] = [scope[scope.length - 3], scope[scope.length - 2]];
    if (scope.length < 5 || !region || !service) return undefined;
    const query: Record<string, string> = {};
    for (const [name, value] of params) {
      if (name.startsWith('X-Amz-')) {
        if (!SIGV4_PARAMS.has(name)) return undefined;
      } else if (!name.startsWith('response-')) query[name] = value;
    }
    return new UrlTemplate(
      url.protocol,
      url.hostname,
      url.port === '' ? undefined : Number(url.port),
      url.host,
      url.pathname.slice(0, url.pathname.length - keyPath.length),
      query,
      region,
      service,
    );
  }
}

/** The query parameters SigV4 presigning writes (the session token's with temporary credentials). */
const SIGV4_PARAMS = new Set([
  'X-Amz-Algorithm',
  'X-Amz-Content-Sha256',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-Security-Token',
  'X-Amz-Signature',
  'X-Amz-SignedHeaders',
]);

/** RFC 3986 escaping as the SDK applies it to query strings and URI labels. */
function escapeUri(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** An object key as the path of its request: each `/`-separated segment escaped (S3's greedy label). */
function encodeKey(key: string): string {
  return key.split('/').map(escapeUri).join('/');
}

/** The query of a signed request, as the SDK writes it into the URL: names sorted, both sides escaped. */
function queryString(query: Record<string, string | string[] | null> | undefined): string {
  return Object.keys(query ?? {})
    .sort()
    .flatMap((name) => {
      const value = query![name];
      const values = Array.isArray(value) ? value : [value];
      return values.map((v) =>
        v === null || v === undefined ? escapeUri(name) : `${escapeUri(name)}=${escapeUri(v)}`,
      );
    })
    .join('&');
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
