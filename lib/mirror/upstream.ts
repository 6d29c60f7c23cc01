import type { Logger } from '../logging/logger.ts';
import { MANIFEST_MEDIA_TYPES } from '../oci/media-types.ts';
import type { UpstreamSpec } from './spec.ts';

export interface UpstreamCredentials {
  readonly username: string;
  readonly password: string;
}

/** Where upstream credentials come from: the environment or a secret; undefined pulls anonymously. */
export type CredentialSource = () => Promise<UpstreamCredentials | undefined>;

/** The upstream could not be asked: connection refused or reset, timeout, 5xx, 429, or a failed token fetch. */
export class UpstreamUnavailable extends Error {
  constructor(
    readonly upstream: string,
    reason: string,
  ) {
    super(`upstream ${upstream} is unavailable: ${reason}`);
    this.name = 'UpstreamUnavailable';
  }
}

export interface UpstreamResponse {
  readonly response: Response;
  /**
   * The last URL of a redirect chain that left the upstream's origin (Docker Hub, GHCR and S3-backed
   * registries send blob GETs to a CDN or presigned storage URL), usable without credentials.
   */
  readonly redirectedTo?: string;
}

/** Every manifest type Berth stores, so the upstream answers with the multi-platform index when there is one. */
const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
const HEADERS_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 5;
const MAX_TOKEN_RESPONSE = 64 * 1024;
/** What the token spec says to assume when the token endpoint names no lifetime. */
const DEFAULT_TOKEN_SECONDS = 60;

interface CachedToken {
  readonly authorization: string;
  readonly expiresAt: number;
}

/**
 * An HTTP client for one upstream registry that speaks its authentication: a 401 with
 * `WWW-Authenticate: Bearer realm=...,service=...` is answered by fetching a pull token from the realm
 * (anonymously, or with the configured credentials as Basic auth) and retrying; `Basic` is answered
 * with the credentials. Tokens are kept per repository until they expire. Credentials and tokens are
 * never logged.
 */
export class UpstreamClient {
  private readonly tokens = new Map<string, CachedToken>();

  constructor(
    readonly spec: UpstreamSpec,
    private readonly credentials: CredentialSource,
    private readonly logger: Logger,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly now: () => number = Date.now,
  ) {}

  get url(): string {
    return this.spec.url;
  }

  headManifest(name: string, reference: string): Promise<UpstreamResponse> {
    return this.request(name, 'HEAD', `manifests/${reference}`, { Accept: ACCEPT });
  }

  getManifest(name: string, reference: string): Promise<UpstreamResponse> {
    return this.request(name, 'GET', `manifests/${reference}`, { Accept: ACCEPT });
  }

  headBlob(name: string, digest: string): Promise<UpstreamResponse> {
    return this.request(name, 'HEAD', `blobs/${digest}`, {});
  }

  getBlob(name: string, digest: string, signal?: AbortSignal): Promise<UpstreamResponse> {
    return this.request(name, 'GET', `blobs/${digest}`, {}, signal);
  }

  private async request(
    name: string,
    method: string,
    path: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<UpstreamResponse> {
    const url = `${this.spec.url}/v2/${name}/${path}`;
    const scope = `repository:${name}:pull`;
    const cached = this.tokens.get(scope);
    const authorization = cached && cached.expiresAt > this.now() ? cached.authorization : undefined;
    let answer = await this.send(url, method, headers, authorization, signal);
    if (answer.response.status === 401) {
      const challenge = answer.response.headers.get('WWW-Authenticate');
      await answer.response.body?.cancel();
      const fresh = await this.authorize(challenge, scope, signal);
      if (!fresh) return answer;
      answer = await this.send(url, method, headers, fresh, signal);
    }
    const status = answer.response.status;
    if (status >= 500 || status === 429) {
      await answer.response.body?.cancel();
      throw new UpstreamUnavailable(this.spec.url, `${method} ${path.split('/')[0]} answered ${status}`);
    }
    return answer;
  }

  /** One request, following redirects by hand: credentials go to the upstream's origin only. */
  private async send(
    url: string,
    method: string,
    headers: Record<string, string>,
    authorization: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<UpstreamResponse> {
    const origin = new URL(this.spec.url).origin;
    let target = url;
    for (let hop = 0; ; hop++) {
      const sameOrigin = new URL(target).origin === origin;
      const response = await this.fetchWithDeadline(
        target,
        {
          method,
          redirect: 'manual',
          headers: { ...headers, ...(authorization && sameOrigin ? { Authorization: authorization } : {}) },
        },
        signal,
      );
      const location = response.headers.get('Location');
      if (response.status < 300 || response.status >= 400 || response.status === 304 || !location) {
        return { response, redirectedTo: sameOrigin ? undefined : target };
      }
      await response.body?.cancel();
      if (hop >= MAX_REDIRECTS) {
        throw new UpstreamUnavailable(this.spec.url, `more than ${MAX_REDIRECTS} redirects`);
      }
      target = new URL(location, target).toString();
    }
  }

  /** fetch with a deadline on the response headers only: a large body may take as long as it takes. */
  private async fetchWithDeadline(
    url: string,
    init: RequestInit,
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error('timeout')), HEADERS_TIMEOUT_MS);
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.fetchImpl(url, { ...init, signal: controller.signal });
    } catch (err) {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
      throw new UpstreamUnavailable(this.spec.url, networkReason(err));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Answers a challenge; undefined when it cannot be answered (the 401 then stands). */
  private async authorize(
    header: string | null,
    scope: string,
    signal: AbortSignal | undefined,
  ): Promise<string | undefined> {
    const challenge = header ? parseChallenge(header) : undefined;
    if (!challenge) return undefined;
    let credentials: UpstreamCredentials | undefined;
    try {
      credentials = await this.credentials();
    } catch {
      throw new UpstreamUnavailable(this.spec.url, 'its credentials could not be read');
    }
    const basic = credentials
      ? `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`
      : undefined;
    if (challenge.scheme === 'basic') {
      if (basic) this.tokens.set(scope, { authorization: basic, expiresAt: Number.POSITIVE_INFINITY });
      return basic;
    }
    const realm = challenge.params.realm;
    if (!realm || !/^https?:\/\//i.test(realm)) return undefined;
    const tokenUrl = new URL(realm);
    if (challenge.params.service) tokenUrl.searchParams.set('service', challenge.params.service);
    tokenUrl.searchParams.set('scope', scope);
    const response = await this.fetchWithDeadline(
      tokenUrl.toString(),
      { method: 'GET', headers: basic ? { Authorization: basic } : {}, redirect: 'follow' },
      signal,
    );
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      this.logger.warn('upstream refused the token request', {
        upstream: this.spec.url,
        status: response.status,
        withCredentials: basic !== undefined,
      });
      return undefined;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new UpstreamUnavailable(this.spec.url, `its token endpoint answered ${response.status}`);
    }
    const body = await readSmallJson(response);
    const token =
      typeof body?.token === 'string'
        ? body.token
        : typeof body?.access_token === 'string'
          ? body.access_token
          : '';
    if (!token) throw new UpstreamUnavailable(this.spec.url, 'its token endpoint returned no token');
    const seconds =
      typeof body?.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    const authorization = `Bearer ${token}`;
    // Renewed a little early, so a token never expires between the check and the request.
    this.tokens.set(scope, { authorization, expiresAt: this.now() + Math.max(0, seconds - 10) * 1000 });
    return authorization;
  }
}

interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

function parseChallenge(header: string): Challenge | undefined {
  const match = /^\s*(Bearer|Basic)\b(.*)$/i.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const m of (match[2] ?? '').matchAll(/([a-zA-Z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g)) {
    params[m[1]!.toLowerCase()] = m[2] ?? m[3] ?? '';
  }
  return { scheme: match[1]!.toLowerCase() as 'bearer' | 'basic', params };
}

async function readSmallJson(response: Response): Promise<Record<string, unknown> | undefined> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (response.body) {
    for await (const chunk of response.body) {
      size += chunk.byteLength;
      if (size > MAX_TOKEN_RESPONSE) {
        // The oversized answer is dropped and the caller reports it; a failed cancel of a body we
        // abandon changes nothing.
        await response.body.cancel().catch(() => undefined);
        return undefined;
      }
      chunks.push(chunk);
    }
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function networkReason(err: unknown): string {
  const cause =
    err instanceof Error ? (err.cause as { code?: string; message?: string } | undefined) : undefined;
  if (cause?.code) return cause.code === 'ECONNREFUSED' ? 'connection refused' : cause.code;
  if (err instanceof Error && err.message === 'timeout')
    return `no answer within ${HEADERS_TIMEOUT_MS / 1000} s`;
  if (err instanceof Error && (err.cause as Error | undefined)?.message === 'timeout') {
    return `no answer within ${HEADERS_TIMEOUT_MS / 1000} s`;
  }
  return err instanceof Error ? err.message.slice(0, 200) : 'network error';
}
