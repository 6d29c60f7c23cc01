import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, removeAccount, setAnonymousPull } from '../../lib/auth/admin.ts';
import { FileAuthStore } from '../../lib/auth/auth-store.ts';
import { DEFAULT_THROTTLE, LoginThrottle } from '../../lib/auth/login-throttle.ts';
import { TokenService } from '../../lib/auth/tokens.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import { loadAuth } from '../../lib/setup/auth.ts';
import { errorCode, sha256, testRegistry, type TestRegistry } from './harness.ts';

let dir: string;
let file: string;
let r: TestRegistry;
const clock = { now: Date.now() };
const lines: Record<string, unknown>[] = [];

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function login(
  user: string,
  password: string,
  scope = 'repository:team/app:pull,push',
  source = '127.0.0.1',
): Promise<Response> {
  return r.request(
    `/token?service=berth&scope=${encodeURIComponent(scope)}`,
    { headers: { Authorization: basic(user, password) } },
    source,
  );
}

async function bearer(user: string, password: string, scope?: string): Promise<Record<string, string>> {
  const res = await login(user, password, scope);
  expect(res.status).toBe(200);
  return { Authorization: `Bearer ${((await res.json()) as { token: string }).token}` };
}

/** A push of a config blob, which needs `push` on team/app. */
async function pushBlob(headers: Record<string, string>): Promise<Response> {
  const bytes = new TextEncoder().encode(`{"n":${Math.random()}}`);
  return r.request(`/v2/team/app/blobs/uploads/?digest=${sha256(bytes)}`, {
    method: 'POST',
    headers: { ...headers, 'Content-Length': String(bytes.length) },
    body: bytes,
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-revocation-'));
  file = join(dir, 'auth.json');
  await addUser(file, 'alice', 'alice-password', ['team/*:pull,push']);
  await addUser(file, 'mallory-target', 'target-password', ['team/*:pull']);
  const logger = createLogger('warn', {}, (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  r = testRegistry({
    auth: await loadAuth(new FileAuthStore(file), 300, logger, {
      throttle: new LoginThrottle(DEFAULT_THROTTLE, () => clock.now),
    }),
  });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('tokens name the account generation', () => {
  it('voids a token issued before the account was removed and re-created under the same name', async () => {
    await addUser(file, 'bob', 'bob-password', ['team/*:pull,push']);
    const old = await bearer('bob', 'bob-password');
    expect((await r.request('/v2/', { headers: old })).status).toBe(200);
    await removeAccount(file, 'bob', 'user');
    // Re-created with the very same password and grants: still another account.
    await addUser(file, 'bob', 'bob-password', ['team/*:pull,push']);
    const res = await r.request('/v2/team/app/tags/list', { headers: old });
    expect(res.status).toBe(401);
    expect(res.headers.get('WWW-Authenticate')).toContain('error="invalid_token"');
    expect(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain(
      're-created',
    );
    const fresh = await bearer('bob', 'bob-password');
    expect((await r.request('/v2/team/app/tags/list', { headers: fresh })).status).toBe(404);
  });

  it('voids tokens when the password is set anew', async () => {
    await addUser(file, 'carol', 'carol-password-1', ['team/*:pull']);
    const old = await bearer('carol', 'carol-password-1', 'repository:team/app:pull');
    await addUser(file, 'carol', 'carol-password-2', ['team/*:pull']);
    expect((await r.request('/v2/', { headers: old })).status).toBe(401);
  });

  it('refuses an access token that names no generation for an account (issued before tokens carried it)', async () => {
    const auth = JSON.parse(await readFile(file, 'utf8')) as { signingKey: Record<string, unknown> };
    const service = await TokenService.fromJwk(auth.signingKey, {
      issuer: 'berth',
      service: 'berth',
      ttlSeconds: 300,
    });
    const { token } = await service.issue('alice', [
      { type: 'repository', name: 'team/app', actions: ['pull'] },
    ]);
    const res = await r.request('/v2/team/app/tags/list', { headers: { Authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
  });
});

describe('cut grants hold at the next request', () => {
  it('refuses a push with a push token once the account is cut to pull, and still serves its pulls', async () => {
    await addUser(file, 'dave', 'dave-password', ['team/*:pull,push']);
    const headers = await bearer('dave', 'dave-password');
    expect((await pushBlob(headers)).status).toBe(201);
    // The same password: only the grants change, the token and the account stay.
    await addUser(file, 'dave', 'dave-password', ['team/*:pull']);
    const push = await pushBlob(headers);
    expect(push.status).toBe(403);
    expect(await errorCode(push)).toBe('DENIED');
    expect((await r.request('/v2/team/app/tags/list', { headers })).status).toBe(404);
    // Given back: the same token pushes again.
    await addUser(file, 'dave', 'dave-password', ['team/*:pull,push']);
    expect((await pushBlob(headers)).status).toBe(201);
  });

  it('takes a grant edited into the file by hand at the next request', async () => {
    const headers = await bearer('alice', 'alice-password');
    const doc = JSON.parse(await readFile(file, 'utf8')) as {
      accounts: { name: string; grants: { pattern: string; actions: string[] }[] }[];
    };
    doc.accounts.find((a) => a.name === 'alice')!.grants = [{ pattern: 'elsewhere/*', actions: ['pull'] }];
    await writeFile(join(dir, 'edit.json'), JSON.stringify(doc));
    const { rename } = await import('node:fs/promises');
    await rename(join(dir, 'edit.json'), file);
    expect((await r.request('/v2/team/app/tags/list', { headers })).status).toBe(403);
  });

  it('takes anonymous pull away from anonymous tokens already issued', async () => {
    await setAnonymousPull(file, ['public/*']);
    const res = await r.request('/token?service=berth&scope=repository:public/x:pull');
    const headers = { Authorization: `Bearer ${((await res.json()) as { token: string }).token}` };
    expect((await r.request('/v2/public/x/tags/list', { headers })).status).toBe(404);
    await setAnonymousPull(file, []);
    expect((await r.request('/v2/public/x/tags/list', { headers })).status).toBe(401);
  });
});

describe('login throttling by account and address', () => {
  it('refuses further guesses from the guessing address with 429 and Retry-After, never the real user elsewhere', async () => {
    lines.length = 0;
    for (let i = 0; i < 5; i++) {
      expect((await login('mallory-target', `guess-${i}`, undefined, '10.0.0.66')).status).toBe(401);
    }
    const refused = await login('mallory-target', 'target-password', undefined, '10.0.0.66');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('Retry-After')).toBe('1');
    expect(await errorCode(refused)).toBe('TOOMANYREQUESTS');
    // The owner of the account, from their own address, logs in at once.
    expect((await login('mallory-target', 'target-password', undefined, '10.0.0.7')).status).toBe(200);
    const failures = lines.filter((l) => l.msg === 'login failed');
    expect(failures).toHaveLength(5);
    expect(failures[0]).toMatchObject({
      account: 'mallory-target',
      source: '10.0.0.66',
      reason: 'wrong password',
    });
    expect(lines.filter((l) => l.msg === 'login throttled')).toHaveLength(1);
    clock.now += 1000;
    expect((await login('mallory-target', 'target-password', undefined, '10.0.0.66')).status).toBe(200);
  });

  it('takes the source from the connection, not from an X-Forwarded-For the client wrote', async () => {
    for (let i = 0; i < 5; i++) await login('alice', `guess-${i}`, undefined, '10.0.0.77');
    const res = await r.request(
      '/token?service=berth',
      { headers: { Authorization: basic('alice', 'alice-password'), 'X-Forwarded-For': '10.0.0.1' } },
      '10.0.0.77',
    );
    expect(res.status).toBe(429);
  });
});

describe('the token endpoint reads small bodies only', () => {
  it('refuses a POST body over 8 KiB with 413, by its Content-Length or by counting', async () => {
    const big = `grant_type=password&username=alice&password=${'x'.repeat(9000)}`;
    const res = await r.request('/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: big,
    });
    expect(res.status).toBe(413);
    expect(await errorCode(res)).toBe('SIZE_INVALID');
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const counted = await r.request('/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(counted.status).toBe(413);
  });

  it('still takes the OAuth2 password form', async () => {
    const res = await r.request('/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'password',
        username: 'dave',
        password: 'dave-password',
        service: 'berth',
      }),
    });
    expect(res.status).toBe(200);
  });
});
