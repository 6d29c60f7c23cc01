import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  parseConfig,
  parsedOptionByOption,
  parsedWhole,
  type Config,
  type ConfigInput,
} from '../../lib/config/config.ts';
import { lambdaConfig } from '../../lib/config/lambda.ts';
import { OPTION_LIST } from '../../lib/config/options.ts';
import { configInput } from '../../lib/config/sources.ts';

// parseConfig builds only the schemas of the options it is given (a Lambda function's init); the
// whole schema decides whenever that finds a problem. These tests hold the two ways to one answer.

function outcome(parse: () => Config): { config: Config } | { problems: string[] } {
  try {
    return { config: parse() };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { problems: err.problems };
  }
}

/** Values people put in variables and flags, valid for some options and not for others. */
const TEXTS = [
  '',
  ' ',
  '0',
  '1',
  '2',
  '3',
  '59',
  '60',
  '600',
  '601',
  '3600',
  '65535',
  '65536',
  ' 42 ',
  '-1',
  '1.5',
  '5242880',
  '99999999999999999999',
  'abc',
  'ab',
  'true',
  'off',
  'debug',
  'silent',
  'loud',
  's3',
  'filesystem',
  '127.0.0.1',
  '0.0.0.0',
  'localhost',
  'http://127.0.0.1:9000',
  ' http://minio:9000 ',
  'not a url',
  '2026-12-31T00:00:00Z',
  '2026-12-31T00:00:00+01:00',
  '2026-12-31',
  'a'.repeat(64),
  '0123456789abcdef'.repeat(4),
  'prod/*,team-a/*:v*',
  '[{"repositories":"*","keepLast":3}]',
  '[{"keepLast":-1}]',
  'https://registry-1.docker.io',
  'docker=https://registry-1.docker.io',
  'ftp://x',
  'https://ui.example.com',
  '*',
  'localhost,10.0.0.1',
  'bad host!',
  'bench-bucket',
];
const VALUES = fc.oneof(
  fc.constantFrom(...TEXTS),
  fc.boolean(),
  fc.constantFrom(0, 1, 5, 60, 65535, 65536, -3, 2.5, 5 * 1024 * 1024, Number.NaN, null),
);

const paths = OPTION_LIST.map((option) => option.path);

function inputOf(entries: [string, unknown][]): ConfigInput {
  const input: Record<string, unknown> = {};
  for (const [path, value] of entries) {
    const [head, rest] = path.split('.', 2) as [string, string | undefined];
    if (rest === undefined) input[head] = value;
    else ((input[head] ??= {}) as Record<string, unknown>)[rest] = value;
  }
  return input as ConfigInput;
}

describe('parseConfig, option by option', () => {
  it('gives what the whole schema gives, for any mix of options, valid or not', () => {
    let fast = 0;
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.constantFrom(...paths), VALUES), {
          maxLength: 6,
          selector: ([path]) => path,
        }),
        (entries) => {
          const input = inputOf(entries);
          const byOption = parsedOptionByOption(input);
          if (byOption !== undefined) {
            fast++;
            expect(byOption).toEqual(parsedWhole(input));
          }
          expect(outcome(() => parseConfig(input))).toEqual(outcome(() => parsedWhole(input)));
        },
      ),
      { numRuns: 600, seed: 2112 },
    );
    // Not a vacuous comparison: many of the mixes are valid and took the short way.
    expect(fast).toBeGreaterThan(60);
  });

  it('takes the short way for a Lambda function configured as the stack configures it', () => {
    const env = {
      AWS_REGION: 'eu-west-1',
      BERTH_S3_BUCKET: 'team-a-registry',
      BERTH_AUTH_PARAMETER: '/berth/team-a/auth',
      BERTH_VERIFIER_FUNCTION: 'team-a-verifier',
      BERTH_REGISTRY_NAME: 'team-a',
      BERTH_EXPIRES_AT: '2027-01-31T00:00:00Z',
      BERTH_LOG_LEVEL: 'warn',
    };
    const input = configInput(env, {});
    const byOption = parsedOptionByOption({ ...input, storage: 's3' });
    expect(byOption).toBeDefined();
    expect(lambdaConfig(env)).toEqual(
      parsedWhole({ ...input, storage: 's3', s3: { region: 'eu-west-1', ...input.s3 } }),
    );
    expect(lambdaConfig(env)).toMatchObject({
      storage: 's3',
      s3: { bucket: 'team-a-registry', region: 'eu-west-1', forcePathStyle: false },
      authParameter: '/berth/team-a/auth',
      expiresAt: '2027-01-31T00:00:00Z',
      port: 5000,
      tokenTtlSeconds: 300,
    });
  });

  it("lists every problem at once, in zod's words and the table's order", () => {
    const input = { port: 'x', logLevel: 'loud', tlsHosts: 'bad host!' } as unknown as ConfigInput;
    expect(parsedOptionByOption(input)).toBeUndefined();
    const problems = (outcome(() => parseConfig(input)) as { problems: string[] }).problems;
    expect(problems).toEqual([
      'port: must be a whole number',
      expect.stringMatching(/^logLevel: Invalid option: expected one of "debug"\|"info"/),
      'tlsHosts: "bad host!" is neither an IP address nor a DNS name',
    ]);
  });

  it('declares each default as the schema has it', () => {
    for (const option of OPTION_LIST) {
      expect([option.path, option.schema().parse(undefined)]).toEqual([option.path, option.default]);
    }
  });
});
