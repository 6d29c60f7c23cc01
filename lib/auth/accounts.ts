import type { Logger } from '../logging/logger.ts';
import type { Account, AuthFile } from './auth-file.ts';
import type { AuthStore } from './auth-store.ts';
import type { Grant, Permissions } from './grants.ts';
import { DUMMY_HASH, verifyPassword } from './passwords.ts';

/** Failed logins for one account before each further attempt is slowed down. */
const FREE_FAILURES = 5;
const MAX_DELAY_MS = 10_000;

/**
 * The accounts of an auth store, re-read when it changes (checked at most every `store.refreshMs`:
 * 2 s for a file, 30 s for a secret), so that `berth users remove` or `berth robots revoke` takes
 * effect without a restart.
 */
export class Accounts {
  private file: AuthFile;
  private version: string;
  private checkedAt = Date.now();
  private reloading: Promise<void> | undefined;
  private readonly failures = new Map<string, { count: number; last: number }>();
  private readonly listeners: ((file: AuthFile) => Promise<void>)[] = [];

  private constructor(
    private readonly store: AuthStore,
    snapshot: { file: AuthFile; version: string },
    private readonly logger: Logger,
  ) {
    this.file = snapshot.file;
    this.version = snapshot.version;
  }

  static async load(store: AuthStore, logger: Logger): Promise<Accounts> {
    const snapshot = await store.read();
    if (!snapshot) {
      throw new Error(
        `${store.description} holds no accounts yet: add one with \`berth users add\` (a deployed stack's bootstrap writes the first)`,
      );
    }
    return new Accounts(store, snapshot, logger);
  }

  /** Called after each reload with the new contents (the token service follows a new signing key). */
  onReload(listener: (file: AuthFile) => Promise<void>): void {
    this.listeners.push(listener);
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

  /** Logs a refresh token that was refused (forged, expired, or its account changed or gone). */
  logRejectedRefresh(source: string): void {
    this.logger.warn('refresh token refused', { source });
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

  /**
   * Whether a token's subject may still act: anonymous, or an account that exists and has not
   * expired. Checked on every request, so a removal or revocation outlives no token.
   */
  async isActive(subject: string): Promise<boolean> {
    if (subject === '') return true;
    await this.refresh();
    const account = this.file.accounts.find((a) => a.name === subject);
    return (
      account !== undefined &&
      !(account.expiresAt !== undefined && Date.parse(account.expiresAt) <= Date.now())
    );
  }

  /** The stored account, for checks that need more than its grants (refresh tokens). */
  async find(name: string): Promise<Account | undefined> {
    await this.refresh();
    return this.file.accounts.find((a) => a.name === name);
  }

  get anonymous(): readonly Grant[] {
    return this.file.anonymous;
  }

  /** Re-reads the store when the last check is older than its refresh interval; one reload at a time. */
  async refresh(): Promise<void> {
    if (Date.now() - this.checkedAt < this.store.refreshMs) return;
    this.checkedAt = Date.now();
    this.reloading ??= this.reload().finally(() => (this.reloading = undefined));
    await this.reloading;
  }

  private async reload(): Promise<void> {
    try {
      const changed = await this.store.readIfChanged(this.version);
      if (!changed) return;
      for (const listener of this.listeners) await listener(changed.file);
      this.file = changed.file;
      this.version = changed.version;
      this.logger.info('accounts reloaded', { accounts: this.file.accounts.length });
    } catch (err) {
      // Keep serving with the accounts we have: a half-written file or an unreachable secret must
      // not open the registry, nor close it to everyone.
      this.logger.warn('accounts could not be reloaded; keeping the previous ones', {
        store: this.store.description,
        errorMessage: (err as Error).message.slice(0, 300),
      });
    }
  }
}
