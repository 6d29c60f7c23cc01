import { ConfigError, type Config, type ConfigInput } from './config.ts';
import { OPTION_LIST, type Command, type OptionPath } from './options.ts';

/**
 * The environment variables Berth reads, and the config field each sets (dotted for nested fields),
 * from the option table. Where two set one field, the later one here wins (BERTH_PORT over PORT).
 */
export const ENV_VARS: Record<string, string> = Object.fromEntries(
  OPTION_LIST.flatMap((option) => option.env.map((name) => [name, option.path])),
);

const BOOLEAN_FIELDS = new Set(OPTION_LIST.filter((option) => option.boolean).map((option) => option.path));

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
  flags: Partial<Record<keyof ConfigInput | `s3.${string}`, string | boolean>>,
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
    if (value !== undefined) setPath(input, field, value);
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

/**
 * The text the environment gives one option (the winning variable's, empty ones ignored), unparsed:
 * for commands that need a setting or two and must not fail on the rest (`berth users`).
 */
export function environmentValue(
  env: Record<string, string | undefined>,
  path: OptionPath,
): string | undefined {
  const names = OPTION_LIST.find((option) => option.path === path)?.env ?? [];
  return names
    .map((name) => env[name])
    .filter((value) => value !== undefined && value !== '')
    .at(-1);
}

/** What `parseArgs` (node:util) is told of the configuration flags a command takes. */
export type FlagOptions = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

/** The configuration flags of `command`, from the option table, for `parseArgs`. */
export function configFlags(command: Command): FlagOptions {
  const flags: FlagOptions = {};
  for (const option of OPTION_LIST) {
    const flag = option.flag;
    if (!flag || !(flag.commands ?? ['serve']).includes(command)) continue;
    flags[flag.name] = {
      type: flag.arg === undefined ? 'boolean' : 'string',
      ...(flag.multiple && { multiple: true }),
    };
  }
  return flags;
}

/**
 * The config input that parsed flag values stand for (field paths to values), for `configInput`:
 * repeated flags joined with commas, as their variable holds them; `--no-x` sets x to false.
 */
export function flagInput(
  command: Command,
  values: Record<string, string | boolean | (string | boolean)[] | undefined>,
): Record<string, string | boolean> {
  const input: Record<string, string | boolean> = {};
  for (const option of OPTION_LIST) {
    const flag = option.flag;
    if (!flag || !(flag.commands ?? ['serve']).includes(command)) continue;
    const value = values[flag.name];
    if (value === undefined) continue;
    if (flag.negates) {
      if (value === true) input[option.path] = false;
    } else if (flag.convert && typeof value === 'string') {
      input[option.path] = flag.convert(value);
    } else {
      input[option.path] = Array.isArray(value) ? value.join(',') : value;
    }
  }
  return input;
}

/**
 * The environment variables (BERTH_* only) that reproduce a parsed configuration, for a process
 * that reads its configuration from the environment (the registry bundle behind
 * `berth serve --lambda`); `except` names fields to leave out.
 */
export function environmentOf(config: Config, except: readonly string[] = []): Record<string, string> {
  const env: Record<string, string> = {};
  for (const option of OPTION_LIST) {
    const name = option.env.at(-1);
    if (name === undefined || !name.startsWith('BERTH_') || except.includes(option.path)) continue;
    const value = option.path
      .split('.')
      .reduce<unknown>((at, key) => (at as Record<string, unknown>)?.[key], config);
    if (value === undefined) continue;
    env[name] = option.toEnv ? (option.toEnv as (v: unknown) => string)(value) : String(value);
  }
  return env;
}
