import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import {
  authFileExists,
  parseAuthFile,
  readAuthFile,
  serializeAuthFile,
  writeAuthFile,
  type AuthFile,
} from './auth-file.ts';

/** Auth file contents and a version that changes on every write. */
export interface AuthSnapshot {
  readonly file: AuthFile;
  readonly version: string;
}

/**
 * Where the accounts and the signing key live: a file on this machine (`--auth-file`), or a
 * Secrets Manager secret on AWS (`BERTH_AUTH_SECRET`). Both hold the same JSON document.
 */
export interface AuthStore {
  /** For messages: "the auth file /etc/berth/auth.json", "the auth secret arn:...". */
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

/**
 * A Secrets Manager secret holding the auth file JSON (the CDK stack creates it and its bootstrap
 * fills it at deploy time). Each Lambda container re-reads it at most every `cacheSeconds`, so a
 * removed account or revoked robot stops working within that time; GetSecretValue returns the
 * version id along with the value, so a check costs one call.
 */
export class SecretAuthStore implements AuthStore {
  readonly description: string;
  readonly refreshMs: number;

  constructor(
    private readonly client: SecretsManagerClient,
    readonly secretId: string,
    cacheSeconds = 30,
  ) {
    this.description = `the auth secret ${secretId}`;
    this.refreshMs = cacheSeconds * 1000;
  }

  async read(): Promise<AuthSnapshot | undefined> {
    let out;
    try {
      out = await this.client.send(new GetSecretValueCommand({ SecretId: this.secretId }));
    } catch (err) {
      if (err instanceof ResourceNotFoundException) {
        throw new Error(`${this.description} does not exist or has no value yet`, { cause: err });
      }
      throw new Error(`cannot read ${this.description}: ${(err as Error).message}`, { cause: err });
    }
    const text = out.SecretString ?? '';
    // The stack creates the secret as `{}`; its bootstrap writes the first accounts and key.
    if (text.trim() === '' || text.trim() === '{}') return undefined;
    return { file: parseAuthFile(text, this.description), version: out.VersionId ?? '' };
  }

  async readIfChanged(version: string): Promise<AuthSnapshot | undefined> {
    const snapshot = await this.read();
    return snapshot && snapshot.version !== version ? snapshot : undefined;
  }

  async write(file: AuthFile, expectedVersion: string | undefined): Promise<void> {
    if (expectedVersion !== undefined) {
      // Secrets Manager has no conditional write; checking the current version just before the
      // write narrows the window to one round trip.
      const described = await this.client.send(new DescribeSecretCommand({ SecretId: this.secretId }));
      const current = Object.entries(described.VersionIdsToStages ?? {}).find(([, stages]) =>
        stages.includes('AWSCURRENT'),
      )?.[0];
      if (current !== expectedVersion) {
        throw new ConflictError(
          `${this.description} changed while it was being edited; run the command again`,
        );
      }
    }
    await this.client.send(
      new PutSecretValueCommand({
        SecretId: this.secretId,
        SecretString: serializeAuthFile(file),
        ClientRequestToken: randomUUID(),
      }),
    );
  }
}

/** The store named by a command line or an environment: a file path, or a secret ARN/name. */
export function openAuthStore(
  where: { authFile?: string | undefined; authSecret?: string | undefined; authCacheSeconds?: number },
  region?: string,
): AuthStore | undefined {
  if (where.authSecret) {
    // A secret ARN names its region; the SDK's default chain (AWS_REGION, the profile) covers names.
    const arnRegion = /^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):/.exec(where.authSecret)?.[1];
    const chosen = arnRegion ?? region;
    return new SecretAuthStore(
      new SecretsManagerClient({ ...(chosen ? { region: chosen } : {}), maxAttempts: 3 }),
      where.authSecret,
      where.authCacheSeconds,
    );
  }
  if (where.authFile) return new FileAuthStore(where.authFile);
  return undefined;
}
