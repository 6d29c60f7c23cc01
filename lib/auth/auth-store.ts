import { stat } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { authFileExists, parseAuthFile, readAuthFile, writeAuthFile, type AuthFile } from './auth-file.ts';

/** Auth file contents and a version that changes on every write. */
export interface AuthSnapshot {
  readonly file: AuthFile;
  readonly version: string;
}

/**
 * Where the accounts and the signing key live: a file on this machine (`--auth-file`), or an SSM
 * Parameter Store SecureString on AWS (`BERTH_AUTH_PARAMETER`). Both hold the same JSON document.
 */
export interface AuthStore {
  /** For messages: "the auth file /etc/berth/auth.json", "the auth parameter /berth/x/auth". */
  readonly description: string;
  /** How often a server re-checks the store for changes (revocations take effect within this). */
  readonly refreshMs: number;
  /** The current contents, or undefined when nothing was stored yet. */
  read(): Promise<AuthSnapshot | undefined>;
  /** The contents when they differ from `version`, else undefined; cheaper than read() where possible. */
  readIfChanged(version: string): Promise<AuthSnapshot | undefined>;
  /**
   * Replaces the contents. With `expectedVersion`, refuses (ConflictError) when someone else wrote
   * in between, so two administrators cannot silently undo each other's changes.
   */
  write(file: AuthFile, expectedVersion: string | undefined): Promise<void>;
}

export class ConflictError extends Error {}

/**
 * The auth file of `berth users` and `berth serve --auth-file`. Checked for changes on every
 * request (one stat; the file is re-read only when its mtime, size or inode changed), so a change
 * holds from the first request that starts after the file was replaced.
 */
export class FileAuthStore implements AuthStore {
  readonly description: string;
  readonly refreshMs: number;

  constructor(
    readonly path: string,
    options: { refreshMs?: number } = {},
  ) {
    this.description = `the auth file ${path}`;
    this.refreshMs = options.refreshMs ?? 0;
  }

  async read(): Promise<AuthSnapshot | undefined> {
    if (!(await authFileExists(this.path))) return undefined;
    const version = await this.version();
    return { file: await readAuthFile(this.path), version };
  }

  async readIfChanged(version: string): Promise<AuthSnapshot | undefined> {
    if ((await this.version()) === version) return undefined;
    return this.read();
  }

  async write(file: AuthFile, expectedVersion: string | undefined): Promise<void> {
    const current = (await authFileExists(this.path)) ? await this.version() : undefined;
    if (expectedVersion !== undefined && current !== expectedVersion) {
      throw new ConflictError(`${this.description} changed while it was being edited; run the command again`);
    }
    await writeAuthFile(this.path, file);
  }

  private async version(): Promise<string> {
    const s = await stat(this.path);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  }
}

/** What the parameter store needs of an SSM client (the SDK's SSMClient, or a mock of it). */
export type SsmClient = Pick<import('@aws-sdk/client-ssm').SSMClient, 'send'>;

/** The most bytes a standard-tier parameter holds (an advanced one: 8 KiB, at $0.05 a month). */
export const STANDARD_PARAMETER_BYTES = 4096;
const ADVANCED_PARAMETER_BYTES = 8192;
/** A stored value that starts with this is the document gzipped, in base64 (docs/deployment.md). */
const GZIP_PREFIX = 'gzip:';

/**
 * The auth document as a parameter's value: its JSON when that fits a standard parameter (a person
 * can read it with `aws ssm get-parameter`), else the JSON gzipped and in base64 behind `gzip:`,
 * which holds about twice as many accounts (password hashes and key material do not compress).
 */
export function encodeAuthParameter(file: AuthFile): string {
  const json = JSON.stringify(file);
  if (Buffer.byteLength(json) <= STANDARD_PARAMETER_BYTES) return json;
  return GZIP_PREFIX + gzipSync(json, { level: 9 }).toString('base64');
}

export function decodeAuthParameter(value: string, where: string): AuthFile {
  if (!value.startsWith(GZIP_PREFIX)) return parseAuthFile(value, where);
  let json: string;
  try {
    json = gunzipSync(Buffer.from(value.slice(GZIP_PREFIX.length), 'base64')).toString('utf8');
  } catch {
    throw new Error(`${where} starts with "${GZIP_PREFIX}" but is not gzipped base64`);
  }
  return parseAuthFile(json, where);
}

/**
 * An SSM Parameter Store SecureString holding the auth document (the CDK stack's auth-bootstrap
 * creates it: CloudFormation cannot create SecureStrings). Standard parameters cost nothing at rest
 * and their API calls nothing at standard throughput; the value is encrypted with the account's
 * `aws/ssm` key unless the parameter was created with a customer key (kept on every write).
 *
 * Each Lambda container checks it at most every `cacheSeconds`: one GetParameter without decryption
 * (no KMS call) tells whether its version changed, and only a new version is read decrypted. The
 * version is the parameter's version number. SSM has no conditional write: a write checks the
 * version just before (a change seen then is a ConflictError) and just after (a version that moved
 * by more than one means someone wrote in the same instant; the command says so).
 *
 * The AWS SDK's SSM client is loaded on first use, so that servers without a parameter never load it.
 */
export class ParameterAuthStore implements AuthStore {
  readonly description: string;
  readonly refreshMs: number;
  private readonly keyId: string | undefined;
  private readonly connect: () => Promise<SsmClient>;
  private client: Promise<SsmClient> | undefined;

  constructor(
    client: SsmClient | (() => Promise<SsmClient>),
    readonly name: string,
    options: { cacheSeconds?: number; keyId?: string } = {},
  ) {
    this.description = `the auth parameter ${name}`;
    this.refreshMs = (options.cacheSeconds ?? 30) * 1000;
    this.keyId = options.keyId;
    this.connect = typeof client === 'function' ? client : async () => client;
  }

  async read(): Promise<AuthSnapshot | undefined> {
    const parameter = await this.get(true);
    if (!parameter) return undefined;
    return {
      file: decodeAuthParameter(parameter.value, this.description),
      version: parameter.version,
    };
  }

  async readIfChanged(version: string): Promise<AuthSnapshot | undefined> {
    const current = await this.get(false);
    if (current?.version === version) return undefined;
    const snapshot = await this.read();
    return snapshot && snapshot.version !== version ? snapshot : undefined;
  }

  async write(file: AuthFile, expectedVersion: string | undefined): Promise<void> {
    const value = encodeAuthParameter(file);
    const bytes = Buffer.byteLength(value);
    if (bytes > ADVANCED_PARAMETER_BYTES) {
      throw new Error(
        `the auth document is ${bytes} bytes even compressed, more than one parameter holds (${ADVANCED_PARAMETER_BYTES}); remove accounts or robots no longer used`,
      );
    }
    const { ssm, PutParameterCommand } = await this.sdk();
    const current = await this.get(false);
    if (expectedVersion !== undefined && current?.version !== expectedVersion) {
      throw new ConflictError(`${this.description} changed while it was being edited; run the command again`);
    }
    // Overwriting without a key would re-encrypt with aws/ssm: keep the parameter's own key.
    const keyId = this.keyId ?? (current ? await this.currentKeyId() : undefined);
    let written;
    try {
      written = await ssm.send(
        new PutParameterCommand({
          Name: this.name,
          Value: value,
          Type: 'SecureString',
          ...(keyId !== undefined && { KeyId: keyId }),
          Overwrite: current !== undefined,
          // Standard (free) while the value fits 4 KiB; beyond, advanced ($0.05 a month, up to 8 KiB).
          Tier: 'Intelligent-Tiering',
          ...(current === undefined && { Description: 'Berth: accounts and token signing key' }),
        }),
      );
    } catch (err) {
      if ((err as Error).name === 'ParameterAlreadyExists') {
        throw new ConflictError(
          `${this.description} was created meanwhile by someone else; run the command again`,
        );
      }
      throw new Error(`cannot write ${this.description}: ${(err as Error).message}`, { cause: err });
    }
    if (
      current !== undefined &&
      written.Version !== undefined &&
      written.Version !== Number(current.version) + 1
    ) {
      throw new ConflictError(
        `${this.description} was changed by someone else at the same moment (version ${current.version} became ${written.Version}); check it with \`berth users list\` and run the command again if your change is missing`,
      );
    }
  }

  /** The value (decrypted, or as stored) and version number, or undefined when there is no parameter. */
  private async get(decrypt: boolean): Promise<{ value: string; version: string } | undefined> {
    const { ssm, GetParameterCommand } = await this.sdk();
    let out;
    try {
      out = await ssm.send(new GetParameterCommand({ Name: this.name, WithDecryption: decrypt }));
    } catch (err) {
      if ((err as Error).name === 'ParameterNotFound') return undefined;
      throw new Error(`cannot read ${this.description}: ${(err as Error).message}`, { cause: err });
    }
    const value = out.Parameter?.Value;
    if (value === undefined || out.Parameter?.Version === undefined) {
      throw new Error(`SSM answered without the value or version of ${this.description}`);
    }
    return { value, version: String(out.Parameter.Version) };
  }

  /** The KMS key the parameter is encrypted with (DescribeParameters), to keep it on overwrite. */
  private async currentKeyId(): Promise<string | undefined> {
    const { ssm, DescribeParametersCommand } = await this.sdk();
    const name = this.name.startsWith('arn:')
      ? this.name.replace(/^arn:[^:]+:ssm:[^:]*:[^:]*:parameter/, '')
      : this.name;
    const out = await ssm.send(
      new DescribeParametersCommand({
        ParameterFilters: [{ Key: 'Name', Option: 'Equals', Values: [name] }],
      }),
    );
    return out.Parameters?.[0]?.KeyId;
  }

  private async sdk() {
    this.client ??= this.connect();
    const [ssm, sdk] = await Promise.all([this.client, import('../aws/ssm.ts')]);
    return { ssm, ...sdk };
  }
}

/** The region an SSM parameter ARN names, if it is one. */
export function parameterRegion(nameOrArn: string): string | undefined {
  return /^arn:aws[a-z-]*:ssm:([a-z0-9-]+):/.exec(nameOrArn)?.[1];
}

/** An SSM client for `region` (the SDK's default chain when undefined), loaded on first use. */
export function ssmClient(region: string | undefined): () => Promise<SsmClient> {
  return async () => {
    const { SSMClient } = await import('../aws/ssm.ts');
    return new SSMClient({ ...(region ? { region } : {}), maxAttempts: 3 });
  };
}

/**
 * The store named by a command line or an environment: a file path, or an SSM parameter (name or
 * ARN) in `region` (the ARN's own region wins; without either, the SDK's default chain).
 */
export function openAuthStore(
  where: { authFile?: string | undefined; authParameter?: string | undefined; authCacheSeconds?: number },
  region?: string,
): AuthStore | undefined {
  if (where.authParameter) {
    return new ParameterAuthStore(
      ssmClient(parameterRegion(where.authParameter) ?? region),
      where.authParameter,
      where.authCacheSeconds === undefined ? {} : { cacheSeconds: where.authCacheSeconds },
    );
  }
  if (where.authFile) return new FileAuthStore(where.authFile);
  return undefined;
}
