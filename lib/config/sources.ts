import { ConfigError, type ConfigInput } from './config.ts';

/** The environment variables Berth reads, and the config field each sets (dotted for nested fields). */
export const ENV_VARS: Record<string, string> = {
  PORT: 'port',
  BERTH_PORT: 'port',
  BERTH_HOST: 'host',
  BERTH_DATA_DIR: 'dataDir',
  BERTH_LOG_LEVEL: 'logLevel',
  BERTH_STORAGE: 'storage',
  BERTH_MAX_BLOB_SIZE: 'maxBlobSize',
  BERTH_PART_SIZE: 'partSize',
  BERTH_MOUNT_WITHOUT_FROM: 'mountWithoutFrom',
  BERTH_UPLOAD_TTL: 'uploadTtlSeconds',
  BERTH_UPLOAD_LEASE_SECONDS: 'uploadLeaseSeconds',
  BERTH_UPLOAD_SESSIONS_PER_CLIENT: 'uploadSessionsPerClient',
  BERTH_UPLOAD_BYTES_PER_CLIENT: 'uploadBytesPerClient',
  BERTH_SHUTDOWN_GRACE: 'shutdownGraceSeconds',
  BERTH_HEADERS_TIMEOUT: 'headersTimeoutSeconds',
  BERTH_BODY_TIMEOUT: 'bodyTimeoutSeconds',
  BERTH_BODY_MIN_BYTES: 'bodyMinBytes',
  BERTH_KEEPALIVE_TIMEOUT: 'keepAliveTimeoutSeconds',
  BERTH_UNAUTH_TIMEOUT: 'unauthTimeoutSeconds',
  BERTH_MAX_CONNECTIONS: 'maxConnections',
  BERTH_MAX_CONNECTIONS_PER_ADDRESS: 'maxConnectionsPerAddress',
  BERTH_LOCAL_STORAGE_KEY: 'localStorageKey',
  BERTH_RETENTION: 'retention',
  BERTH_RETENTION_FILE: 'retentionFile',
  BERTH_IMMUTABLE_TAGS: 'immutableTags',
  BERTH_GC_GRACE: 'gcGraceSeconds',
  BERTH_GC_INTERVAL: 'gcIntervalSeconds',
  BERTH_REDIRECT: 'redirect',
  BERTH_AUTH_FILE: 'authFile',
  BERTH_AUTH_PARAMETER: 'authParameter',
  // AWS_REGION (set by Lambda and the AWS CLI's users) first, so that BERTH_AWS_REGION wins.
  AWS_REGION: 'awsRegion',
  BERTH_AWS_REGION: 'awsRegion',
  BERTH_AUTH_CACHE_SECONDS: 'authCacheSeconds',
  BERTH_INSECURE_NO_AUTH: 'insecureNoAuth',
  BERTH_TOKEN_TTL: 'tokenTtlSeconds',
  BERTH_PRESIGN_TTL: 'presignTtlSeconds',
  BERTH_VERIFY_SYNC_LIMIT: 'verifySyncLimit',
  BERTH_VERIFIER_FUNCTION: 'verifierFunction',
  BERTH_S3_BUCKET: 's3.bucket',
  BERTH_S3_PREFIX: 's3.prefix',
  BERTH_S3_REGION: 's3.region',
  BERTH_S3_ENDPOINT: 's3.endpoint',
  BERTH_S3_FORCE_PATH_STYLE: 's3.forcePathStyle',
  BERTH_S3_PUBLIC_ENDPOINT: 's3.publicEndpoint',
  BERTH_PROXY_UPSTREAM: 'proxyUpstream',
  BERTH_PROXY_TAG_TTL: 'proxyTagTtlSeconds',
  BERTH_PROXY_USERNAME: 'proxyUsername',
  BERTH_PROXY_PASSWORD: 'proxyPassword',
  BERTH_PROXY_PARAMETER: 'proxyParameter',
  BERTH_PROXY_FILL_SECONDS: 'proxyFillSeconds',
  BERTH_TLS_CERT: 'tlsCert',
  BERTH_TLS_KEY: 'tlsKey',
  BERTH_TLS_SELF_SIGNED: 'tlsSelfSigned',
  BERTH_TLS_HOSTS: 'tlsHosts',
  BERTH_CORS_ORIGINS: 'corsOrigins',
  BERTH_REGISTRY_NAME: 'registryName',
  BERTH_EXPIRES_AT: 'expiresAt',
  BERTH_WEB: 'web',
};

const BOOLEAN_FIELDS = new Set([
  'mountWithoutFrom',
  'redirect',
  's3.forcePathStyle',
  'insecureNoAuth',
  'tlsSelfSigned',
  'web',
]);

/**
 * Variables that no longer exist, and what replaced them: a deployment still setting one would
 * otherwise run without the accounts or credentials it names (docs/deployment.md, "Migrating").
 */
export const RETIRED_ENV_VARS: Record<string, string> = {
  BERTH_AUTH_SECRET:
    'BERTH_AUTH_SECRET (a Secrets Manager secret) was replaced by BERTH_AUTH_PARAMETER (an SSM SecureString parameter holding the same JSON): see "Migrating from Secrets Manager" in docs/deployment.md',
  BERTH_PROXY_SECRET:
    'BERTH_PROXY_SECRET (a Secrets Manager secret) was replaced by BERTH_PROXY_PARAMETER (an SSM SecureString parameter holding the same JSON): see "Migrating from Secrets Manager" in docs/deployment.md',
};

/** Builds config input from the environment, then flags on top (flags win). */
export function configInput(
  env: Record<string, string | undefined>,
  flags: Partial<Record<keyof ConfigInput, string | boolean>>,
): ConfigInput {
  const retired = Object.keys(RETIRED_ENV_VARS).filter((name) => env[name]);
  if (retired.length > 0) throw new ConfigError(retired.map((name) => RETIRED_ENV_VARS[name]!));
  const input: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(ENV_VARS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setPath(input, field, BOOLEAN_FIELDS.has(field) ? parseBoolean(value) : value);
  }
  for (const [field, value] of Object.entries(flags)) {
    if (value !== undefined) input[field] = value;
  }
  return input as ConfigInput;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const [head, ...rest] = path.split('.');
  if (head === undefined) return;
  if (rest.length === 0) {
    target[head] = value;
    return;
  }
  const child = (target[head] ??= {}) as Record<string, unknown>;
  setPath(child, rest.join('.'), value);
}

function parseBoolean(value: string): boolean | string {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  return value;
}
