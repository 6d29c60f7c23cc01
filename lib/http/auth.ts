import { createHash, timingSafeEqual } from 'node:crypto';
import { generationOf } from '../auth/accounts.ts';
import type { Account } from '../auth/auth-file.ts';
import { allowedActions, grantAccess } from '../auth/grants.ts';
import { parseScopes } from '../auth/scope.ts';
import { RegistryError } from '../oci/errors.ts';
import { readLimited } from '../util/read-body.ts';
import type { Need } from './access.ts';
import { contentLength, requestBody } from './body.ts';
import type { Caller, HttpAuth, HttpContext } from './context.ts';

/** Checks the request's bearer token against what the route needs; throws 401 or 403. */
export async function authorize(c: HttpContext, auth: HttpAuth, need: Need): Promise<Caller> {
  const header = c.req.header('Authorization') ?? '';
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  const claims = match ? await auth.tokens.verify(match[1]!) : undefined;
  const challenge = (scope?: string, error?: string) => {
    const params = [`realm="${realmOf(c)}"`, `service="${auth.tokens.service}"`];
    if (scope) params.push(`scope="${scope}"`);
    if (error) params.push(`error="${error}"`);
    return { 'WWW-Authenticate': `Bearer ${params.join(',')}` };
  };
  const scope = need.kind === 'token' ? undefined : need.challenge;
  if (!claims) {
    throw new RegistryError(
      'UNAUTHORIZED',
      match
        ? 'the token is invalid or expired; log in again'
        : 'authentication required: log in with `docker login`',
      { headers: challenge(scope, match ? 'invalid_token' : undefined) },
    );
  }
  const permissions = await auth.accounts.current(claims.subject, claims.generation);
  if (!permissions) {
    // Removed, re-created, given a new password, revoked or expired since the token was issued: the
    // token dies with that incarnation of the account.
    throw new RegistryError(
      'UNAUTHORIZED',
      `account ${claims.subject} was removed, re-created, given a new password or has expired since this token was issued; log in again`,
      { headers: challenge(scope, 'invalid_token') },
    );
  }
  // What the token may do now: what it was issued for, less what the account has lost since (grants
  // cut, catalog taken away), so a change in the auth store holds without waiting for expiry.
  const caller = { subject: claims.subject, access: grantAccess(permissions, claims.access) };
  if (need.kind === 'token') return caller;
  if (need.kind === 'admin') {
    if (caller.access.some((a) => a.type === 'registry' && a.name === 'catalog' && a.actions.includes('*'))) {
      return caller;
    }
    if (!permissions.catalog) {
      throw new RegistryError(
        'DENIED',
        `account ${claims.subject || '(anonymous)'} may not read registry-wide reports: that needs the registry:catalog:* grant`,
      );
    }
    throw new RegistryError(
      'UNAUTHORIZED',
      `the token does not cover ${need.challenge}; ask for that scope`,
      {
        headers: challenge(need.challenge, 'insufficient_scope'),
      },
    );
  }
  if (may(caller, need.name, need.action)) return caller;
  const { grants } = permissions;
  if (claims.subject === '' && !allowedActions(grants, need.name).has(need.action)) {
    throw new RegistryError(
      'UNAUTHORIZED',
      `authentication required to ${need.action} ${need.name}: log in`,
      {
        headers: challenge(need.challenge),
      },
    );
  }
  if (!allowedActions(grants, need.name).has(need.action)) {
    // No token would help: say so, instead of sending the client round the token endpoint again.
    throw new RegistryError(
      'DENIED',
      `account ${claims.subject} may not ${need.action} repository ${need.name}`,
      {
        detail: { repository: need.name, action: need.action },
      },
    );
  }
  // The account may, but this token was asked for less (containerd asks for pull first, then push):
  // the client fetches a token with this scope and retries.
  throw new RegistryError(
    'UNAUTHORIZED',
    `the token does not cover ${need.action} on ${need.name}; ask for scope ${need.challenge}`,
    { headers: challenge(need.challenge, 'insufficient_scope') },
  );
}

/** Whether the caller may do `action` on `repository` (auth off: anyone may). */
export function may(caller: Caller | undefined, repository: string, action: string): boolean {
  if (!caller) return true;
  return caller.access.some(
    (a) => a.type === 'repository' && a.name === repository && a.actions.includes(action),
  );
}

/** How long a refresh token (docker's stored "identity token") stays valid, at most. */
export const REFRESH_TOKEN_DAYS = 30;

/**
 * The web UI asks with `client_id=berth-ui`: its refresh token lives in the tab's session storage,
 * so it gets a working day instead of docker's 30 days.
 */
export const WEB_CLIENT_ID = 'berth-ui';
export const WEB_SESSION_HOURS = 8;

/**
 * `GET /token` with Basic credentials (or none, for anonymous access), and the OAuth2 form
 * `POST /token` with `grant_type=password` or `grant_type=refresh_token`. The token carries what
 * was asked, less what the account may not do. `offline_token=true` (GET) or `access_type=offline`
 * (POST, password grant) adds a refresh token, which docker stores instead of the password.
 */
export async function handleToken(c: HttpContext, auth: HttpAuth): Promise<Response> {
  let user: string | undefined;
  let password: string | undefined;
  let refreshToken: string | undefined;
  let scopes: string[];
  let offline: boolean;
  let clientId: string | undefined;
  if (c.req.method === 'POST') {
    const form = await readForm(c);
    const field = (name: string) => [form[name]].flat().filter((v): v is string => typeof v === 'string');
    const grant = field('grant_type')[0];
    if (grant === 'password') {
      user = field('username')[0];
      password = field('password')[0];
      if (user === undefined) {
        return oauthError('invalid_request', 'grant_type=password needs a username and a password');
      }
    } else if (grant === 'refresh_token') {
      refreshToken = field('refresh_token')[0];
      if (!refreshToken)
        return oauthError('invalid_request', 'grant_type=refresh_token needs a refresh_token');
    } else {
      return oauthError('unsupported_grant_type', 'grant_type must be password or refresh_token');
    }
    scopes = field('scope')
      .flatMap((s) => s.split(' '))
      .filter((s) => s !== '');
    offline = field('access_type')[0] === 'offline';
    clientId = field('client_id')[0];
  } else {
    const basic = parseBasic(c.req.header('Authorization'));
    user = basic?.user;
    password = basic?.password;
    scopes = c.req.queries('scope') ?? [];
    offline = c.req.query('offline_token') === 'true';
    clientId = c.req.query('client_id');
  }
  let account: Account | undefined;
  if (refreshToken !== undefined) {
    account = await redeemRefreshToken(auth, refreshToken);
    if (!account) {
      auth.accounts.logRejectedRefresh(sourceOf(c));
      throw new RegistryError('UNAUTHORIZED', 'the stored login has expired or was revoked: log in again', {
        headers: { 'WWW-Authenticate': `Basic realm="${auth.tokens.service}"` },
      });
    }
  } else if (user !== undefined) {
    const login = await auth.accounts.login(user, password ?? '', sourceOf(c));
    if (!login.ok && login.reason === 'throttled') {
      const whose =
        login.scope === 'account' ? `for ${user.slice(0, 128)} from ${sourceOf(c)}` : `from ${sourceOf(c)}`;
      throw new RegistryError(
        'TOOMANYREQUESTS',
        `too many failed logins ${whose}: try again in ${login.retryAfterSeconds} s`,
        { headers: { 'Retry-After': String(login.retryAfterSeconds) } },
      );
    }
    if (!login.ok) {
      throw new RegistryError('UNAUTHORIZED', 'incorrect username or password', {
        headers: { 'WWW-Authenticate': `Basic realm="${auth.tokens.service}"` },
      });
    }
    account = login.account;
  }
  const subject = account?.name ?? '';
  const access = grantAccess(await auth.accounts.permissionsOf(subject), parseScopes(scopes));
  const issued = await auth.tokens.issue(subject, access, account ? generationOf(account) : undefined);
  const refresh =
    account && offline && refreshToken === undefined
      ? await issueRefreshToken(
          auth,
          account,
          clientId === WEB_CLIENT_ID ? WEB_SESSION_HOURS * 3_600_000 : undefined,
        )
      : undefined;
  return Response.json(
    {
      token: issued.token,
      access_token: issued.token,
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt.toISOString(),
      ...(refresh ? { refresh_token: refresh } : {}),
    },
    { headers: { 'Cache-Control': 'no-store' } },
  );
}

async function issueRefreshToken(auth: HttpAuth, account: Account, lifetimeMs?: number): Promise<string> {
  const limit = Date.now() + (lifetimeMs ?? REFRESH_TOKEN_DAYS * 86_400_000);
  const expiresAt = new Date(Math.min(limit, account.expiresAt ? Date.parse(account.expiresAt) : limit));
  return auth.tokens.issueRefresh(account.name, passwordFingerprint(account), expiresAt);
}

/** The account a refresh token stands for, if the token is ours, valid, and its account unchanged. */
async function redeemRefreshToken(auth: HttpAuth, token: string): Promise<Account | undefined> {
  const claims = await auth.tokens.verifyRefresh(token);
  if (!claims) return undefined;
  const account = await auth.accounts.find(claims.subject);
  if (!account || !(await auth.accounts.isActive(account.name))) return undefined;
  const expected = Buffer.from(passwordFingerprint(account));
  const given = Buffer.from(claims.fingerprint);
  return expected.length === given.length && timingSafeEqual(expected, given) ? account : undefined;
}

function passwordFingerprint(account: Account): string {
  return createHash('sha256').update(account.passwordHash).digest('base64url').slice(0, 22);
}

function oauthError(error: string, description: string): Response {
  return Response.json({ error, error_description: description }, { status: 400 });
}

function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** The token endpoint as the client reached this server. */
function realmOf(c: HttpContext): string {
  const url = new URL(c.req.url);
  const proto = c.req.header('X-Forwarded-Proto')?.split(',')[0]?.trim() || url.protocol.replace(':', '');
  const host = c.req.header('Host') ?? url.host;
  return `${proto}://${host}/token`;
}

/**
 * The address the request came from: API Gateway's `sourceIp` on Lambda, the socket's peer on the
 * local server. Never X-Forwarded-For, which any client can set: it would let an attacker lock
 * someone else's address out, or dodge the throttle with a new value per attempt.
 */
export function sourceOf(c: HttpContext): string {
  const address = c.env?.event?.requestContext?.http?.sourceIp || c.env?.incoming?.socket?.remoteAddress;
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}

/** The largest `/token` body read: an OAuth2 form with a refresh token and scopes is well under 2 KiB. */
export const MAX_TOKEN_BODY = 8 * 1024;

/** The OAuth2 form of a `POST /token`, read up to MAX_TOKEN_BODY (413 above; a client that stalls is cut off by the server). */
async function readForm(c: HttpContext): Promise<Record<string, unknown>> {
  const tooLarge = () =>
    new RegistryError('SIZE_INVALID', `a /token request body is at most ${MAX_TOKEN_BODY} bytes`, {
      status: 413,
    });
  const declared = contentLength(c.req.header('Content-Length'));
  if (declared !== undefined && declared > MAX_TOKEN_BODY) throw tooLarge();
  const bytes = await readLimited(requestBody(c), MAX_TOKEN_BODY, tooLarge);
  const type = c.req.header('Content-Type') ?? 'application/x-www-form-urlencoded';
  try {
    const form = await new Response(bytes as Uint8Array<ArrayBuffer>, {
      headers: { 'Content-Type': type },
    }).formData();
    const fields: Record<string, string[]> = {};
    form.forEach((value, name) => {
      if (typeof value === 'string') (fields[name] ??= []).push(value);
    });
    return fields;
  } catch {
    return {};
  }
}
