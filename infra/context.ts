import type { BerthProps, CustomDomain } from './props.ts';

/**
 * Stack props from CDK context (`-c key=value` on the command line, or `context` in cdk.json).
 * Command-line values are strings; cdk.json may hold numbers, booleans and lists.
 */
export function propsFromContext(
  get: (key: string) => unknown,
  bundlesDir: string,
): Omit<BerthProps, 'description'> {
  const str = (key: string): string | undefined => {
    const v = get(key);
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v).trim();
    throw new Error(`context ${key} must be a string, number or boolean`);
  };
  const num = (key: string): number | undefined => {
    const v = str(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`context ${key} must be a whole number, got "${v}"`);
    return n;
  };
  const bool = (key: string): boolean | undefined => {
    const v = str(key);
    if (v === undefined) return undefined;
    if (/^(true|yes|on|1)$/i.test(v)) return true;
    if (/^(false|no|off|0)$/i.test(v)) return false;
    throw new Error(`context ${key} must be true or false, got "${v}"`);
  };
  const list = (key: string): string[] | undefined => {
    const v = get(key);
    if (v === undefined || v === null || v === '') return undefined;
    const items = Array.isArray(v) ? v.map(String) : String(v).split(',');
    return items.map((s) => s.trim()).filter((s) => s !== '');
  };
  const oneOf = <T extends string>(key: string, values: readonly T[]): T | undefined => {
    const v = str(key);
    if (v === undefined) return undefined;
    if (!(values as readonly string[]).includes(v))
      throw new Error(`context ${key} must be one of ${values.join(', ')}`);
    return v as T;
  };
  const pair = (rate: string, burst: string) => {
    const r = num(rate);
    const b = num(burst);
    if (r === undefined && b === undefined) return undefined;
    if (r === undefined || b === undefined) throw new Error(`give both ${rate} and ${burst}`);
    return { rateLimit: r, burstLimit: b };
  };

  // Options that were replaced: silently ignoring them would deploy something else than asked for.
  if (get('proxySecretArn') !== undefined) {
    throw new Error(
      'proxySecretArn (a Secrets Manager secret) was replaced by proxyParameter (an SSM SecureString parameter with the same JSON): see "Migrating from Secrets Manager" in docs/deployment.md',
    );
  }
  if (get('alarms') !== undefined) {
    throw new Error(
      'alarms are created only when there is someone to page: give alarmEmail or alarmTopicArn (and drop alarms)',
    );
  }

  const domainName = str('domainName');
  let domain: CustomDomain | undefined;
  if (domainName) {
    const zoneId = str('hostedZoneId');
    const zoneName = str('hostedZoneName');
    if ((zoneId === undefined) !== (zoneName === undefined))
      throw new Error('give both hostedZoneId and hostedZoneName');
    const certificateArn = str('certificateArn');
    domain = {
      domainName,
      ...(zoneId && zoneName && { hostedZone: { id: zoneId, name: zoneName } }),
      ...(certificateArn && { certificateArn }),
    };
  }
  const expiresAt = str('expiresAt');
  const retention = get('retention');

  return {
    team: str('team') ?? 'default',
    bundlesDir,
    ttl: str('ttl'),
    expiresAt: expiresAt === undefined ? undefined : parseDate(expiresAt),
    anonymousPull: list('anonymousPull'),
    domain,
    memoryMb: num('memory'),
    timeoutSeconds: num('timeout'),
    reservedConcurrency: num('reservedConcurrency'),
    logRetentionDays: num('logRetentionDays'),
    alarmEmail: str('alarmEmail'),
    alarmTopicArn: str('alarmTopicArn'),
    removalPolicy: oneOf('removalPolicy', ['destroy', 'retain'] as const),
    encryption: oneOf('encryption', ['s3', 'kms'] as const),
    versioned: bool('versioned'),
    intelligentTiering: bool('intelligentTiering'),
    throttle: pair('throttleRate', 'throttleBurst'),
    tokenThrottle: pair('tokenThrottleRate', 'tokenThrottleBurst'),
    janitorEveryMinutes: num('janitorEveryMinutes'),
    retention: typeof retention === 'string' ? parseJson('retention', retention) : retention,
    immutableTags: list('immutableTags'),
    proxyUpstreams: list('proxyUpstreams'),
    proxyTagTtlSeconds: num('proxyTagTtl'),
    proxyParameter: str('proxyParameter'),
    corsOrigins: list('corsOrigins'),
    logLevel: oneOf('logLevel', ['debug', 'info', 'warn', 'error'] as const),
  };
}

function parseDate(text: string): Date {
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw new Error(`expiresAt "${text}" is not a date (2026-12-31T18:00:00Z)`);
  return d;
}

function parseJson(key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`context ${key} must be JSON`);
  }
}
