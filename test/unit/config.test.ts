import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type ConfigInput } from '../../lib/config/config.ts';
import { ENV_VARS, configInput } from '../../lib/config/sources.ts';

function configErrorOf(input: ConfigInput): ConfigError {
  try {
    parseConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(input)}`);
}

describe('parseConfig', () => {
  it('defaults to a loopback server on port 5000 storing in ./data', () => {
    const config = parseConfig({});
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 5000,
      dataDir: './data',
      logLevel: 'info',
      storage: 'filesystem',
      redirect: true,
      mountWithoutFrom: false,
      shutdownGraceSeconds: 30,
    });
    expect(config.partSize).toBe(16 * 1024 * 1024);
    expect(config.maxBlobSize).toBe(50 * 1024 * 1024 * 1024);
    expect(config.s3.region).toBe('us-east-1');
  });

  it('reads numbers given as strings, as the environment and flags give them', () => {
    const config = parseConfig({ port: '8080', maxBlobSize: '1048576', shutdownGraceSeconds: '5' });
    expect(config.port).toBe(8080);
    expect(config.maxBlobSize).toBe(1048576);
    expect(config.shutdownGraceSeconds).toBe(5);
  });

  it('accepts port 0 (any free port) and 65535', () => {
    expect(parseConfig({ port: '0' }).port).toBe(0);
    expect(parseConfig({ port: 65535 }).port).toBe(65535);
  });

  it.each(['65536', '70000', '-1', '1.5', 'http', '80abc'])(
    'refuses port %j with a readable error naming the field',
    (port) => {
      const err = configErrorOf({ port });
      expect(err.problems).toHaveLength(1);
      expect(err.problems[0]).toMatch(/^port: /);
      expect(err.message).toMatch(/^invalid configuration:\n {2}port: /);
      expect(err.message).not.toMatch(/\n\s+at /);
    },
  );

  it('lists every problem at once', () => {
    const err = configErrorOf({ port: '99999', logLevel: 'loud' as 'info', storage: 'ftp' as 'filesystem' });
    expect(err.problems.map((p) => p.split(':')[0]).sort()).toEqual(['logLevel', 'port', 'storage']);
    expect(err.message).toContain('debug');
  });

  it('refuses an s3 store without a bucket, saying which variable to set', () => {
    const err = configErrorOf({ storage: 's3' });
    expect(err.problems).toEqual([expect.stringMatching(/^s3\.bucket: .*BERTH_S3_BUCKET/)]);
    expect(parseConfig({ storage: 's3', s3: { bucket: 'my-bucket' } }).s3.bucket).toBe('my-bucket');
  });

  it.each([
    [{ partSize: 1024 }, 'partSize'],
    [{ maxBlobSize: '0' }, 'maxBlobSize'],
    [{ presignTtlSeconds: 8 * 24 * 3600 }, 'presignTtlSeconds'],
    [{ s3: { endpoint: 'not a url' } }, 's3.endpoint'],
    [{ dataDir: '' }, 'dataDir'],
    [{ redirect: 'maybe' as unknown as boolean }, 'redirect'],
  ] as [ConfigInput, string][])('refuses %j, naming %s', (input, field) => {
    expect(configErrorOf(input).problems[0]).toMatch(new RegExp(`^${field.replace('.', '\\.')}: `));
  });
});

describe('configInput', () => {
  it('refuses to listen beyond loopback without authentication', () => {
    expect(() => parseConfig({ host: '0.0.0.0' })).toThrow(/needs authentication/);
    expect(() => parseConfig({ host: '10.1.2.3' })).toThrow(ConfigError);
    expect(parseConfig({ host: '127.0.0.2' }).host).toBe('127.0.0.2');
    expect(parseConfig({ host: '0.0.0.0', authFile: 'auth.json' }).authFile).toBe('auth.json');
  });

  it('maps the documented environment variables to config fields', () => {
    const input = configInput(
      {
        PORT: '8080',
        BERTH_HOST: '0.0.0.0',
        BERTH_DATA_DIR: '/var/lib/berth',
        BERTH_LOG_LEVEL: 'debug',
        BERTH_STORAGE: 's3',
        BERTH_S3_BUCKET: 'bucket',
        BERTH_S3_PREFIX: 'team-a',
        BERTH_S3_REGION: 'eu-west-1',
        BERTH_S3_ENDPOINT: 'http://localhost:9000',
        BERTH_AUTH_FILE: '/etc/berth/auth.json',
      },
      {},
    );
    const config = parseConfig(input);
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      authFile: '/etc/berth/auth.json',
      dataDir: '/var/lib/berth',
      logLevel: 'debug',
      storage: 's3',
    });
    expect(config.s3).toMatchObject({
      bucket: 'bucket',
      prefix: 'team-a',
      region: 'eu-west-1',
      endpoint: 'http://localhost:9000',
    });
  });

  it('maps the connection limits and timeouts, with defaults no real client hits', () => {
    expect(parseConfig({})).toMatchObject({
      headersTimeoutSeconds: 30,
      bodyTimeoutSeconds: 30,
      bodyMinBytes: 16 * 1024,
      keepAliveTimeoutSeconds: 5,
      unauthTimeoutSeconds: 10,
    });
    const config = parseConfig(
      configInput(
        {
          BERTH_HEADERS_TIMEOUT: '20',
          BERTH_BODY_TIMEOUT: '60',
          BERTH_BODY_MIN_BYTES: '1024',
          BERTH_KEEPALIVE_TIMEOUT: '15',
          BERTH_UNAUTH_TIMEOUT: '5',
          BERTH_MAX_CONNECTIONS: '2000',
          BERTH_MAX_CONNECTIONS_PER_ADDRESS: '300',
        },
        { maxConnectionsPerAddress: '50' },
      ),
    );
    expect(config).toMatchObject({
      headersTimeoutSeconds: 20,
      bodyTimeoutSeconds: 60,
      bodyMinBytes: 1024,
      keepAliveTimeoutSeconds: 15,
      unauthTimeoutSeconds: 5,
      maxConnections: 2000,
      maxConnectionsPerAddress: 50,
    });
    expect(() => parseConfig({ bodyTimeoutSeconds: 0 })).toThrow(/bodyTimeoutSeconds/);
    expect(() => parseConfig({ localStorageKey: 'not-hex' })).toThrow(
      /localStorageKey: must be 64 hex digits/,
    );
  });

  it('maps every variable it lists to a field the schema knows', () => {
    for (const [name, field] of Object.entries(ENV_VARS)) {
      const [head, ...rest] = field.split('.');
      const input = configInput({ [name]: 'x' }, {}) as Record<string, unknown>;
      const value = rest.length === 0 ? input[head!] : (input[head!] as Record<string, unknown>)[rest[0]!];
      expect(value, name).toBeDefined();
    }
  });

  it('ignores unrelated and empty variables', () => {
    expect(
      configInput({ HOME: '/root', PATH: '/bin', BERTH_PORTS: '1', PORT: '', BERTH_HOST: undefined }, {}),
    ).toEqual({});
  });

  it('lets flags win over the environment, and an absent flag leave the environment alone', () => {
    const env = { PORT: '8080', BERTH_DATA_DIR: '/env/data', BERTH_LOG_LEVEL: 'warn' };
    const config = parseConfig(
      configInput(env, { port: '9090', dataDir: '/flag/data', logLevel: undefined }),
    );
    expect(config.port).toBe(9090);
    expect(config.dataDir).toBe('/flag/data');
    expect(config.logLevel).toBe('warn');
  });

  it('lets --no-redirect (redirect: false) win over BERTH_REDIRECT=on', () => {
    expect(parseConfig(configInput({ BERTH_REDIRECT: 'on' }, { redirect: false })).redirect).toBe(false);
    expect(parseConfig(configInput({ BERTH_REDIRECT: 'on' }, { redirect: undefined })).redirect).toBe(true);
  });

  it('prefers the Berth-specific BERTH_PORT over the generic PORT', () => {
    expect(parseConfig(configInput({ PORT: '1111', BERTH_PORT: '2222' }, {})).port).toBe(2222);
  });

  it.each([
    ['1', true],
    ['true', true],
    ['TRUE', true],
    ['yes', true],
    ['On', true],
    ['0', false],
    ['false', false],
    ['No', false],
    ['off', false],
    ['OFF', false],
  ])('reads the boolean %j as %s', (value, expected) => {
    const config = parseConfig(
      configInput(
        { BERTH_REDIRECT: value, BERTH_MOUNT_WITHOUT_FROM: value, BERTH_S3_FORCE_PATH_STYLE: value },
        {},
      ),
    );
    expect(config.redirect).toBe(expected);
    expect(config.mountWithoutFrom).toBe(expected);
    expect(config.s3.forcePathStyle).toBe(expected);
  });

  it('refuses a boolean variable it cannot read, naming the field', () => {
    expect(() => parseConfig(configInput({ BERTH_MOUNT_WITHOUT_FROM: 'maybe' }, {}))).toThrow(
      /mountWithoutFrom/,
    );
  });

  it('does not treat non-boolean fields as booleans', () => {
    expect(configInput({ BERTH_DATA_DIR: 'yes', BERTH_S3_PREFIX: 'off' }, {})).toEqual({
      dataDir: 'yes',
      s3: { prefix: 'off' },
    });
  });
});
