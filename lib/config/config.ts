import * as z from 'zod';
import { OPTIONS } from './options.ts';

type Options = typeof OPTIONS;
/** The schemas of the options at the top level (paths without a dot). */
type TopShape = {
  [K in keyof Options as K extends `${string}.${string}` ? never : K]: Options[K]['schema'];
};
/** The schemas of one group's options (`s3.bucket` in group `s3` is `bucket`). */
type GroupShape<G extends string> = {
  [K in keyof Options as K extends `${G}.${infer Rest}` ? Rest : never]: Options[K]['schema'];
};

type Shape = TopShape & { s3: z.ZodPrefault<z.ZodObject<GroupShape<'s3'>>> };

/**
 * The schemas of the table, nested by path: a group (`s3`) stands where its first option does, so
 * that problems are listed in the table's order.
 */
function shape(): Shape {
  const fields: Record<string, z.ZodType> = {};
  const groups: Record<string, Record<string, z.ZodType>> = {};
  for (const [path, spec] of Object.entries(OPTIONS)) {
    const [head, rest] = path.split('.', 2) as [string, string | undefined];
    if (rest === undefined) {
      fields[head] = spec.schema;
    } else {
      // The group's first option holds its place among the fields (keys keep insertion order).
      if (!(head in groups)) fields[head] = z.object((groups[head] = {}));
      groups[head]![rest] = spec.schema;
    }
  }
  for (const head of Object.keys(groups)) fields[head] = z.object(groups[head]!).prefault({});
  return fields as unknown as Shape;
}

/**
 * Everything Berth can be told (lib/config/options.ts), validated and parsed in one pass at start;
 * nothing below the entry points and lib/setup reads the environment or this configuration.
 */
export const configSchema = z.object(shape());

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
  // Parsed once per process: zod's JIT fast path (code generated per object schema on the first
  // parse) would cost more than it saves, at every Lambda cold start (docs/lambda.md, "Cold start").
  const result = checkedSchema.safeParse(input, { jitless: true });
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
