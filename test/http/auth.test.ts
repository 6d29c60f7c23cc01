import { FileAuthStore } from '../../lib/auth/auth-store.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, createRobot, removeAccount, setAnonymousPull } from '../../lib/auth/admin.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import { loadAuth } from '../../lib/setup/auth.ts';
import { errorCode, randomBytes, sha256, testRegistry, type TestRegistry } from './harness.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
let dir: string;
let r: TestRegistry;
let robotSecret: string;

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function token(scope: string[], credentials?: [string, string]): Promise<Response> {
  const query = scope.map((s) => `scope=${encodeURIComponent(s)}`).join('&');
  return r.request(`/token?service=berth&${query}`, {
    headers: credentials ? { Authorization: basic(...credentials) } : {},
  });
}

async function bearer(scope: string[], credentials?: [string, string]): Promise<Record<string, string>> {
  const res = await token(scope, credentials);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { token: string };
  return { Authorization: `Bearer ${body.token}` };
}

async function push(repo: string, headers: Record<string, string>): Promise<string> {
  const config = new TextEncoder().encode('{}');
  const blob = await r.request(`/v2/${repo}/blobs/uploads/?digest=${sha256(config)}`, {
    method: 'POST',
    headers: { ...headers, 'Content-Length': '2' },
    body: config,
  });
  expect(blob.status).toBe(201);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: 2 },
    layers: [],
  });
  const res = await r.request(`/v2/${repo}/manifests/v1`, {
    method: 'PUT',
    headers: { ...headers, 'Content-Type': OCI_MANIFEST },
    body: manifest,
  });
  expect(res.status).toBe(201);
  return sha256(manifest);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-auth-'));
  const file = join(dir, 'auth.json');
  await addUser(file, 'admin', 'admin-password', ['*:pull,push,delete', 'registry:catalog:*']);
  await addUser(file, 'alice', 'alice-password', ['team-a/*:pull,push']);
  await addUser(file, 'reader', 'reader-password', ['team-a/*:pull']);
  robotSecret = (await createRobot(file, 'ci', ['team-a/app:pull,push'], 3600)).secret;
  await setAnonymousPull(file, ['public/*']);
  r = testRegistry({ auth: await loadAuth(new FileAuthStore(file), 300, createLogger('silent')) });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('token authentication', () => {
  it('challenges a request without a token with 401, the spec body and a Bearer realm', async () => {
    const res = await r.request('/v2/');
    expect(res.status).toBe(401);
    expect(res.headers.get('WWW-Authenticate')).toBe(
      'Bearer realm="http://registry.test/token",service="berth"',
    );
    expect(await errorCode(res)).toBe('UNAUTHORIZED');
  });

  it.each([
    ['GET', '/v2/_catalog', undefined],
    ['GET', '/v2/team-a/app/tags/list', 'repository:team-a/app:pull'],
    ['GET', '/v2/team-a/app/manifests/v1', 'repository:team-a/app:pull'],
    ['HEAD', '/v2/team-a/app/manifests/v1', 'repository:team-a/app:pull'],
    ['PUT', '/v2/team-a/app/manifests/v1', 'repository:team-a/app:pull,push'],
    ['DELETE', '/v2/team-a/app/manifests/v1', 'repository:team-a/app:delete'],
    ['GET', `/v2/team-a/app/blobs/${sha256('x')}`, 'repository:team-a/app:pull'],
    ['DELETE', `/v2/team-a/app/blobs/${sha256('x')}`, 'repository:team-a/app:delete'],
    ['POST', '/v2/team-a/app/blobs/uploads/', 'repository:team-a/app:pull,push'],
    [
      'PATCH',
      '/v2/team-a/app/blobs/uploads/00000000-0000-4000-8000-000000000000',
      'repository:team-a/app:pull,push',
    ],
    ['GET', `/v2/team-a/app/referrers/${sha256('x')}`, 'repository:team-a/app:pull'],
  ])('%s %s without a token is 401 naming the scope it needs', async (method, path, scope) => {
    const res = await r.request(path, { method });
    expect(res.status).toBe(401);
    const challenge = res.headers.get('WWW-Authenticate') ?? '';
    if (scope) expect(challenge).toContain(`scope="${scope}"`);
    else expect(challenge).not.toContain('scope=');
  });

  it('logs in (no scope) with a token that opens /v2/ only', async () => {
    const res = await token([], ['alice', 'alice-password']);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ expires_in: 300 });
    expect(body.token).toBe(body.access_token);
    expect(new Date(body.issued_at as string).getTime()).toBeLessThanOrEqual(Date.now());
    const headers = { Authorization: `Bearer ${body.token as string}` };
    expect((await r.request('/v2/', { headers })).status).toBe(200);
    const pull = await r.request('/v2/team-a/app/tags/list', { headers });
    expect(pull.status).toBe(401);
    expect(pull.headers.get('WWW-Authenticate')).toContain('error="insufficient_scope"');
  });

  it('refuses a wrong password, an unknown account and a garbled token with 401', async () => {
    expect((await token([], ['alice', 'wrong'])).status).toBe(401);
    expect((await token([], ['nobody', 'alice-password'])).status).toBe(401);
    const res = await r.request('/v2/', { headers: { Authorization: 'Bearer not.a.token' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('WWW-Authenticate')).toContain('error="invalid_token"');
  });

  it('pushes and pulls with a scoped token, the docker way', async () => {
    const headers = await bearer(['repository:team-a/app:pull,push'], ['alice', 'alice-password']);
    const digest = await push('team-a/app', headers);
    const res = await r.request('/v2/team-a/app/manifests/v1', { headers });
    expect(res.status).toBe(200);
    expect(res.headers.get('Docker-Content-Digest')).toBe(digest);
  });

  it('grants the intersection of what was asked and what the account may do', async () => {
    const res = await token(
      ['repository:team-a/app:pull,push,delete repository:team-b/x:pull'],
      ['alice', 'alice-password'],
    );
    const { token: jwt } = (await res.json()) as { token: string };
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    expect(claims.access).toEqual([{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }]);
    expect(claims).toMatchObject({ iss: 'berth', sub: 'alice', aud: 'berth' });
    for (const claim of ['exp', 'nbf', 'iat', 'jti']) expect(claims[claim]).toBeDefined();
  });

  it('denies a pull-only account a push with 403 DENIED and a message naming what it lacks', async () => {
    const headers = await bearer(['repository:team-a/app:pull,push'], ['reader', 'reader-password']);
    expect((await r.request('/v2/team-a/app/manifests/v1', { headers })).status).toBe(200);
    const res = await r.request('/v2/team-a/app/blobs/uploads/', { method: 'POST', headers });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe('DENIED');
    const del = await r.request('/v2/team-a/app/manifests/v1', { method: 'DELETE', headers });
    expect(del.status).toBe(403);
    expect((await del.json()) as unknown).toMatchObject({
      errors: [{ code: 'DENIED', message: 'account reader may not delete repository team-a/app' }],
    });
  });

  it('a token asked for less than the account may do gets 401 with the scope to ask for', async () => {
    const headers = await bearer(['repository:team-a/app:pull'], ['alice', 'alice-password']);
    const res = await r.request('/v2/team-a/app/blobs/uploads/', { method: 'POST', headers });
    expect(res.status).toBe(401);
    expect(res.headers.get('WWW-Authenticate')).toContain(
      'scope="repository:team-a/app:pull,push",error="insufficient_scope"',
    );
  });

  it('a token for another repository gets 401 with the scope to ask for', async () => {
    const headers = await bearer(['repository:team-a/other:pull'], ['alice', 'alice-password']);
    const res = await r.request('/v2/team-a/app/manifests/v1', { headers });
    expect(res.status).toBe(401);
    expect(res.headers.get('WWW-Authenticate')).toContain('scope="repository:team-a/app:pull"');
  });

  it('lets anyone pull the anonymous patterns, and nothing else', async () => {
    const admin = await bearer(['repository:public/tools:pull,push'], ['admin', 'admin-password']);
    await push('public/tools', admin);
    const anonymous = await bearer(['repository:public/tools:pull,push', 'repository:team-a/app:pull']);
    expect((await r.request('/v2/public/tools/manifests/v1', { headers: anonymous })).status).toBe(200);
    expect(
      (await r.request('/v2/public/tools/blobs/uploads/', { method: 'POST', headers: anonymous })).status,
    ).toBe(401);
    expect((await r.request('/v2/team-a/app/manifests/v1', { headers: anonymous })).status).toBe(401);
  });

  it('shows in the catalog only what the caller may pull, unless it holds registry:catalog:*', async () => {
    const admin = await bearer(
      ['repository:team-b/secret:pull,push', 'registry:catalog:*'],
      ['admin', 'admin-password'],
    );
    await push('team-b/secret', admin);
    const all = (await (await r.request('/v2/_catalog', { headers: admin })).json()) as {
      repositories: string[];
    };
    expect(all.repositories).toContain('team-b/secret');
    const alice = await bearer(['registry:catalog:*'], ['alice', 'alice-password']);
    const some = (await (await r.request('/v2/_catalog', { headers: alice })).json()) as {
      repositories: string[];
    };
    expect(some.repositories).toContain('team-a/app');
    expect(some.repositories).not.toContain('team-b/secret');
  });

  it('challenges a mount for the source repository too, and mounts with that token', async () => {
    const admin = await bearer(['repository:team-a/src:pull,push'], ['admin', 'admin-password']);
    const bytes = randomBytes(50, 7);
    await r.request(`/v2/team-a/src/blobs/uploads/?digest=${sha256(bytes)}`, {
      method: 'POST',
      headers: { ...admin, 'Content-Length': '50' },
      body: bytes,
    });
    const path = `/v2/team-a/dst/blobs/uploads/?mount=${sha256(bytes)}&from=team-a/src`;
    const challenged = await r.request(path, { method: 'POST' });
    const scope = /scope="([^"]+)"/.exec(challenged.headers.get('WWW-Authenticate') ?? '')?.[1];
    expect(scope).toBe('repository:team-a/dst:pull,push repository:team-a/src:pull');
    const headers = await bearer([scope!], ['alice', 'alice-password']);
    expect((await r.request(path, { method: 'POST', headers })).status).toBe(201);
  });

  it('does not mount from a repository the caller may not pull', async () => {
    const admin = await bearer(['repository:team-b/secret:pull,push'], ['admin', 'admin-password']);
    const bytes = randomBytes(100, 42);
    const upload = await r.request(`/v2/team-b/secret/blobs/uploads/?digest=${sha256(bytes)}`, {
      method: 'POST',
      headers: { ...admin, 'Content-Length': '100' },
      body: bytes,
    });
    expect(upload.status).toBe(201);
    const alice = await bearer(
      ['repository:team-a/app:pull,push', 'repository:team-b/secret:pull'],
      ['alice', 'alice-password'],
    );
    const mount = await r.request(`/v2/team-a/app/blobs/uploads/?mount=${sha256(bytes)}&from=team-b/secret`, {
      method: 'POST',
      headers: alice,
    });
    expect(mount.status).toBe(202);
  });

  it('robots log in with their generated secret', async () => {
    const headers = await bearer(['repository:team-a/app:pull,push'], ['ci', robotSecret]);
    expect((await r.request('/v2/team-a/app/tags/list', { headers })).status).toBe(200);
  });

  it('takes the OAuth2 password form on POST /token', async () => {
    const res = await r.request('/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'password',
        username: 'alice',
        password: 'alice-password',
        service: 'berth',
        scope: 'repository:team-a/app:pull',
        client_id: 'test',
      }),
    });
    expect(res.status).toBe(200);
    const { access_token: jwt } = (await res.json()) as { access_token: string };
    expect(
      (await r.request('/v2/team-a/app/tags/list', { headers: { Authorization: `Bearer ${jwt}` } })).status,
    ).toBe(200);
    const refresh = await r.request('/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'x', service: 'berth' }),
    });
    expect(refresh.status).toBe(401);
    expect(await errorCode(refresh)).toBe('UNAUTHORIZED');
    const unsupported = await r.request('/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', service: 'berth' }),
    });
    expect(unsupported.status).toBe(400);
    expect(((await unsupported.json()) as { error: string }).error).toBe('unsupported_grant_type');
  });

  it('takes several space-separated scopes in the OAuth2 form', async () => {
    const res = await r.request('/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'password',
        username: 'alice',
        password: 'alice-password',
        service: 'berth',
        scope: 'repository:team-a/one:pull repository:team-a/two:pull,push',
      }),
    });
    const { access_token: jwt } = (await res.json()) as { access_token: string };
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as {
      access: { name: string; actions: string[] }[];
    };
    expect(claims.access.map((a) => [a.name, [...a.actions].sort()])).toEqual([
      ['team-a/one', ['pull']],
      ['team-a/two', ['pull', 'push']],
    ]);
  });
});

describe('refresh tokens and revocation', () => {
  let store: string;
  let live: TestRegistry;

  const form = (fields: Record<string, string>) =>
    live.request('/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ service: 'berth', client_id: 'docker', ...fields }),
    });

  async function offlineLogin(user: string, password: string): Promise<string> {
    const res = await live.request('/token?service=berth&offline_token=true&client_id=docker', {
      headers: { Authorization: basic(user, password) },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { refresh_token?: string };
    expect(body.refresh_token).toEqual(expect.any(String));
    return body.refresh_token!;
  }

  beforeAll(async () => {
    store = join(dir, 'live-auth.json');
    await addUser(store, 'bob', 'bob-password-1', ['team-b/*:pull,push']);
    await addUser(store, 'carol', 'carol-password', ['team-b/*:pull']);
    // Re-read on every request, so that changes show at once instead of within 2 s.
    live = testRegistry({
      auth: await loadAuth(new FileAuthStore(store, { refreshMs: 0 }), 300, createLogger('silent')),
    });
  });

  it('gives no refresh token unless asked for one', async () => {
    const res = await live.request('/token?service=berth', {
      headers: { Authorization: basic('carol', 'carol-password') },
    });
    expect(Object.keys((await res.json()) as object)).not.toContain('refresh_token');
  });

  it('trades a refresh token for scoped access tokens, as docker does with its stored identity token', async () => {
    const refresh = await offlineLogin('bob', 'bob-password-1');
    const res = await form({
      grant_type: 'refresh_token',
      refresh_token: refresh,
      scope: 'repository:team-b/app:pull,push',
    });
    expect(res.status).toBe(200);
    const { access_token: jwt } = (await res.json()) as { access_token: string };
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as {
      sub: string;
      access: { name: string; actions: string[] }[];
    };
    expect(claims.sub).toBe('bob');
    expect(claims.access).toEqual([{ type: 'repository', name: 'team-b/app', actions: ['pull', 'push'] }]);
    // Authorized: the repository is merely empty (404), not refused (401/403).
    const tags = await live.request('/v2/team-b/app/tags/list', {
      headers: { Authorization: `Bearer ${jwt}` },
    });
    expect(tags.status).toBe(404);
  });

  it('gives a refresh token for the OAuth2 password form with access_type=offline', async () => {
    const res = await form({
      grant_type: 'password',
      username: 'carol',
      password: 'carol-password',
      access_type: 'offline',
    });
    expect(((await res.json()) as { refresh_token?: string }).refresh_token).toEqual(expect.any(String));
  });

  it('does not take a refresh token as a bearer token, nor an access token as a refresh token', async () => {
    const refresh = await offlineLogin('carol', 'carol-password');
    const asBearer = await live.request('/v2/', { headers: { Authorization: `Bearer ${refresh}` } });
    expect(asBearer.status).toBe(401);
    const access = (await (
      await live.request('/token?service=berth', {
        headers: { Authorization: basic('carol', 'carol-password') },
      })
    ).json()) as { token: string };
    const asRefresh = await form({ grant_type: 'refresh_token', refresh_token: access.token });
    expect(asRefresh.status).toBe(401);
  });

  it('voids refresh tokens when the password changes', async () => {
    const refresh = await offlineLogin('bob', 'bob-password-1');
    expect((await form({ grant_type: 'refresh_token', refresh_token: refresh })).status).toBe(200);
    await addUser(store, 'bob', 'bob-password-2', ['team-b/*:pull,push']);
    const res = await form({ grant_type: 'refresh_token', refresh_token: refresh });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain('log in again');
  });

  it('refuses the tokens of a removed account at once, not when they expire', async () => {
    await addUser(store, 'dave', 'dave-password', ['team-b/*:pull']);
    const refresh = await offlineLogin('dave', 'dave-password');
    const { token: jwt } = (await (
      await live.request('/token?service=berth&scope=repository:team-b/app:pull', {
        headers: { Authorization: basic('dave', 'dave-password') },
      })
    ).json()) as { token: string };
    const headers = { Authorization: `Bearer ${jwt}` };
    expect((await live.request('/v2/', { headers })).status).toBe(200);
    await removeAccount(store, 'dave', 'user');
    const after = await live.request('/v2/', { headers });
    expect(after.status).toBe(401);
    expect(after.headers.get('WWW-Authenticate')).toContain('error="invalid_token"');
    expect((await form({ grant_type: 'refresh_token', refresh_token: refresh })).status).toBe(401);
  });

  it('refuses a revoked robot, and a robot past its expiry', async () => {
    const { secret } = await createRobot(store, 'ci-short', ['team-b/*:pull'], 3600);
    const { token: jwt } = (await (
      await live.request('/token?service=berth', { headers: { Authorization: basic('ci-short', secret) } })
    ).json()) as { token: string };
    expect((await live.request('/v2/', { headers: { Authorization: `Bearer ${jwt}` } })).status).toBe(200);
    await removeAccount(store, 'ci-short', 'robot');
    expect((await live.request('/v2/', { headers: { Authorization: `Bearer ${jwt}` } })).status).toBe(401);
    const expired = await createRobot(store, 'ci-gone', ['team-b/*:pull'], 1);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const login = await live.request('/token?service=berth', {
      headers: { Authorization: basic('ci-gone', expired.secret) },
    });
    expect(login.status).toBe(401);
  });

  it("caps a robot's refresh token at the robot's expiry", async () => {
    const { secret, expiresAt } = await createRobot(store, 'ci-capped', ['team-b/*:pull'], 600);
    const refresh = await offlineLogin('ci-capped', secret);
    const claims = JSON.parse(Buffer.from(refresh.split('.')[1]!, 'base64url').toString()) as { exp: number };
    expect(claims.exp).toBe(Math.floor(Date.parse(expiresAt) / 1000));
  });
});
