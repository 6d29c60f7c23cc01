import * as z from 'zod';
import { parseUpstreams } from '../mirror/spec.ts';
import { parseImmutableTags, parseRetention } from '../registry/tag-policy.ts';
import { checkTlsHost } from './tls-hosts.ts';
import { parseCorsOrigins, type CorsPolicy } from '../http/cors.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A whole number, given as a number or as decimal digits (flags and environment are strings). */
const whole = z
  .union([z.number(), z.string().trim().regex(/^\d+$/, 'must be a whole number')])
  .transform(Number)
  .pipe(z.number().int());

const size = whole.pipe(z.number().positive());

/**
 * Optional text that `parse` must accept (its error message becomes the issue); the config keeps the
 * text, and the parsed form is built where it is used.
 */
function parsedBy(parse: (text: string) => unknown) {
  return z
    .string()
    .trim()
    .optional()
    .superRefine((value, ctx) => {
      if (!value) return;
      try {
        parse(value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    });
}

/** Everything Berth can be told, validated once at start; nothing below the entry points reads the environment. */
export const configSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: whole.pipe(z.number().min(0).max(65535)).default(5000),
  dataDir: z.string().min(1).default('./data'),
  logLevel: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  storage: z.enum(['filesystem', 's3']).default('filesystem'),
  s3: z
    .object({
      bucket: z.string().min(3).optional(),
      /** Keeps every key under `<prefix>/`, so that several registries can share a bucket. */
      prefix: z.string().optional(),
      region: z.string().min(1).default('us-east-1'),
      /** An S3-compatible server (MinIO, R2, Ceph) instead of AWS. */
      endpoint: z.url().optional(),
      forcePathStyle: z.boolean().default(false),
      /** The origin presigned URLs should name, when clients reach the store at another address. */
      publicEndpoint: z.url().optional(),
    })
    .prefault({}),
  /** Answer blob GETs with a 307 to a presigned storage URL (S3 only); off streams the bytes through Berth. */
  redirect: z.boolean().default(true),
  /** Lifetime of presigned URLs, in seconds. */
  presignTtlSeconds: whole
    .pipe(
      z
        .number()
        .min(1)
        .max(7 * 24 * 3600),
    )
    .default(900),
  /** Largest blob accepted, in bytes. */
  maxBlobSize: size.default(50 * GiB),
  /** Multipart part size: the most memory one upload request buffers. */
  partSize: whole
    .pipe(
      z
        .number()
        .min(5 * MiB)
        .max(5 * GiB),
    )
    .default(16 * MiB),
  /**
   * Direct uploads (docs/upload-extension.md) up to this size are verified within the completing
   * request; larger ones in the background (on AWS: by the verifier function).
   */
  verifySyncLimit: whole.pipe(z.number().min(0)).default(GiB),
  /** On AWS: the function (name or ARN) invoked to verify large direct uploads asynchronously. */
  verifierFunction: z.string().min(1).optional(),
  /** Let `POST ...?mount=<digest>` without `from` mount a blob any repository holds. */
  mountWithoutFrom: z.boolean().default(false),
  /** Upload sessions untouched this long are cancelled. */
  uploadTtlSeconds: size.default(24 * 3600),
  /**
   * How long a request's claim on an upload session holds without renewal (renewed every third of it
   * while the request runs): how long a request that crashed blocks its session. On the filesystem
   * store a restarted server frees such sessions at once.
   */
  uploadLeaseSeconds: size.pipe(z.number().min(3)).default(60),
  /**
   * Upload sessions one client (its account; without authentication, its address) may hold open at
   * once in this process (on Lambda: per container); more get 429 TOOMANYREQUESTS.
   */
  uploadSessionsPerClient: size.default(1000),
  /** Bytes one client may hold in upload sessions not yet completed (the same counting). */
  uploadBytesPerClient: size.default(64 * GiB),
  /** Accounts and the token signing key (written by `berth users`); set, authentication is on. */
  authFile: z.string().min(1).optional(),
  /**
   * On AWS: the SSM Parameter Store SecureString (name or ARN) holding the same JSON as the auth
   * file; the deployed stack's auth-bootstrap creates it. Takes precedence over authFile.
   */
  authParameter: z.string().min(1).optional(),
  /**
   * The AWS region of SSM and Lambda calls (BERTH_AWS_REGION, else AWS_REGION, else the S3
   * region): see awsRegionOf. A parameter ARN's own region wins over it.
   */
  awsRegion: z.string().min(1).optional(),
  /** How often a Lambda container re-checks the auth parameter: revocations take effect within this. */
  authCacheSeconds: whole.pipe(z.number().min(1).max(60)).default(30),
  /**
   * Lambda only: run the registry function without authentication. For tests and the local gateway
   * (which itself refuses to listen beyond loopback without an auth file); never on AWS.
   */
  insecureNoAuth: z.boolean().default(false),
  /** Lifetime of the bearer tokens the token endpoint issues. */
  tokenTtlSeconds: whole.pipe(z.number().min(60).max(3600)).default(300),
  /**
   * Local server and gateway: how long a client may take to send a request's headers (from its
   * first byte, or from the connection's opening), in seconds.
   */
  headersTimeoutSeconds: whole.pipe(z.number().min(1).max(600)).default(30),
  /**
   * How long a request body may go without its first byte, and the interval over which it must
   * advance by at least `bodyMinBytes`; a slower body is cut off. Time the server itself spends
   * not reading (a slow disk, a part upload to S3) does not count.
   */
  bodyTimeoutSeconds: whole.pipe(z.number().min(1).max(3600)).default(30),
  /** The least a request body must advance by in every `bodyTimeoutSeconds` (bytes). */
  bodyMinBytes: whole.pipe(z.number().min(1)).default(16 * 1024),
  /** How long an idle keep-alive connection stays open between requests, in seconds. */
  keepAliveTimeoutSeconds: whole.pipe(z.number().min(1).max(600)).default(5),
  /**
   * `/token` (and anything a client may send before it has a token) must be sent whole within this
   * many seconds; its body is at most a few KiB.
   */
  unauthTimeoutSeconds: whole.pipe(z.number().min(1).max(600)).default(10),
  /**
   * Connections open at once, in total; more are answered 503 with Retry-After. When the process
   * may open fewer files than this needs, the default is lowered to fit (lib/server/connections.ts).
   */
  maxConnections: whole.pipe(z.number().min(1)).optional(),
  /** Connections open at once from one address (one /64 for IPv6); more are answered 503. */
  maxConnectionsPerAddress: whole.pipe(z.number().min(1)).optional(),
  /**
   * Set by `berth serve --lambda` for its function, not by users: the key that signs the local
   * storage URLs blob GETs are redirected to on the filesystem store (lib/storage/local-urls.ts).
   */
  localStorageKey: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits')
    .optional(),
  /** How long SIGTERM waits for requests in flight before closing their connections. */
  shutdownGraceSeconds: size.default(30),
  /** Retention rules (JSON, docs/gc.md): what garbage collection deletes per repository pattern. */
  retention: parsedBy(parseRetention),
  /** A file holding the retention rules' JSON (for humans; BERTH_RETENTION wins when both are set). */
  retentionFile: z.string().min(1).optional(),
  /** Tags a push may not move: comma-separated `<repository pattern>[:<tag pattern>]`. */
  immutableTags: parsedBy(parseImmutableTags),
  /** Garbage collection leaves alone anything touched more recently than this (seconds). */
  gcGraceSeconds: whole.pipe(z.number().min(0)).default(24 * 3600),
  /**
   * The janitor starts a new collection at most this often (seconds); a collection in progress is
   * carried forward on every run. Each collection lists the whole store, so running one every 15
   * minutes would make an idle registry pay for listings.
   */
  gcIntervalSeconds: whole.pipe(z.number().min(0)).default(24 * 3600),
  /**
   * Pull-through cache: comma-separated `[<prefix>=]<url>` upstreams (lib/mirror/spec.ts); repositories
   * they cover are read-only copies of the upstream.
   */
  proxyUpstream: parsedBy(parseUpstreams),
  /** A cached tag is confirmed against the upstream (one HEAD) once it is this old; 0 asks every time. */
  proxyTagTtlSeconds: whole.pipe(z.number().min(0)).default(300),
  /** Upstream credentials; never logged. */
  proxyUsername: z.string().min(1).optional(),
  proxyPassword: z.string().min(1).optional(),
  /** On AWS: an SSM SecureString parameter (name or ARN) with `{"username","password"}` for the upstreams. */
  proxyParameter: z.string().min(1).optional(),
  /** Lambda: how long a request may spend copying an uncached blob from the upstream into the store. */
  proxyFillSeconds: whole.pipe(z.number().min(1).max(900)).default(20),
  /** A name the web UI shows for this registry (the team, on AWS). */
  registryName: z.string().trim().min(1).max(100).optional(),
  /** When this registry deletes itself (an ephemeral registry: the stack's ttl sets it); the web UI shows it. */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  /** Local server: serve the web UI at `/` (from the built dist/web). */
  web: z.boolean().default(true),
  /** Local server: serve HTTPS with this certificate chain (PEM) and key; both files are re-read when they change. */
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  /** Local server: serve HTTPS with a local CA and certificate kept in `<dataDir>/tls` (lib/server/self-signed.ts). */
  tlsSelfSigned: z.boolean().default(false),
  /**
   * Browser origins that may call the API (CORS), comma-separated `http(s)://host[:port]`, or `*`
   * alone (lib/http/cors.ts); unset, CORS is off.
   */
  corsOrigins: parsedBy(parseCorsOrigins),
  /** Comma-separated names and addresses for the self-signed certificate (default: loopback and --host). */
  tlsHosts: z
    .string()
    .trim()
    .optional()
    .superRefine((value, ctx) => {
      for (const host of (value ?? '').split(',').map((h) => h.trim())) {
        const problem = host === '' ? undefined : checkTlsHost(host);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }
    }),
});

export type Config = z.infer<typeof configSchema>;

const checkedSchema = configSchema
  .refine((c) => (c.proxyUsername === undefined) === (c.proxyPassword === undefined), {
    message: 'upstream credentials need both BERTH_PROXY_USERNAME and BERTH_PROXY_PASSWORD',
    path: ['proxyPassword'],
  })
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), {
    message: 'HTTPS needs both --tls-cert and --tls-key (BERTH_TLS_CERT, BERTH_TLS_KEY)',
    path: ['tlsKey'],
  })
  .refine((c) => !(c.tlsSelfSigned && c.tlsCert !== undefined), {
    message: '--tls-self-signed makes its own certificate: leave out --tls-cert and --tls-key',
    path: ['tlsSelfSigned'],
  })
  .refine((c) => c.tlsHosts === undefined || c.tlsSelfSigned, {
    message: '--tls-hosts names the hosts of the --tls-self-signed certificate: add --tls-self-signed',
    path: ['tlsHosts'],
  })
  .refine((c) => c.storage !== 's3' || c.s3.bucket !== undefined, {
    message: 'the s3 store needs a bucket (BERTH_S3_BUCKET)',
    path: ['s3', 'bucket'],
  })
  .refine((c) => c.authFile !== undefined || c.authParameter !== undefined || isLoopback(c.host), {
    message:
      'listening beyond loopback needs authentication: create accounts with `berth users add` and pass --auth-file',
    path: ['authFile'],
  });

/** Addresses only this machine can reach, where running without authentication is allowed. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
export type ConfigInput = z.input<typeof configSchema>;

export function parseConfig(input: ConfigInput): Config {
  const result = checkedSchema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || 'config'}: ${i.message}`);
    throw new ConfigError(problems);
  }
  return result.data;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** The region of the AWS calls besides S3 (SSM, Lambda): BERTH_AWS_REGION, AWS_REGION, then the S3 region. */
export function awsRegionOf(config: Pick<Config, 'awsRegion' | 's3'>): string {
  return config.awsRegion ?? config.s3.region;
}

/** The CORS policy the configuration names, or undefined when CORS is off. */
export function corsPolicyOf(config: Pick<Config, 'corsOrigins'>): CorsPolicy | undefined {
  return config.corsOrigins ? parseCorsOrigins(config.corsOrigins) : undefined;
}
