/**
 * Who the page acts as, and the bearer tokens it holds. The password is sent once, to /token, and
 * never kept: the page keeps the refresh token the registry gives the web UI (valid for a working
 * day, voided by a password change) in this tab's sessionStorage, and access tokens (minutes) in
 * memory only, one per scope.
 */

const STORE_KEY = 'berth.session';
const WEB_CLIENT_ID = 'berth-ui';

export type AuthMode = 'open' | 'token';

interface Stored {
  readonly user: string;
  readonly refreshToken: string;
}

interface Cached {
  readonly token: string;
  readonly expiresAt: number;
}

interface TokenAnswer {
  token?: string;
  access_token?: string;
  expires_in?: number;
  refresh_token?: string;
}

export class SignInError extends Error {}

export class Session {
  mode: AuthMode = 'open';
  private stored: Stored | undefined;
  private readonly tokens = new Map<string, Cached>();
  private readonly listeners = new Set<() => void>();

  constructor() {
    try {
      const raw = sessionStorage.getItem(STORE_KEY);
      const parsed = raw ? (JSON.parse(raw) as Partial<Stored>) : undefined;
      if (typeof parsed?.user === 'string' && typeof parsed.refreshToken === 'string') {
        this.stored = { user: parsed.user, refreshToken: parsed.refreshToken };
      }
    } catch {
      this.stored = undefined;
    }
  }

  /** The signed-in account, or undefined for anonymous browsing. */
  get user(): string | undefined {
    return this.stored?.user;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Asks the registry whether it wants tokens: `/v2/` answers 200 when authentication is off. */
  async detect(): Promise<AuthMode> {
    const res = await fetch('/v2/', { headers: { Accept: 'application/json' } });
    this.mode = res.status === 401 ? 'token' : 'open';
    return this.mode;
  }

  async signIn(user: string, password: string): Promise<void> {
    const form = new URLSearchParams({
      grant_type: 'password',
      username: user,
      password,
      client_id: WEB_CLIENT_ID,
      access_type: 'offline',
      service: 'berth',
      scope: 'registry:catalog:*',
    });
    const res = await fetch('/token', { method: 'POST', body: form });
    if (res.status === 401) throw new SignInError('Incorrect name or password (or secret).');
    if (!res.ok) throw new SignInError(`The registry refused the sign-in (${res.status}).`);
    const answer = (await res.json()) as TokenAnswer;
    if (!answer.refresh_token) throw new SignInError('The registry gave no session token.');
    this.tokens.clear();
    this.remember('registry:catalog:*', answer);
    this.stored = { user, refreshToken: answer.refresh_token };
    sessionStorage.setItem(STORE_KEY, JSON.stringify(this.stored));
    this.changed();
  }

  signOut(): void {
    this.stored = undefined;
    this.tokens.clear();
    sessionStorage.removeItem(STORE_KEY);
    this.changed();
  }

  /** An access token for these scopes (anonymous when not signed in); undefined when auth is off. */
  async token(scope: string): Promise<string | undefined> {
    if (this.mode === 'open') return undefined;
    const cached = this.tokens.get(scope);
    if (cached && cached.expiresAt - 15_000 > Date.now()) return cached.token;
    let res: Response;
    if (this.stored) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: this.stored.refreshToken,
        client_id: WEB_CLIENT_ID,
        service: 'berth',
        scope,
      });
      res = await fetch('/token', { method: 'POST', body: form });
      if (res.status === 401) {
        // The session ended (expired, password changed, account removed): browse anonymously.
        this.signOut();
        throw new SignInError('Your session has ended. Sign in again.');
      }
    } else {
      const query = new URLSearchParams({ service: 'berth' });
      for (const s of scope.split(' ')) query.append('scope', s);
      res = await fetch(`/token?${query}`);
    }
    if (!res.ok) throw new Error(`the token endpoint answered ${res.status}`);
    return this.remember(scope, (await res.json()) as TokenAnswer);
  }

  private remember(scope: string, answer: TokenAnswer): string {
    const token = answer.token ?? answer.access_token ?? '';
    this.tokens.set(scope, { token, expiresAt: Date.now() + (answer.expires_in ?? 60) * 1000 });
    return token;
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
