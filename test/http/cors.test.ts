import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../lib/auth/admin.ts';
import { FileAuthStore } from '../../lib/auth/auth-store.ts';
import { parseConfig } from '../../lib/config/config.ts';
import { configInput } from '../../lib/config/sources.ts';
import { parseCorsOrigins } from '../../lib/http/cors.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import { loadAuth } from '../../lib/setup/auth.ts';
import { pushImage, testRegistry, type TestRegistry } from './harness.ts';

const UI = 'https://ui.example.com';

function preflightOf(r: TestRegistry, path: string, origin: string, method = 'GET', headers = '') {
  return r.request(path, {
    method: 'OPTIONS',
    headers: {
      Origin: origin,
      'Access-Control-Request-Method': method,
      ...(headers ? { 'Access-Control-Request-Headers': headers } : {}),
    },
  });
}

const list = (value: string | null) => (value ?? '').split(',').map((s) => s.trim().toLowerCase());

describe('CORS configuration', () => {
  it('is off unless origins are given; takes --cors-origin (repeated) or BERTH_CORS_ORIGINS', () => {
    expect(parseConfig({}).corsOrigins).toBeUndefined();
    const fromEnv = parseConfig(configInput({ BERTH_CORS_ORIGINS: `${UI}, http://127.0.0.1:8080` }, {}));
    expect(fromEnv.corsOrigins).toEqual({ origins: new Set([UI, 'http://127.0.0.1:8080']) });
    const flags = parseConfig(
      configInput({ BERTH_CORS_ORIGINS: '*' }, { corsOrigins: `${UI},https://b.test` }),
    );
    expect(flags.corsOrigins).toEqual({ origins: new Set([UI, 'https://b.test']) });
    expect(parseConfig(configInput({ BERTH_CORS_ORIGINS: '*' }, {})).corsOrigins).toEqual({ origins: '*' });
  });

  it.each([
    [`${UI}/`, /no path or trailing slash \(did you mean https:\/\/ui\.example\.com\?\)/],
    [`${UI}/app`, /did you mean https:\/\/ui\.example\.com\?/],
    ['https://UI.example.com', /lower-case/],
    ['ui.example.com', /http\(s\):\/\/host\[:port\]/],
    ['ftp://ui.example.com', /http\(s\):\/\/host\[:port\]/],
    [
      `*,${UI}`,
      /"\*" allows every page and cannot be combined with named origins \(https:\/\/ui\.example\.com\)/,
    ],
  ])('refuses %s with a message saying how to write it', (text, message) => {
    expect(() => parseCorsOrigins(text)).toThrow(message);
    expect(() => parseConfig({ corsOrigins: text })).toThrow(/corsOrigins/);
  });
});

describe('CORS off (the default)', () => {
  const r = testRegistry();

  it('answers a preflight with 405 saying how to turn CORS on, and adds no CORS headers', async () => {
    const res = await preflightOf(r, '/v2/_catalog', UI);
    expect(res.status).toBe(405);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('UNSUPPORTED');
    expect(body.errors[0]!.message).toContain('--cors-origin <origin> (BERTH_CORS_ORIGINS)');
    const get = await r.request('/v2/_catalog', { headers: { Origin: UI } });
    expect(get.status).toBe(200);
    expect(get.headers.get('Access-Control-Allow-Origin')).toBeNull();
  });
});

describe('CORS with named origins', () => {
  const r = testRegistry({ cors: parseCorsOrigins(`${UI},http://127.0.0.1:8080`) });

  it('answers the preflight of an allowed origin: methods, the headers clients send, credentials', async () => {
    const res = await preflightOf(r, '/v2/_catalog', UI, 'GET', 'authorization');
    expect(res.status).toBe(204);
    expect(res.headers.get('Access-Control-Allow-Origin')).toBe(UI);
    expect(res.headers.get('Access-Control-Allow-Credentials')).toBe('true');
    expect(list(res.headers.get('Access-Control-Allow-Methods'))).toEqual(
      expect.arrayContaining(['get', 'head', 'post', 'put', 'patch', 'delete']),
    );
    expect(list(res.headers.get('Access-Control-Allow-Headers'))).toEqual(
      expect.arrayContaining(['authorization', 'accept', 'content-type', 'range']),
    );
    expect(list(res.headers.get('Vary'))).toContain('origin');
    expect(Number(res.headers.get('Access-Control-Max-Age'))).toBeGreaterThan(0);
    // Any route, including a manifest PUT's and the token endpoint's.
    expect((await preflightOf(r, '/v2/a/b/manifests/v1', UI, 'PUT', 'content-type')).status).toBe(204);
    expect((await preflightOf(r, '/token', UI)).status).toBe(204);
  });

  it('refuses the preflight of another origin with 403 DENIED naming it', async () => {
    const res = await preflightOf(r, '/v2/_catalog', 'https://evil.example');
    expect(res.status).toBe(403);
    expect(res.headers.get('Access-Control-Allow-Origin')).toBeNull();
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]).toMatchObject({ code: 'DENIED' });
    expect(body.errors[0]!.message).toContain('origin https://evil.example may not call this registry');
  });

  it('lets an allowed page read responses and the registry headers, errors included', async () => {
    const image = await pushImage(r, 'web/app', 'v1');
    const res = await r.request('/v2/web/app/manifests/v1', { headers: { Origin: UI } });
    expect(res.status).toBe(200);
    expect(res.headers.get('Access-Control-Allow-Origin')).toBe(UI);
    expect(res.headers.get('Access-Control-Allow-Credentials')).toBe('true');
    expect(list(res.headers.get('Access-Control-Expose-Headers'))).toEqual(
      expect.arrayContaining(['docker-content-digest', 'link', 'location', 'range', 'www-authenticate']),
    );
    expect(res.headers.get('Docker-Content-Digest')).toBe(image.digest);
    const missing = await r.request('/v2/web/app/manifests/nope', { headers: { Origin: UI } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('Access-Control-Allow-Origin')).toBe(UI);
  });

  it('gives another origin, or a request without Origin, no CORS headers but Vary: Origin', async () => {
    for (const headers of [{ Origin: 'https://evil.example' }, {}] as Record<string, string>[]) {
      const res = await r.request('/v2/_catalog', { headers });
      expect(res.status).toBe(200);
      expect(res.headers.get('Access-Control-Allow-Origin')).toBeNull();
      expect(list(res.headers.get('Vary'))).toContain('origin');
    }
  });

  it('leaves OPTIONS that is not a preflight as it was: 405 with Allow', async () => {
    const res = await r.request('/v2/_catalog', { method: 'OPTIONS' });
    expect(res.status).toBe(405);
    expect(res.headers.get('Allow')).toBe('GET, HEAD');
  });
});

describe('CORS with *', () => {
  const r = testRegistry({ cors: parseCorsOrigins('*') });

  it('answers every origin with *, never with credentials', async () => {
    const pre = await preflightOf(r, '/v2/_catalog', 'https://anyone.example', 'GET', 'authorization');
    expect(pre.status).toBe(204);
    expect(pre.headers.get('Access-Control-Allow-Origin')).toBe('*');
    expect(pre.headers.get('Access-Control-Allow-Credentials')).toBeNull();
    const res = await r.request('/v2/_catalog', { headers: { Origin: 'https://anyone.example' } });
    expect(res.headers.get('Access-Control-Allow-Origin')).toBe('*');
    expect(res.headers.get('Access-Control-Allow-Credentials')).toBeNull();
  });
});

describe('CORS with authentication on', () => {
  let dir: string;
  let r: TestRegistry;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-cors-'));
    const file = join(dir, 'auth.json');
    await addUser(file, 'admin', 'admin-password', ['*:pull,push,delete', 'registry:catalog:*']);
    r = testRegistry({
      auth: await loadAuth(new FileAuthStore(file), 300, createLogger('silent')),
      cors: parseCorsOrigins(UI),
    });
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('answers preflights without a token, and lets the page read the 401 challenge and then the catalog', async () => {
    expect((await preflightOf(r, '/v2/_catalog', UI, 'GET', 'authorization')).status).toBe(204);
    const challenged = await r.request('/v2/_catalog', { headers: { Origin: UI } });
    expect(challenged.status).toBe(401);
    expect(challenged.headers.get('Access-Control-Allow-Origin')).toBe(UI);
    const challenge = challenged.headers.get('WWW-Authenticate')!;
    expect(challenge).toMatch(/^Bearer realm="/);
    expect(list(challenged.headers.get('Access-Control-Expose-Headers'))).toContain('www-authenticate');
    const tokenRes = await r.request('/token?service=berth&scope=registry:catalog:*', {
      headers: {
        Origin: UI,
        Authorization: `Basic ${Buffer.from('admin:admin-password').toString('base64')}`,
      },
    });
    expect(tokenRes.status).toBe(200);
    expect(tokenRes.headers.get('Access-Control-Allow-Origin')).toBe(UI);
    const { token } = (await tokenRes.json()) as { token: string };
    const catalog = await r.request('/v2/_catalog', {
      headers: { Origin: UI, Authorization: `Bearer ${token}` },
    });
    expect(catalog.status).toBe(200);
    expect(catalog.headers.get('Access-Control-Allow-Origin')).toBe(UI);
  });
});
