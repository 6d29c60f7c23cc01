import { describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../lib/config/config.ts';
import { randomBytes, sha256, testRegistry, type TestRegistry } from '../http/harness.ts';

/**
 * Caps per client on open upload sessions (before them, 2,000 abandoned sessions from one
 * client cost 210 MiB of disk for a day). The account is the client with authentication on; without
 * it, the source address.
 */

const ONE_DAY = 24 * 3600_000;

async function begin(r: TestRegistry, from = '10.0.0.1'): Promise<Response> {
  return r.request('/v2/app/blobs/uploads/', { method: 'POST' }, from);
}

describe('upload caps per client', () => {
  it('refuses a session beyond the cap with 429 TOOMANYREQUESTS and says what to do; others are not affected', async () => {
    const r = testRegistry({ uploadQuota: { sessions: 3, bytes: 1 << 30, idleMs: ONE_DAY } });
    const open = [];
    for (let i = 0; i < 3; i++) {
      const res = await begin(r);
      expect(res.status).toBe(202);
      open.push(res.headers.get('Location')!);
    }
    const refused = await begin(r);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('Retry-After')).toBe('60');
    const body = (await refused.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('TOOMANYREQUESTS');
    expect(body.errors[0]!.message).toMatch(/address 10\.0\.0\.1 has 3 upload sessions open.*cancel/);
    // Another client is not held back by this one.
    expect((await begin(r, '10.0.0.2')).status).toBe(202);
    // A finished or cancelled session frees its place.
    expect((await r.request(open[0]!, { method: 'DELETE' }, '10.0.0.1')).status).toBe(204);
    const bytes = randomBytes(100, 3);
    expect((await r.request(open[1]!, { method: 'PATCH', body: bytes }, '10.0.0.1')).status).toBe(202);
    expect(
      (await r.request(`${open[1]}?digest=${sha256(bytes)}`, { method: 'PUT' }, '10.0.0.1')).status,
    ).toBe(201);
    expect((await begin(r)).status).toBe(202);
    expect((await begin(r)).status).toBe(202);
    expect((await begin(r)).status).toBe(429);
  });

  it('refuses more bytes once the client holds its cap in open sessions; completing frees them', async () => {
    const r = testRegistry({ uploadQuota: { sessions: 100, bytes: 10_000, idleMs: ONE_DAY } });
    const a = (await begin(r)).headers.get('Location')!;
    const b = (await begin(r)).headers.get('Location')!;
    const first = randomBytes(6000, 4);
    expect((await r.request(a, { method: 'PATCH', body: first }, '10.0.0.1')).status).toBe(202);
    const refused = await r.request(b, { method: 'PATCH', body: randomBytes(6000, 5) }, '10.0.0.1');
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(
      /12000 bytes in open upload sessions, more than one client may hold \(10000/,
    );
    // The refused request changed nothing: the session is where it was.
    expect((await r.request(b, {}, '10.0.0.1')).headers.get('Range')).toBe('0-0');
    expect((await r.request(`${a}?digest=${sha256(first)}`, { method: 'PUT' }, '10.0.0.1')).status).toBe(201);
    expect((await r.request(b, { method: 'PATCH', body: randomBytes(6000, 5) }, '10.0.0.1')).status).toBe(
      202,
    );
  });

  it('stops counting sessions left idle for the upload TTL (the janitor removes them)', async () => {
    const r = testRegistry({ uploadQuota: { sessions: 2, bytes: 1 << 30, idleMs: ONE_DAY } });
    expect((await begin(r)).status).toBe(202);
    expect((await begin(r)).status).toBe(202);
    expect((await begin(r)).status).toBe(429);
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + ONE_DAY + 1 });
    try {
      expect((await begin(r)).status).toBe(202);
    } finally {
      vi.useRealTimers();
    }
  });

  it('has defaults no real client reaches: 1000 sessions and 64 GiB per client', () => {
    const config = parseConfig({});
    expect(config.uploadSessionsPerClient).toBe(1000);
    expect(config.uploadBytesPerClient).toBe(64 * 1024 ** 3);
    const env = parseConfig({ uploadSessionsPerClient: '5', uploadBytesPerClient: '1000' });
    expect([env.uploadSessionsPerClient, env.uploadBytesPerClient]).toEqual([5, 1000]);
  });
});
