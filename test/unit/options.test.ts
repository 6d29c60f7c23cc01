import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config, type ConfigError } from '../../lib/config/config.ts';
import { environmentHelp, flagHelp, withReadmeTable } from '../../lib/config/docs.ts';
import { OPTION_LIST } from '../../lib/config/options.ts';
import {
  ENV_VARS,
  configFlags,
  configInput,
  environmentOf,
  environmentValue,
  flagInput,
} from '../../lib/config/sources.ts';

/** `berth <command> <argv>` as far as the configuration goes: flags over the environment, parsed. */
function configOf(
  command: 'serve' | 'gc' | 'fsck' | 'usage',
  argv: string[],
  env: Record<string, string> = {},
): Config {
  const { values } = parseArgs({ args: argv, options: configFlags(command) });
  return parseConfig(configInput(env, flagInput(command, values)));
}

describe('the option table', () => {
  it('is what the README documents (regenerate with npm run docs:options)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(withReadmeTable(readme)).toBe(readme);
  });

  it('keeps every flag berth serve, gc, usage and fsck took before the table', () => {
    expect(Object.keys(configFlags('serve')).sort()).toEqual(
      [
        'host',
        'port',
        'data-dir',
        'auth-file',
        'log-level',
        'storage',
        'no-redirect',
        'max-blob-size',
        'mount-without-from',
        'proxy-upstream',
        'proxy-tag-ttl',
        'tls-cert',
        'tls-key',
        'tls-self-signed',
        'tls-hosts',
        'max-connections',
        'max-connections-per-address',
        'cors-origin',
      ].sort(),
    );
    expect(Object.keys(configFlags('gc')).sort()).toEqual(
      ['data-dir', 'storage', 'log-level', 'grace', 'retention-file'].sort(),
    );
    expect(Object.keys(configFlags('fsck')).sort()).toEqual(
      ['data-dir', 'storage', 'log-level', 'grace'].sort(),
    );
    expect(Object.keys(configFlags('usage')).sort()).toEqual(['data-dir', 'storage', 'log-level'].sort());
  });

  it('names every variable and flag in the help of the command that takes it', () => {
    const serve = `${flagHelp('serve')}\n${environmentHelp('serve')}`;
    for (const name of Object.keys(ENV_VARS)) expect(serve, name).toContain(name);
    for (const flag of Object.keys(configFlags('serve'))) expect(serve).toContain(`--${flag}`);
    expect(flagHelp('gc')).toContain('--retention-file <file>');
    expect(flagHelp('fsck')).toContain('--grace <duration>');
    expect(flagHelp('fsck')).not.toContain('--retention-file');
  });

  it('shows the schema defaults in the help', () => {
    expect(flagHelp('serve')).toMatch(/--port <n>.*\(default 5000\)/s);
    expect(environmentHelp('serve')).toContain('BERTH_PART_SIZE (16 MiB)');
    expect(environmentHelp('serve')).toContain('BERTH_UPLOAD_BYTES_PER_CLIENT (64 GiB)');
  });

  it('gives each option at most one flag and each variable one option', () => {
    const flags = OPTION_LIST.flatMap((o) => (o.flag ? [o.flag.name] : []));
    expect(new Set(flags).size).toBe(flags.length);
    const names = OPTION_LIST.flatMap((o) => o.env);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('flags', () => {
  it('join repeated --proxy-upstream and --cors-origin as their variables hold them', () => {
    const config = configOf('serve', [
      '--proxy-upstream',
      'hub=https://registry-1.docker.io',
      '--proxy-upstream',
      'https://ghcr.io',
      '--cors-origin',
      'https://a.test',
      '--cors-origin',
      'https://b.test',
    ]);
    expect(config.proxyUpstream?.map((s) => s.prefix)).toEqual(['hub', '']);
    expect(config.corsOrigins).toEqual({ origins: new Set(['https://a.test', 'https://b.test']) });
  });

  it('turn redirects off with --no-redirect, and leave BERTH_REDIRECT alone without it', () => {
    expect(configOf('serve', ['--no-redirect'], { BERTH_REDIRECT: 'on' }).redirect).toBe(false);
    expect(configOf('serve', [], { BERTH_REDIRECT: 'off' }).redirect).toBe(false);
    expect(configOf('serve', []).redirect).toBe(true);
  });

  it('read --grace as a duration and win over BERTH_GC_GRACE', () => {
    expect(configOf('gc', ['--grace', '2h'], { BERTH_GC_GRACE: '60' }).gcGraceSeconds).toBe(7200);
    expect(configOf('fsck', ['--grace', '90s']).gcGraceSeconds).toBe(90);
    expect(configOf('fsck', [], { BERTH_GC_GRACE: '60' }).gcGraceSeconds).toBe(60);
    expect(() => configOf('gc', ['--grace', 'soon'])).toThrow(/"soon" is not a duration/);
  });

  it('are refused by a command that does not take them', () => {
    expect(() => configOf('serve', ['--retention-file', 'r.json'])).toThrow(
      /Unknown option '--retention-file'/,
    );
    expect(() => configOf('usage', ['--grace', '1h'])).toThrow(/Unknown option '--grace'/);
    expect(configOf('gc', ['--retention-file', 'r.json']).retentionFile).toBe('r.json');
  });

  it('give a bad value the same message as its variable', () => {
    expect(() => configOf('serve', ['--port', '99999'])).toThrow(/port: /);
    expect(() => configOf('serve', ['--tls-hosts', 'bad host!', '--tls-self-signed'])).toThrow(
      '"bad host!" is neither an IP address nor a DNS name',
    );
  });
});

describe('parsing once', () => {
  it('keeps the parsed rules, upstreams, origins and host names in the configuration', () => {
    const config = parseConfig(
      configInput(
        {
          BERTH_IMMUTABLE_TAGS: 'prod/*, team-a/*:v*',
          BERTH_RETENTION: '[{"repositories":"ci/*","keepLast":3}]',
          BERTH_PROXY_UPSTREAM: 'https://docker.io',
          BERTH_CORS_ORIGINS: '*',
          BERTH_TLS_SELF_SIGNED: 'on',
          BERTH_TLS_HOSTS: 'registry.test, 10.0.0.1,registry.test',
        },
        {},
      ),
    );
    expect(config.immutableTags).toEqual([
      { repositories: 'prod/*' },
      { repositories: 'team-a/*', tags: 'v*' },
    ]);
    expect(config.retention).toEqual([{ repositories: 'ci/*', keepLast: 3 }]);
    expect(config.proxyUpstream).toEqual([
      { prefix: '', url: 'https://registry-1.docker.io', dockerHub: true },
    ]);
    expect(config.corsOrigins).toEqual({ origins: '*' });
    expect(config.tlsHosts).toEqual(['registry.test', '10.0.0.1', 'registry.test']);
  });

  it('lists a malformed list together with every other problem, in the order of the table', () => {
    let problems: string[] = [];
    try {
      parseConfig(
        configInput(
          {
            BERTH_PORT: '-1',
            BERTH_HOST: '10.0.0.1',
            BERTH_STORAGE: 's3',
            BERTH_RETENTION: '[',
            BERTH_IMMUTABLE_TAGS: 'A B',
            BERTH_PROXY_UPSTREAM: 'ftp://x',
            BERTH_PROXY_USERNAME: 'me',
            BERTH_CORS_ORIGINS: 'https://a.test/',
            BERTH_TLS_HOSTS: 'x y',
          },
          {},
        ),
      );
    } catch (err) {
      problems = (err as ConfigError).problems;
    }
    expect(problems.map((p) => p.slice(0, p.indexOf(':')))).toEqual([
      'port',
      'retention',
      'immutableTags',
      'proxyUpstream',
      'corsOrigins',
      'tlsHosts',
      'proxyPassword',
      'tlsHosts',
      's3.bucket',
      'authFile',
    ]);
    expect(problems[3]).toBe('proxyUpstream: upstream ftp://x must be an http:// or https:// URL');
  });

  it('leaves an empty list unset, as before', () => {
    const config = parseConfig({ retention: ' ', proxyUpstream: '', immutableTags: '' });
    expect(config.retention).toBeUndefined();
    expect(config.proxyUpstream).toBeUndefined();
    expect(config.immutableTags).toBeUndefined();
  });
});

describe('environmentOf (the variables berth serve --lambda hands its function)', () => {
  it('reproduces the configuration it was made from, parsed values included', () => {
    const config = parseConfig(
      configInput(
        {
          BERTH_DATA_DIR: '/srv/berth',
          BERTH_REDIRECT: 'off',
          BERTH_MAX_BLOB_SIZE: '1048576',
          BERTH_IMMUTABLE_TAGS: 'prod/*,team-a/*:v*',
          BERTH_RETENTION: '[{"repositories":"ci/*","keepLast":3,"keepTags":["latest"]}]',
          BERTH_PROXY_UPSTREAM: 'hub=https://docker.io,https://ghcr.io/',
          BERTH_PROXY_USERNAME: 'me',
          BERTH_PROXY_PASSWORD: 'secret',
          BERTH_CORS_ORIGINS: 'https://a.test,http://127.0.0.1:8080',
          BERTH_S3_FORCE_PATH_STYLE: 'yes',
          BERTH_EXPIRES_AT: '2030-01-01T00:00:00Z',
          BERTH_AWS_REGION: 'eu-west-1',
        },
        {},
      ),
    );
    const env = environmentOf(config);
    expect(env.BERTH_PROXY_UPSTREAM).toBe('hub=https://registry-1.docker.io,https://ghcr.io');
    expect(env.BERTH_REDIRECT).toBe('false');
    expect(env).not.toHaveProperty('PORT');
    expect(parseConfig(configInput(env, {}))).toEqual(config);
  });

  it('leaves out the fields it is told to', () => {
    const env = environmentOf(parseConfig({ host: '127.0.0.2', port: 8080 }), ['host', 'port']);
    expect(env).not.toHaveProperty('BERTH_HOST');
    expect(env).not.toHaveProperty('BERTH_PORT');
    expect(env.BERTH_DATA_DIR).toBe('./data');
  });
});

describe('environmentValue', () => {
  it('reads one option the way configInput does: the winning variable, empty ones ignored', () => {
    expect(environmentValue({ AWS_REGION: 'eu-west-1', BERTH_AWS_REGION: 'ap-south-1' }, 'awsRegion')).toBe(
      'ap-south-1',
    );
    expect(environmentValue({ AWS_REGION: 'eu-west-1', BERTH_AWS_REGION: '' }, 'awsRegion')).toBe(
      'eu-west-1',
    );
    expect(environmentValue({ BERTH_AUTH_FILE: '' }, 'authFile')).toBeUndefined();
  });
});
