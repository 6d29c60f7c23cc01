import * as z from 'zod';
import { OPTION_LIST, OPTIONS } from './options.ts';

type Options = typeof OPTIONS;
/** The schemas of the options at the top level (paths without a dot). */
type TopShape = {
  [K in keyof Options as K extends `${string}.${string}` ? never : K]: ReturnType<Options[K]['schema']>;
};
/** The schemas of one group's options (`s3.bucket` in group `s3` is `bucket`). */
type GroupShape<G extends string> = {
  [K in keyof Options as K extends `${G}.${infer Rest}` ? Rest : never]: ReturnType<Options[K]['schema']>;
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
      fields[head] = spec.schema();
    } else {
      // The group's first option holds its place among the fields (keys keep insertion order).
      if (!(head in groups)) fields[head] = z.object((groups[head] = {}));
      groups[head]![rest] = spec.schema();
    }
  }
  for (const head of Object.keys(groups)) fields[head] = z.object(groups[head]!).prefault({});
  return fields as unknown as Shape;
}

function buildConfigSchema() {
  return z.object(shape());
}

let built: { plain: ConfigSchema; checked: z.ZodType<Config, ConfigInput> } | undefined;

/** The whole configuration's zod schema and the same with the rules across options, built on first use. */
function schemas(): NonNullable<typeof built> {
  return (built ??= (() => {
    const plain = buildConfigSchema();
    let checked: z.ZodType<Config, ConfigInput> = plain;
    for (const rule of RULES) {
      checked = checked.refine(rule.holds, { message: rule.message, path: [...rule.path] });
    }
    return { plain, checked };
  })());
}

/**
 * Everything Berth can be told (lib/config/options.ts) as one zod schema, for what needs the defaults
 * of every option (the help, the README's table). `parseConfig` builds it only for a configuration
 * with a problem, to list every problem in zod's words (docs/lambda.md, "Cold start").
 */
export function configSchema(): ConfigSchema {
  return schemas().plain;
}

type ConfigSchema = ReturnType<typeof buildConfigSchema>;
export type Config = z.infer<ConfigSchema>;
export type ConfigInput = z.input<ConfigSchema>;

/** What must hold across options, each with the problem it reports and where. */
const RULES: readonly {
  readonly holds: (c: Config) => boolean;
  readonly message: string;
  readonly path: readonly string[];
}[] = [
  {
    holds: (c) => (c.proxyUsername === undefined) === (c.proxyPassword === undefined),
    message: 'upstream credentials need both BERTH_PROXY_USERNAME and BERTH_PROXY_PASSWORD',
    path: ['proxyPassword'],
  },
  {
    holds: (c) => (c.tlsCert === undefined) === (c.tlsKey === undefined),
    message: 'HTTPS needs both --tls-cert and --tls-key (BERTH_TLS_CERT, BERTH_TLS_KEY)',
    path: ['tlsKey'],
  },
  {
    holds: (c) => !(c.tlsSelfSigned && c.tlsCert !== undefined),
    message: '--tls-self-signed makes its own certificate: leave out --tls-cert and --tls-key',
    path: ['tlsSelfSigned'],
  },
  {
    holds: (c) => c.tlsHosts === undefined || c.tlsSelfSigned,
    message: '--tls-hosts names the hosts of the --tls-self-signed certificate: add --tls-self-signed',
    path: ['tlsHosts'],
  },
  {
    holds: (c) => c.storage !== 's3' || c.s3.bucket !== undefined,
    message: 'the s3 store needs a bucket (BERTH_S3_BUCKET)',
    path: ['s3', 'bucket'],
  },
  {
    holds: (c) => c.authFile !== undefined || c.authParameter !== undefined || isLoopback(c.host),
    message:
      'listening beyond loopback needs authentication: create accounts with `berth users add` and pass --auth-file',
    path: ['authFile'],
  },
];

/** Addresses only this machine can reach, where running without authentication is allowed. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
export function parseConfig(input: ConfigInput): Config {
  return parsedOptionByOption(input) ?? parsedWhole(input);
}

/** `parseConfig` by the whole schema: every problem listed, in the table's order. */
export function parsedWhole(input: ConfigInput): Config {
  // Parsed once per process: zod's JIT fast path (code generated per object schema on the first
  // parse) would cost more than it saves, at every Lambda cold start (docs/lambda.md, "Cold start").
  const result = schemas().checked.safeParse(input, { jitless: true });
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || 'config'}: ${i.message}`);
    throw new ConfigError(problems);
  }
  return result.data;
}

/**
 * The configuration that the whole schema would give, built from the schemas of the options that
 * are given and the defaults of the others (a Lambda function is given a handful of its 50-odd
 * options; building all 270-odd schema objects cost about 6% of its init). Undefined at the first problem,
 * and for any input that is not plain option values: the whole schema then decides, so that the
 * problems, their order and their wording are zod's, all listed at once (test/unit/config-parse.test.ts
 * holds both ways to the same results).
 */
export function parsedOptionByOption(input: unknown): Config | undefined {
  if (!isRecord(input)) return undefined;
  const groups = new Map<string, Record<string, unknown>>();
  const config: Record<string, unknown> = {};
  for (const option of OPTION_LIST) {
    const dot = option.path.indexOf('.');
    let source = input;
    let target = config;
    let key = option.path;
    if (dot >= 0) {
      const head = option.path.slice(0, dot);
      key = option.path.slice(dot + 1);
      const given = input[head] ?? {};
      if (!isRecord(given)) return undefined;
      source = given;
      let group = groups.get(head);
      if (group === undefined) groups.set(head, (group = config[head] = {}));
      target = group;
    }
    const value = source[key];
    if (value === undefined) {
      if (option.default !== undefined) target[key] = option.default;
      continue;
    }
    const result = option.schema().safeParse(value);
    if (!result.success) return undefined;
    if (result.data !== undefined) target[key] = result.data;
  }
  // Keys the table does not know are left out, as the whole schema drops them.
  const parsed = config as Config;
  return RULES.every((rule) => rule.holds(parsed)) ? parsed : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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
