import * as z from 'zod';
import { parseUpstreams, type UpstreamSpec } from '../mirror/spec.ts';
import { parseImmutableTags, parseRetention, type ImmutableRule } from '../registry/tag-policy.ts';
import { parseCorsOrigins, type CorsPolicy } from '../http/cors.ts';
import { checkTlsHost } from './tls-hosts.ts';
import { parseDuration } from '../gc/duration.ts';

// Every option Berth takes, declared once: its schema (type, bounds, default), the environment
// variables and the command-line flag that set it, and the text that describes it. The zod schema
// (config.ts), the environment mapping (sources.ts), the CLI flags and help (bin/) and the README's
// configuration table (`npm run docs:options`, kept in sync by test/unit/options.test.ts) are all
// made from OPTIONS.

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A whole number, given as a number or as decimal digits (flags and environment are strings). */
const whole = () =>
  z
    .union([z.number(), z.string().trim().regex(/^\d+$/, 'must be a whole number')])
    .transform(Number)
    .pipe(z.number().int());

const size = () => whole().pipe(z.number().positive());

/**
 * Optional text read by `parse` in the same pass that validates it (its error message becomes the
 * issue): the config holds the parsed value, and nothing parses the text again.
 */
function parsedBy<T>(parse: (text: string) => T) {
  return z
    .string()
    .trim()
    .optional()
    .transform((value, ctx): T | undefined => {
      if (!value) return undefined;
      try {
        return parse(value);
      } catch (err) {
        // `continue`: the other checks still run, so that every problem is listed at once.
        ctx.addIssue({ code: 'custom', message: (err as Error).message, continue: true });
        return z.NEVER;
      }
    });
}

/** The commands that take configuration flags. */
export type Command = 'serve' | 'gc' | 'usage' | 'fsck';

export interface OptionFlag {
  /** Without the leading `--`. */
  readonly name: string;
  /** What the flag's value is, in the help (`<n>`); absent for a boolean flag. */
  readonly arg?: string;
  /** Repeatable: the values are joined with commas, as the environment variable holds them. */
  readonly multiple?: boolean;
  /** A boolean flag that turns the option off (`--no-redirect`). */
  readonly negates?: boolean;
  /** The commands that take it (default: serve). */
  readonly commands?: readonly Command[];
  /** Turns the flag's text into the option's (`--grace 24h` sets seconds); throws a message for people. */
  readonly convert?: (text: string) => string;
}

export interface Option<S extends z.ZodType = z.ZodType> {
  /**
   * Its zod schema (type, bounds, default), built on first call: the configuration of a process
   * builds only the schemas of the options it is given (config.ts, `parseConfig`).
   */
  readonly schema: () => S;
  /** The schema's default: what the option is when absent, without building the schema. */
  readonly default?: z.output<S>;
  /** The environment variables that set it, in rising precedence (the last one set wins). */
  readonly env: readonly string[];
  /** Environment text read as a boolean: 1/true/yes/on and 0/false/no/off (any case). */
  readonly boolean?: boolean;
  readonly flag?: OptionFlag;
  /** What it means (Markdown; the help shows it without the backquotes). */
  readonly doc: string;
  /** The default as people should read it, when it is not simply the schema's default value. */
  readonly defaultDoc?: string;
  /** Writes a parsed value back as its environment variable's text (`berth serve --lambda`). */
  readonly toEnv?: (value: z.output<S>) => string;
}

function option<S extends z.ZodType>(spec: Option<S>): Option<S> {
  let built: S | undefined;
  return { ...spec, schema: () => (built ??= spec.schema()) };
}

const STORE: readonly Command[] = ['serve', 'gc', 'usage', 'fsck'];

/**
 * The options, in the order the README and the help list them and the schema checks them (a
 * configuration with several problems lists them in this order). Keys are config paths (`s3.bucket`).
 */
export const OPTIONS = {
  host: option({
    schema: () => z.string().min(1).default('127.0.0.1'),
    default: '127.0.0.1',
    env: ['BERTH_HOST'],
    flag: { name: 'host', arg: '<addr>' },
    doc: 'Address to listen on (`0.0.0.0` for every interface); any address beyond loopback needs `--auth-file`',
  }),
  port: option({
    schema: () => whole().pipe(z.number().min(0).max(65535)).default(5000),
    default: 5000,
    env: ['PORT', 'BERTH_PORT'],
    flag: { name: 'port', arg: '<n>' },
    doc: 'Port (0: any free port)',
  }),
  dataDir: option({
    schema: () => z.string().min(1).default('./data'),
    default: './data',
    env: ['BERTH_DATA_DIR'],
    flag: { name: 'data-dir', arg: '<dir>', commands: STORE },
    doc: 'Filesystem store location (one server process per directory)',
  }),
  logLevel: option({
    schema: () => z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
    default: 'info',
    env: ['BERTH_LOG_LEVEL'],
    flag: { name: 'log-level', arg: '<level>', commands: STORE },
    doc: '`debug`, `info`, `warn`, `error` or `silent`',
  }),
  storage: option({
    schema: () => z.enum(['filesystem', 's3']).default('filesystem'),
    default: 'filesystem',
    env: ['BERTH_STORAGE'],
    flag: { name: 'storage', arg: '<kind>', commands: STORE },
    doc: '`filesystem` or `s3` (the Lambda functions default to `s3`)',
  }),
  's3.bucket': option({
    schema: () => z.string().min(3).optional(),
    env: ['BERTH_S3_BUCKET'],
    doc: 'Bucket (required for `s3`)',
  }),
  's3.prefix': option({
    schema: () => z.string().optional(),
    env: ['BERTH_S3_PREFIX'],
    doc: 'Key prefix, so registries can share a bucket',
  }),
  's3.region': option({
    schema: () => z.string().min(1).default('us-east-1'),
    default: 'us-east-1',
    env: ['BERTH_S3_REGION'],
    doc: "The bucket's region (on Lambda: the function's, `AWS_REGION`)",
  }),
  's3.endpoint': option({
    schema: () => z.url().optional(),
    env: ['BERTH_S3_ENDPOINT'],
    doc: 'S3-compatible endpoint (MinIO, R2, Ceph RGW)',
  }),
  's3.forcePathStyle': option({
    schema: () => z.boolean().default(false),
    default: false,
    env: ['BERTH_S3_FORCE_PATH_STYLE'],
    boolean: true,
    doc: 'Path-style bucket addressing, which most S3-compatible servers need',
  }),
  's3.publicEndpoint': option({
    schema: () => z.url().optional(),
    env: ['BERTH_S3_PUBLIC_ENDPOINT'],
    doc: 'The origin presigned URLs should name when clients reach the store at another address',
  }),
  redirect: option({
    schema: () => z.boolean().default(true),
    default: true,
    env: ['BERTH_REDIRECT'],
    boolean: true,
    flag: { name: 'no-redirect', negates: true },
    doc: 'Answer blob GETs with a 307 to a presigned S3 URL; `off` (`--no-redirect`) streams the bytes through Berth instead, for clients that cannot reach S3',
  }),
  presignTtlSeconds: option({
    schema: () =>
      whole()
        .pipe(
          z
            .number()
            .min(1)
            .max(7 * 24 * 3600),
        )
        .default(900),
    default: 900,
    env: ['BERTH_PRESIGN_TTL'],
    doc: 'Lifetime of presigned URLs, in seconds',
  }),
  maxBlobSize: option({
    schema: () => size().default(50 * GiB),
    default: 50 * GiB,
    env: ['BERTH_MAX_BLOB_SIZE'],
    flag: { name: 'max-blob-size', arg: '<n>' },
    doc: 'Largest blob accepted, in bytes (413 `SIZE_INVALID` above)',
  }),
  partSize: option({
    schema: () =>
      whole()
        .pipe(
          z
            .number()
            .min(5 * MiB)
            .max(5 * GiB),
        )
        .default(16 * MiB),
    default: 16 * MiB,
    env: ['BERTH_PART_SIZE'],
    doc: 'Multipart part size (bytes): the memory one upload request buffers',
  }),
  verifySyncLimit: option({
    schema: () => whole().pipe(z.number().min(0)).default(GiB),
    default: GiB,
    env: ['BERTH_VERIFY_SYNC_LIMIT'],
    doc: 'Direct uploads up to this size (bytes) are verified within the completing request; larger ones asynchronously (docs/upload-extension.md)',
  }),
  verifierFunction: option({
    schema: () => z.string().min(1).optional(),
    env: ['BERTH_VERIFIER_FUNCTION'],
    doc: 'On AWS: the verifier function (name or ARN) the registry function invokes for asynchronous verification',
  }),
  mountWithoutFrom: option({
    schema: () => z.boolean().default(false),
    default: false,
    env: ['BERTH_MOUNT_WITHOUT_FROM'],
    boolean: true,
    flag: { name: 'mount-without-from' },
    doc: 'Let `POST …/blobs/uploads/?mount=<digest>` without `from` link a blob held by any repository. Off by default: with it, anyone who can push can obtain any blob whose digest they know',
  }),
  uploadTtlSeconds: option({
    schema: () => size().default(24 * 3600),
    default: 24 * 3600,
    env: ['BERTH_UPLOAD_TTL'],
    doc: 'Upload sessions untouched this long (seconds) are cancelled',
  }),
  uploadLeaseSeconds: option({
    schema: () => size().pipe(z.number().min(3)).default(60),
    default: 60,
    env: ['BERTH_UPLOAD_LEASE_SECONDS'],
    doc: 'How long a request that crashed keeps its upload session from others (renewed while a live request runs); on the filesystem store a restart frees them at once',
  }),
  uploadSessionsPerClient: option({
    schema: () => size().default(1000),
    default: 1000,
    env: ['BERTH_UPLOAD_SESSIONS_PER_CLIENT'],
    doc: 'Upload sessions one client (its account; without authentication, its address) may hold open; more get 429 `TOOMANYREQUESTS`. Counted per process (on Lambda, per container)',
  }),
  uploadBytesPerClient: option({
    schema: () => size().default(64 * GiB),
    default: 64 * GiB,
    env: ['BERTH_UPLOAD_BYTES_PER_CLIENT'],
    doc: 'Bytes one client may hold in upload sessions not yet completed; a request beyond it gets 429',
  }),
  authFile: option({
    schema: () => z.string().min(1).optional(),
    env: ['BERTH_AUTH_FILE'],
    flag: { name: 'auth-file', arg: '<file>' },
    doc: 'Accounts and token signing key (written by `berth users`); turns authentication on. Required for any `--host` beyond loopback',
  }),
  authParameter: option({
    schema: () => z.string().min(1).optional(),
    env: ['BERTH_AUTH_PARAMETER'],
    doc: 'On AWS: the SSM SecureString parameter (name or ARN) holding the auth file\'s JSON; the stack sets it. Turns authentication on and takes precedence over the auth file. (`BERTH_AUTH_SECRET`, Secrets Manager, is refused: docs/deployment.md, "Migrating from Secrets Manager")',
  }),
  awsRegion: option({
    schema: () => z.string().min(1).optional(),
    env: ['AWS_REGION', 'BERTH_AWS_REGION'],
    defaultDoc: 'the S3 region',
    doc: "The region of AWS calls other than S3 (SSM parameters, the verifier function; a parameter ARN's own region wins). Lets the bucket be in another region than the function",
  }),
  authCacheSeconds: option({
    schema: () => whole().pipe(z.number().min(1).max(60)).default(30),
    default: 30,
    env: ['BERTH_AUTH_CACHE_SECONDS'],
    doc: 'How often a container re-checks the auth parameter (1 to 60): revocations take effect within this',
  }),
  insecureNoAuth: option({
    schema: () => z.boolean().default(false),
    default: false,
    env: ['BERTH_INSECURE_NO_AUTH'],
    boolean: true,
    doc: 'Lambda only: run the registry function without an auth file (tests; the local gateway sets it on loopback). Never on AWS',
  }),
  tokenTtlSeconds: option({
    schema: () => whole().pipe(z.number().min(60).max(3600)).default(300),
    default: 300,
    env: ['BERTH_TOKEN_TTL'],
    doc: 'Lifetime of issued tokens, in seconds (60 to 3600)',
  }),
  headersTimeoutSeconds: option({
    schema: () => whole().pipe(z.number().min(1).max(600)).default(30),
    default: 30,
    env: ['BERTH_HEADERS_TIMEOUT'],
    doc: "Seconds to send a request's headers (and the TLS handshake); 408 after",
  }),
  bodyTimeoutSeconds: option({
    schema: () => whole().pipe(z.number().min(1).max(3600)).default(30),
    default: 30,
    env: ['BERTH_BODY_TIMEOUT'],
    doc: "Seconds to a request body's first byte, and the interval in which it must advance by `BERTH_BODY_MIN_BYTES`; the same floor for a response being read. Server-side waits do not count",
  }),
  bodyMinBytes: option({
    schema: () =>
      whole()
        .pipe(z.number().min(1))
        .default(16 * 1024),
    default: 16 * 1024,
    env: ['BERTH_BODY_MIN_BYTES'],
    doc: 'Bytes a body (or a response) must advance by in every `BERTH_BODY_TIMEOUT` (about 550 B/s by default: slow links pass, stalled clients do not)',
  }),
  keepAliveTimeoutSeconds: option({
    schema: () => whole().pipe(z.number().min(1).max(600)).default(5),
    default: 5,
    env: ['BERTH_KEEPALIVE_TIMEOUT'],
    doc: 'Seconds an idle keep-alive connection stays open',
  }),
  unauthTimeoutSeconds: option({
    schema: () => whole().pipe(z.number().min(1).max(600)).default(10),
    default: 10,
    env: ['BERTH_UNAUTH_TIMEOUT'],
    doc: 'Seconds a `/token` request has to arrive whole (its body is at most 8 KiB)',
  }),
  maxConnections: option({
    schema: () => whole().pipe(z.number().min(1)).optional(),
    env: ['BERTH_MAX_CONNECTIONS'],
    flag: { name: 'max-connections', arg: '<n>' },
    defaultDoc: '1000',
    doc: 'Connections open at once (local server and `--lambda` gateway); more are answered 503 `UNAVAILABLE` with `Retry-After: 5`. Unset, lowered to a third of the open-file limit less 64',
  }),
  maxConnectionsPerAddress: option({
    schema: () => whole().pipe(z.number().min(1)).optional(),
    env: ['BERTH_MAX_CONNECTIONS_PER_ADDRESS'],
    flag: { name: 'max-connections-per-address', arg: '<n>' },
    defaultDoc: '128',
    doc: "The same per client address (an IPv6 /64); unset, at most half the total. Behind a reverse proxy every client shares the proxy's address: raise it",
  }),
  localStorageKey: option({
    schema: () =>
      z
        .string()
        .regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits')
        .optional(),
    env: ['BERTH_LOCAL_STORAGE_KEY'],
    doc: 'Set by `berth serve --lambda` for its function, not by users: signs the storage URLs blob GETs redirect to on the filesystem store (docs/lambda.md)',
  }),
  shutdownGraceSeconds: option({
    schema: () => size().default(30),
    default: 30,
    env: ['BERTH_SHUTDOWN_GRACE'],
    doc: 'On SIGTERM, seconds to let requests in flight finish',
  }),
  retention: option({
    schema: () => parsedBy(parseRetention),
    env: ['BERTH_RETENTION'],
    doc: 'Retention rules, JSON: `[{"repositories","keepLast","deleteOlderThanDays","keepTags","untaggedAfterDays"}]` (docs/gc.md); applied by `berth gc` and the janitor',
    toEnv: (rules) => JSON.stringify(rules),
  }),
  retentionFile: option({
    schema: () => z.string().min(1).optional(),
    env: ['BERTH_RETENTION_FILE'],
    flag: { name: 'retention-file', arg: '<file>', commands: ['gc'] },
    doc: 'A file holding the retention rules, read at start; `BERTH_RETENTION` wins',
  }),
  immutableTags: option({
    schema: () => parsedBy<ImmutableRule[]>(parseImmutableTags),
    env: ['BERTH_IMMUTABLE_TAGS'],
    doc: 'Tags pushes may not move: comma-separated `<repository pattern>[:<tag pattern>]`, e.g. `prod/*,team-a/*:v*`',
    toEnv: (rules) =>
      (rules ?? [])
        .map((r) => (r.tags === undefined ? r.repositories : `${r.repositories}:${r.tags}`))
        .join(','),
  }),
  gcGraceSeconds: option({
    schema: () =>
      whole()
        .pipe(z.number().min(0))
        .default(24 * 3600),
    default: 24 * 3600,
    env: ['BERTH_GC_GRACE'],
    flag: {
      name: 'grace',
      arg: '<duration>',
      commands: ['gc', 'fsck'],
      convert: (text) => String(Math.round(parseDuration(text) / 1000)),
    },
    doc: 'Garbage collection leaves alone anything written more recently than this, and `berth fsck` does not judge catalog and referrer entries younger than it (seconds; the flag takes a duration: `90s`, `30m`, `24h`, `7d`)',
  }),
  gcIntervalSeconds: option({
    schema: () =>
      whole()
        .pipe(z.number().min(0))
        .default(24 * 3600),
    default: 24 * 3600,
    env: ['BERTH_GC_INTERVAL'],
    doc: 'The janitor (AWS) starts a new collection at most this often (seconds); one in progress continues every run',
  }),
  proxyUpstream: option({
    schema: () => parsedBy<UpstreamSpec[]>(parseUpstreams),
    env: ['BERTH_PROXY_UPSTREAM'],
    flag: { name: 'proxy-upstream', arg: '<[prefix=]url>', multiple: true },
    doc: 'Pull-through cache of `[<prefix>=]<url>`, e.g. `https://registry-1.docker.io` for Docker Hub (repeatable; comma-separated in the variable). No prefix: every repository not under another prefix. Mirrored repositories are read-only',
    toEnv: (specs) => (specs ?? []).map((s) => (s.prefix ? `${s.prefix}=${s.url}` : s.url)).join(','),
  }),
  proxyTagTtlSeconds: option({
    schema: () => whole().pipe(z.number().min(0)).default(300),
    default: 300,
    env: ['BERTH_PROXY_TAG_TTL'],
    flag: { name: 'proxy-tag-ttl', arg: '<s>' },
    doc: 'Seconds a cached tag is served before one `HEAD` to the upstream confirms it (0: every time)',
  }),
  proxyUsername: option({
    schema: () => z.string().min(1).optional(),
    env: ['BERTH_PROXY_USERNAME'],
    doc: "Upstream credentials (with `BERTH_PROXY_PASSWORD`), sent to the upstream's token realm; never logged",
  }),
  proxyPassword: option({
    schema: () => z.string().min(1).optional(),
    env: ['BERTH_PROXY_PASSWORD'],
    doc: 'The upstream password (with `BERTH_PROXY_USERNAME`)',
  }),
  proxyParameter: option({
    schema: () => z.string().min(1).optional(),
    env: ['BERTH_PROXY_PARAMETER'],
    doc: 'On AWS: SSM SecureString parameter (name or ARN) with `{"username","password"}` for the upstream, re-read every 15 minutes',
  }),
  proxyFillSeconds: option({
    schema: () => whole().pipe(z.number().min(1).max(900)).default(20),
    default: 20,
    env: ['BERTH_PROXY_FILL_SECONDS'],
    doc: 'Lambda: how long a request may spend copying an uncached blob into S3 before giving up (see docs/docker-setup.md)',
  }),
  registryName: option({
    schema: () => z.string().trim().min(1).max(100).optional(),
    env: ['BERTH_REGISTRY_NAME'],
    doc: 'A name the web UI shows for this registry (the stack sets the team)',
  }),
  expiresAt: option({
    schema: () => z.iso.datetime({ offset: true }).optional(),
    env: ['BERTH_EXPIRES_AT'],
    doc: 'When this registry deletes itself (ISO 8601); the web UI shows it (the stack sets it from `ttl`)',
  }),
  web: option({
    schema: () => z.boolean().default(true),
    default: true,
    env: ['BERTH_WEB'],
    boolean: true,
    doc: '`off`: `berth serve` serves no web UI at `/` (the registry is unchanged)',
  }),
  tlsCert: option({
    schema: () => z.string().min(1).optional(),
    env: ['BERTH_TLS_CERT'],
    flag: { name: 'tls-cert', arg: '<pem>' },
    doc: 'Serve HTTPS with this certificate (PEM, chain after it allowed); with `--tls-key`. Both files are re-read when they change (docs/docker-setup.md)',
  }),
  tlsKey: option({
    schema: () => z.string().min(1).optional(),
    env: ['BERTH_TLS_KEY'],
    flag: { name: 'tls-key', arg: '<pem>' },
    doc: "The certificate's private key (unencrypted PEM)",
  }),
  tlsSelfSigned: option({
    schema: () => z.boolean().default(false),
    default: false,
    env: ['BERTH_TLS_SELF_SIGNED'],
    boolean: true,
    flag: { name: 'tls-self-signed' },
    doc: 'Serve HTTPS with a certificate from a local CA kept in `<data-dir>/tls`; prints the commands that make docker, podman and containerd trust it',
  }),
  corsOrigins: option({
    schema: () => parsedBy<CorsPolicy | undefined>(parseCorsOrigins),
    env: ['BERTH_CORS_ORIGINS'],
    flag: { name: 'cors-origin', arg: '<origin>', multiple: true },
    defaultDoc: 'off',
    doc: 'Let pages from this origin (`https://ui.example.com`) call the API from a browser (CORS). Repeatable (comma-separated in the variable); `*` alone: any page, no browser credentials',
    toEnv: (policy) =>
      policy === undefined ? '' : policy.origins === '*' ? '*' : [...policy.origins].join(','),
  }),
  tlsHosts: option({
    schema: () =>
      z
        .string()
        .trim()
        .optional()
        .transform((value, ctx) => {
          if (value === undefined) return undefined;
          const hosts = value
            .split(',')
            .map((h) => h.trim())
            .filter((h) => h !== '');
          for (const host of hosts) {
            const problem = checkTlsHost(host);
            if (problem) ctx.addIssue({ code: 'custom', message: problem, continue: true });
          }
          return hosts;
        }),
    env: ['BERTH_TLS_HOSTS'],
    flag: { name: 'tls-hosts', arg: '<list>' },
    defaultDoc: 'loopback',
    doc: 'Comma-separated names and addresses the self-signed certificate covers (default `localhost`, `127.0.0.1`, `::1` and `--host` when it is a specific address)',
    toEnv: (hosts) => (hosts ?? []).join(','),
  }),
};

export type OptionPath = keyof typeof OPTIONS;

/** The options as a list, each with its config path. */
export const OPTION_LIST: readonly (Option & { readonly path: string })[] = Object.entries(OPTIONS).map(
  ([path, spec]) => ({ ...(spec as Option), path }),
);
