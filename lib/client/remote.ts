import type { Credentials } from './credentials.ts';

export interface RemoteOptions {
  /** The remote registry's origin, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com`. */
  readonly url: string;
  readonly credentials?: Credentials;
  readonly userAgent?: string;
}

export interface RemoteRequest {
  readonly method: string;
  /** Path and query, as sent to the remote (`/v2/...`). */
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** A buffered body is replayed after a token challenge; a stream is sent once. */
  readonly body?: Uint8Array | ReadableStream<Uint8Array>;
  /** The token scope the request needs, e.g. `repository:team/app:pull,push`. */
  readonly scope?: string;
}

interface Challenge {
  readonly realm: string;
  readonly service?: string;
}

/** An error answer of the remote registry, kept whole so it can be passed on to a local client. */
export class RemoteError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
    readonly body: string,
  ) {
    super(message);
    this.name = 'RemoteError';
  }

  static async from(res: Response, what: string): Promise<RemoteError> {
    // An error body that cannot be read leaves the message at the status, which still says what failed.
    const body = await res.text().catch(() => '');
    let code: string | undefined;
    let message = `${what}: HTTP ${res.status}`;
    try {
      const first = (JSON.parse(body) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
      code = first?.code;
      if (first?.message) message = `${what}: ${first.code} ${first.message}`;
    } catch {
      // Not a registry error body (a gateway's own answer); the status says it.
    }
    return new RemoteError(res.status, code, message, body);
  }
}

/**
 * A client of one remote registry that does the Docker token dance itself: it learns the token
 * realm from the first challenge, then asks for a token per scope (cached until shortly before it
 * expires) with the user's credentials, which stay in memory.
 */
export class RemoteRegistry {
  readonly url: string;
  private challenge: Challenge | undefined;
  private probed = false;
  private readonly tokens = new Map<string, { token: string; until: number }>();

  constructor(private readonly options: RemoteOptions) {
    this.url = options.url.replace(/\/+$/, '');
  }

  /** The host (and port) credentials are filed under in the docker config. */
  get host(): string {
    return new URL(this.url).host;
  }

  async request(req: RemoteRequest): Promise<Response> {
    await this.probe();
    const replayable = !(req.body instanceof ReadableStream);
    let res = await this.send(req, await this.authorization(req.scope));
    if (res.status === 401 && replayable) {
      const challenge = parseChallenge(res.headers.get('WWW-Authenticate'));
      if (challenge) {
        await res.body?.cancel();
        this.challenge = challenge.challenge;
        const scope = challenge.scope ?? req.scope;
        if (scope) this.tokens.delete(scope);
        res = await this.send(req, await this.authorization(scope, true));
      }
    }
    return res;
  }

  /**
   * Makes sure the credentials get a token for `scope` (at most one round trip, none while a token
   * for it is cached): a relay that answers a client itself finds out here, not later, that the
   * remote refuses them. Throws the remote's refusal as a RemoteError.
   */
  async authorize(scope: string): Promise<void> {
    await this.probe();
    await this.authorization(scope);
  }

  private async send(req: RemoteRequest, authorization: string | undefined): Promise<Response> {
    const headers: Record<string, string> = {
      'User-Agent': this.options.userAgent ?? 'berth-relay',
      // fetch decodes compressed answers but keeps their headers: ask for none.
      'Accept-Encoding': 'identity',
      ...req.headers,
      ...(authorization && { Authorization: authorization }),
    };
    const stream = req.body instanceof ReadableStream;
    return fetch(this.url + req.path, {
      method: req.method,
      headers,
      redirect: 'manual',
      ...(req.body !== undefined && { body: req.body as BodyInit }),
      ...(stream && { duplex: 'half' }),
    } as RequestInit);
  }

  /** Learns once whether the remote wants tokens, so that streamed bodies go with one at once. */
  private async probe(): Promise<void> {
    if (this.probed) return;
    const res = await fetch(`${this.url}/v2/`, { headers: { 'Accept-Encoding': 'identity' } });
    await res.body?.cancel();
    if (res.status === 401) this.challenge = parseChallenge(res.headers.get('WWW-Authenticate'))?.challenge;
    else if (!res.ok) {
      throw new Error(`${this.url}/v2/ answered ${res.status}: is this the registry's address?`);
    }
    this.probed = true;
  }

  private async authorization(scope: string | undefined, fresh = false): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) {
      const c = this.options.credentials;
      return c?.kind === 'password'
        ? `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`
        : undefined;
    }
    const key = scope ?? '';
    const cached = this.tokens.get(key);
    if (!fresh && cached && cached.until > Date.now()) return `Bearer ${cached.token}`;
    const { token, expiresIn } = await this.fetchToken(challenge, scope);
    this.tokens.set(key, { token, until: Date.now() + Math.max(30, expiresIn - 30) * 1000 });
    return `Bearer ${token}`;
  }

  private async fetchToken(
    challenge: Challenge,
    scope: string | undefined,
  ): Promise<{ token: string; expiresIn: number }> {
    const credentials = this.options.credentials;
    let res: Response;
    if (credentials?.kind === 'identity-token') {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: credentials.token,
        client_id: 'berth',
        ...(challenge.service && { service: challenge.service }),
        ...(scope && { scope }),
      });
      res = await fetch(challenge.realm, { method: 'POST', body: form });
    } else {
      const url = new URL(challenge.realm);
      if (challenge.service) url.searchParams.set('service', challenge.service);
      if (scope) url.searchParams.set('scope', scope);
      const headers: Record<string, string> = {};
      if (credentials) {
        headers.Authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
      }
      res = await fetch(url, { headers });
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new RemoteError(
        res.status,
        'UNAUTHORIZED',
        res.status === 401
          ? `the remote registry refused the credentials${credentials ? '' : ' (none found: `docker login` to it, or pass --username and --password-stdin)'}`
          : `the token endpoint ${challenge.realm} answered ${res.status}`,
        '',
      );
    }
    const body = (await res.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new Error(`the token endpoint ${challenge.realm} answered without a token`);
    return { token, expiresIn: body.expires_in ?? 60 };
  }
}

/** Parses `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string | null): { challenge: Challenge; scope?: string } | undefined {
  if (!header || !/^Bearer\s/i.test(header)) return undefined;
  const params: Record<string, string> = {};
  for (const m of header.slice(7).matchAll(/([a-z_]+)="([^"]*)"/gi)) params[m[1]!.toLowerCase()] = m[2]!;
  if (!params.realm) return undefined;
  return {
    challenge: { realm: params.realm, ...(params.service && { service: params.service }) },
    ...(params.scope && { scope: params.scope }),
  };
}

/** The scope a request on `repo` needs: pull to read, pull and push to write. */
export function repositoryScope(repo: string, write: boolean): string {
  return `repository:${repo}:${write ? 'pull,push' : 'pull'}`;
}
