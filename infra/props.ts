import type { StackProps } from 'aws-cdk-lib';

/** A custom domain for the registry (`registry.example.com` instead of the execute-api host). */
export interface CustomDomain {
  readonly domainName: string;
  /** The Route 53 zone to validate the certificate in and to add the alias record to. */
  readonly hostedZone?: { readonly id: string; readonly name: string };
  /** An existing ACM certificate for the domain, in the stack's region (else one is created in the zone). */
  readonly certificateArn?: string;
}

export interface BerthProps extends StackProps {
  /** The team the registry belongs to: the stack is `berth-<team>`, and every resource is tagged with it. */
  readonly team: string;
  /**
   * Directory holding the Lambda bundles, `<dir>/<function>/index.mjs` (what `npm run build` writes
   * to dist/).
   */
  readonly bundlesDir: string;
  /** Lifetime of an ephemeral registry (`12h`, `7d`, `2w`): it deletes itself when the time is up. */
  readonly ttl?: string;
  /** An absolute expiry instead of `ttl`. */
  readonly expiresAt?: Date;
  /** The time `ttl` counts from (default: now, at synthesis). */
  readonly now?: Date;
  /** Repository patterns anyone may pull without logging in (`public/*`). */
  readonly anonymousPull?: readonly string[];
  readonly domain?: CustomDomain;
  /** Registry function memory, MB (default 1024; CPU grows with it, and hashing is CPU-bound). */
  readonly memoryMb?: number;
  /** Registry function timeout, seconds (default 29: API Gateway gives up at 30). */
  readonly timeoutSeconds?: number;
  /** Reserved concurrency of the registry function (default: none, the account's pool). */
  readonly reservedConcurrency?: number;
  /** Days to keep logs (default 30). */
  readonly logRetentionDays?: number;
  /**
   * Where alarms are sent: a new SNS topic with this e-mail subscribed. Alarms exist only with this or
   * `alarmTopicArn` (each alarm metric costs $0.10 a month; infra/alarms.ts lists them).
   */
  readonly alarmEmail?: string;
  /** An existing SNS topic to send alarms to (a team's pager), in the stack's account and region. */
  readonly alarmTopicArn?: string;
  /** `destroy` (default): deleting the stack deletes the data. `retain` keeps bucket, secrets and logs. */
  readonly removalPolicy?: 'destroy' | 'retain';
  /** Bucket encryption: S3-managed keys (default) or a customer-managed KMS key the stack creates. */
  readonly encryption?: 's3' | 'kms';
  /** Keep old object versions (default off: every object is content-addressed or rewritten whole). */
  readonly versioned?: boolean;
  /** Move blobs of 128 KiB and more to S3 Intelligent-Tiering, which moves cold ones to cheaper tiers. */
  readonly intelligentTiering?: boolean;
  /** Stage throttling, requests per second and burst (default 500 / 1000). */
  readonly throttle?: { readonly rateLimit: number; readonly burstLimit: number };
  /** Throttling of the token endpoint (logins), per second and burst (default 20 / 40). */
  readonly tokenThrottle?: { readonly rateLimit: number; readonly burstLimit: number };
  /** Minutes between scheduled janitor runs (default 1440: daily; an unfinished collection continues at once). */
  readonly janitorEveryMinutes?: number;
  /** Retention policy for garbage collection: serialized to JSON into BERTH_RETENTION. */
  readonly retention?: unknown;
  /** Tags a push may not move, `<repository pattern>[:<tag pattern>]` each: BERTH_IMMUTABLE_TAGS, comma-joined. */
  readonly immutableTags?: readonly string[];
  /**
   * Pull-through cache upstreams, `[<repository prefix>=]<url>` each (BERTH_PROXY_UPSTREAM): the
   * registry serves those repositories from the upstream, caching what it fetches.
   */
  readonly proxyUpstreams?: readonly string[];
  /** Seconds before a cached tag is re-checked against its upstream (BERTH_PROXY_TAG_TTL, default 300). */
  readonly proxyTagTtlSeconds?: number;
  /**
   * An existing SSM SecureString parameter (name or ARN) holding `{"username","password"}` for the
   * upstreams (BERTH_PROXY_PARAMETER); the registry role may read that parameter only. Encrypted
   * with the account's aws/ssm key (or the stack's key, with `encryption=kms`).
   */
  readonly proxyParameter?: string;
  /**
   * Web pages that may call the registry API from a browser (CORS): origins such as
   * `https://ui.example.com`, or `*` alone (any page, never with browser credentials). Passed to the
   * registry function as BERTH_CORS_ORIGINS; without it CORS is off.
   */
  readonly corsOrigins?: readonly string[];
  /** BERTH_LOG_LEVEL of the functions (default info). */
  readonly logLevel?: 'debug' | 'info' | 'warn' | 'error';
}
