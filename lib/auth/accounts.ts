import { createHash } from 'node:crypto';
import type { Logger } from '../logging/logger.ts';
import type { Account, AuthFile } from './auth-file.ts';
import type { AuthStore } from './auth-store.ts';
import type { Grant, Permissions } from './grants.ts';
import { LoginThrottle } from './login-throttle.ts';
import { DUMMY_HASH, verifyPassword } from './passwords.ts';

export type LoginResult =
  | { readonly ok: true; readonly account: Account }
  | { readonly ok: false; readonly reason: 'unknown account' | 'wrong password' | 'expired' }
  | {
      readonly ok: false;
      readonly reason: 'throttled';
      readonly scope: 'account' | 'source';
      readonly retryAfterSeconds: number;
    };

/** A failed or refused login, for metrics (on Lambda, an embedded-metric line). */
export interface LoginEvent {
  readonly kind: 'failure' | 'throttled';
  /** Why it failed (`unknown account`, `wrong password`, `expired`), or what is locked (`account`, `source`). */
  readonly reason: string;
  readonly source: string;
}

export interface AccountsOptions {
  readonly throttle?: LoginThrottle;
  readonly onLoginEvent?: (event: LoginEvent) => void;
}

/**
 * The accounts of an auth store, re-read when it changes (checked at most every `store.refreshMs`:
 * on every request for a file, every BERTH_AUTH_CACHE_SECONDS for a secret), so that `berth users
 * remove` or `berth robots revoke` takes effect without a restart.
 */
export class Accounts {
  private file: AuthFile;
  private version: string;
  private checkedAt = Date.now();
  private reloading: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private readonly throttle: LoginThrottle;
  private readonly listeners: ((file: AuthFile) => Promise<void>)[] = [];

  private constructor(
    private readonly store: AuthStore,
    snapshot: { file: AuthFile; version: string },
    private readonly logger: Logger,
    private readonly options: AccountsOptions,
  ) {
    this.file = snapshot.file;
    this.version = snapshot.version;
    this.throttle = options.throttle ?? new LoginThrottle();
  }

  static async load(store: AuthStore, logger: Logger, options: AccountsOptions = {}): Promise<Accounts> {
    const snapshot = await store.read();
    if (!snapshot) {
      throw new Error(
        `${store.description} holds no accounts yet: add one with \`berth users add\` (a deployed stack's bootstrap writes the first)`,
      );
    }
    return new Accounts(store, snapshot, logger, options);
  }

  /** Called after each reload with the new contents (the token service follows a new signing key). */
  onReload(listener: (file: AuthFile) => Promise<void>): void {
    this.listeners.push(listener);
  }

  get signingKey(): AuthFile['signingKey'] {
    return this.file.signingKey;
  }

  /**
   * Checks a username and password. Failures are logged with the source address; repeated ones
   * for this account from this address (or many from this address) are refused without a check
   * for a while (lib/auth/login-throttle.ts).
   */
  async login(name: string, password: string, source: string): Promise<LoginResult> {
    const attempt = await this.throttle.attempt(name.slice(0, 128), source, async () => {
      await this.refresh();
      const account = this.file.accounts.find((a) => a.name === name);
      const ok = await verifyPassword(password, account?.passwordHash ?? DUMMY_HASH);
      const result: LoginResult =
        account && ok && !isExpired(account)
          ? { ok: true, account }
          : { ok: false, reason: !account ? 'unknown account' : ok ? 'expired' : 'wrong password' };
      return { ok: result.ok, value: result };
    });
    if (attempt.outcome === 'throttled') {
      if (attempt.first) {
        this.logger.warn('login throttled', {
          account: name.slice(0, 128),
          source,
          scope: attempt.scope,
          retryAfterSeconds: attempt.retryAfterSeconds,
        });
      }
      this.options.onLoginEvent?.({ kind: 'throttled', reason: attempt.scope, source });
      return {
        ok: false,
        reason: 'throttled',
        scope: attempt.scope,
        retryAfterSeconds: attempt.retryAfterSeconds,
      };
    }
    const result = attempt.value;
    if (!result.ok) {
      this.logger.warn('login failed', { account: name.slice(0, 128), source, reason: result.reason });
      this.options.onLoginEvent?.({ kind: 'failure', reason: result.reason, source });
    }
    return result;
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
    if (!account || isExpired(account)) return { grants: [], catalog: false };
    return { grants: account.grants, catalog: account.catalog };
  }

  /**
   * What a token's subject may do now, if the token still stands for it: anonymous, or the same
   * account (same generation: not removed and re-created since) that has not expired. Checked on
   * every request, so removal, re-creation, revocation and cut grants outlive no token.
   */
  async current(subject: string, generation: string | undefined): Promise<Permissions | undefined> {
    await this.refresh();
    if (subject === '') return { grants: this.file.anonymous, catalog: false };
    const account = this.file.accounts.find((a) => a.name === subject);
    if (!account || isExpired(account) || generation !== generationOf(account)) return undefined;
    return { grants: account.grants, catalog: account.catalog };
  }

  /** Whether a subject names an account that exists and has not expired (anonymous always does). */
  async isActive(subject: string): Promise<boolean> {
    if (subject === '') return true;
    await this.refresh();
    const account = this.file.accounts.find((a) => a.name === subject);
    return account !== undefined && !isExpired(account);
  }

  /** The stored account, for checks that need more than its grants (refresh tokens). */
  async find(name: string): Promise<Account | undefined> {
    await this.refresh();
    return this.file.accounts.find((a) => a.name === name);
  }

  get anonymous(): readonly Grant[] {
    return this.file.anonymous;
  }

  /**
   * Re-reads the store when the last check is older than its refresh interval (for a file: always).
   * A caller that arrives while a reload is running waits for the next one, which starts after that
   * one ends: a reload that began before a change must not answer for a request that began after it.
   * Callers arriving meanwhile share that next reload.
   */
  async refresh(): Promise<void> {
    // Within the interval: the data was read (or is being read) since the interval began.
    if (Date.now() - this.checkedAt < this.store.refreshMs) return this.reloading;
    if (!this.reloading) return this.startReload();
    this.queued ??= this.reloading.then(() => {
      this.queued = undefined;
      return this.startReload();
    });
    return this.queued;
  }

  private startReload(): Promise<void> {
    this.checkedAt = Date.now();
    this.reloading = this.reload().finally(() => (this.reloading = undefined));
    return this.reloading;
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

function isExpired(account: Account): boolean {
  return account.expiresAt !== undefined && Date.parse(account.expiresAt) <= Date.now();
}

/**
 * Which incarnation of an account a token was issued to: the account's `generation` (a random id
 * `berth users add` and `berth robots create` write), or for accounts written before it existed a
 * digest of the name and creation time. Removing and re-creating an account, or setting its
 * password again, gives it a new one.
 */
export function generationOf(account: Account): string {
  return (
    account.generation ??
    createHash('sha256').update(`${account.name}\n${account.createdAt}`).digest('base64url').slice(0, 16)
  );
}
