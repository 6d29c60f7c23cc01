import { stat } from 'node:fs/promises';
import type { Logger } from '../logging/logger.ts';
import { readAuthFile, type Account, type AuthFile } from './auth-file.ts';
import type { Grant, Permissions } from './grants.ts';
import { DUMMY_HASH, verifyPassword } from './passwords.ts';

/** Failed logins for one account before each further attempt is slowed down. */
const FREE_FAILURES = 5;
const MAX_DELAY_MS = 10_000;
const RELOAD_CHECK_MS = 2_000;

/**
 * The accounts of an auth file, re-read when the file changes (checked at most every 2 s), so that
 * `berth users remove` or `berth robots revoke` takes effect without a restart.
 */
export class Accounts {
  private file: AuthFile;
  private mtimeMs: number;
  private checkedAt = Date.now();
  private readonly failures = new Map<string, { count: number; last: number }>();

  private constructor(
    private readonly path: string,
    file: AuthFile,
    mtimeMs: number,
    private readonly logger: Logger,
  ) {
    this.file = file;
    this.mtimeMs = mtimeMs;
  }

  static async load(path: string, logger: Logger): Promise<Accounts> {
    const file = await readAuthFile(path);
    return new Accounts(path, file, (await stat(path)).mtimeMs, logger);
  }

  get signingKey(): AuthFile['signingKey'] {
    return this.file.signingKey;
  }

  /** Checks a username and password; logs failures with the source address and slows repeated ones. */
  async login(name: string, password: string, source: string): Promise<Account | undefined> {
    await this.refresh();
    const key = name.toLowerCase();
    const failed = this.failures.get(key);
    if (failed && failed.count >= FREE_FAILURES) {
      await new Promise((r) =>
        setTimeout(r, Math.min(MAX_DELAY_MS, 250 * 2 ** (failed.count - FREE_FAILURES))),
      );
    }
    const account = this.file.accounts.find((a) => a.name === name);
    const ok = await verifyPassword(password, account?.passwordHash ?? DUMMY_HASH);
    const expired = account?.expiresAt !== undefined && Date.parse(account.expiresAt) <= Date.now();
    if (account && ok && !expired) {
      this.failures.delete(key);
      return account;
    }
    const count = (failed?.count ?? 0) + 1;
    this.failures.set(key, { count, last: Date.now() });
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
    this.logger.warn('login failed', {
      account: name.slice(0, 128),
      source,
      failures: count,
      reason: !account ? 'unknown account' : expired ? 'expired' : 'wrong password',
    });
    return undefined;
  }

  /** What a token subject may do now: an account's grants, or the anonymous ones for ''. */
  async permissionsOf(subject: string): Promise<Permissions> {
    await this.refresh();
    if (subject === '') return { grants: this.file.anonymous, catalog: false };
    const account = this.file.accounts.find((a) => a.name === subject);
    const expired = account?.expiresAt !== undefined && Date.parse(account.expiresAt) <= Date.now();
    if (!account || expired) return { grants: [], catalog: false };
    return { grants: account.grants, catalog: account.catalog };
  }

  get anonymous(): readonly Grant[] {
    return this.file.anonymous;
  }

  private async refresh(): Promise<void> {
    if (Date.now() - this.checkedAt < RELOAD_CHECK_MS) return;
    this.checkedAt = Date.now();
    try {
      const mtimeMs = (await stat(this.path)).mtimeMs;
      if (mtimeMs === this.mtimeMs) return;
      this.file = await readAuthFile(this.path);
      this.mtimeMs = mtimeMs;
      this.logger.info('auth file reloaded', { accounts: this.file.accounts.length });
    } catch (err) {
      // Keep serving with the accounts we have; a half-written or broken file must not open the registry.
      this.logger.warn('auth file could not be reloaded; keeping the previous accounts', {
        errorMessage: (err as Error).message.slice(0, 300),
      });
    }
  }
}
