/**
 * Hostile clients, attack by attack (RELIABILITY.md lists them), against the bundled `berth serve` (npm start) and `berth serve
 * --lambda` (the local API Gateway), each with its default limits. Every attack comes from
 * 127.0.0.1 and every normal client from another loopback address (127.0.0.2...), as another host
 * would. The figures (connections held, memory, time to serve a normal client) are printed at the
 * end as the table RELIABILITY.md shows, and written to $HOSTILE_REPORT when it is set.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../lib/auth/admin.ts';
import { head, raw, type RawOutcome } from '../server/raw-http.ts';
import {
  Berth,
  CLI,
  Sampler,
  call,
  figuresTable,
  normalClient,
  sleep,
  tally,
  token,
  type Figure,
  type Target,
} from './harness.ts';

const ATTACKER = '127.0.0.1';
const figures: Figure[] = [];
let dir: string;
let authFile: string;
let runs = 0;

const PASSWORDS: Record<string, string> = {
  alice: 'alice-password',
  carol: 'carol-password',
  dave: 'dave-password',
  erin: 'erin-password',
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-hostile-'));
  authFile = join(dir, 'auth.json');
  for (const [name, password] of Object.entries(PASSWORDS)) {
    await addUser(authFile, name, password, ['normal/*:pull,push', `team/${name}:pull,push`]);
  }
});

afterAll(async () => {
  const table = figuresTable(figures);
  process.stdout.write(`\nHostile clients: figures (npm run test:hostile)\n\n${table}\n\n`);
  if (process.env.HOSTILE_REPORT) await writeFile(process.env.HOSTILE_REPORT, table + '\n');
  await rm(dir, { recursive: true, force: true });
});

async function start(target: Target, options: { auth?: boolean; openFiles?: number } = {}): Promise<Berth> {
  return Berth.start({
    target,
    dataDir: join(dir, `data-${runs++}`),
    ...(options.auth ? { authFile } : {}),
    ...(options.openFiles ? { openFiles: options.openFiles } : {}),
  });
}

/** Upload sessions to PATCH, opened the way a client opens them. */
async function sessions(berth: Berth, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await call(`${berth.url}/v2/hostile/app/blobs/uploads/`, {
      method: 'POST',
      source: '127.0.0.9',
    });
    expect(res.status).toBe(202);
    out.push(String(res.headers.location));
  }
  return out;
}

/** An idle PATCH: its head and one byte of a 10 MB body, then silence. */
function idlePatch(berth: Berth, location: string) {
  return raw(berth.port, [head('PATCH', location, { 'Content-Length': 10_000_000 }) + 'p'], {
    timeoutMs: 90_000,
  });
}

const ms = (value: number) => `${Math.round(value)} ms`;
const mib = (value: number) => `${Math.round(value)} MiB`;
/** What each connection got: its status (and whether a reset followed it), or how it ended without one. */
const outcomeOf = (o: RawOutcome) =>
  o.status !== undefined
    ? `${o.status}${o.end === 'reset' ? ' then reset' : ''}`
    : o.end === 'reset'
      ? 'reset'
      : `no answer (${o.end})`;
const statuses = (outcomes: readonly RawOutcome[]) => tally(outcomes.map(outcomeOf));
const describeTally = (counts: Record<string, number>) =>
  Object.entries(counts)
    .map(([what, n]) => `${n} × ${what}`)
    .join(', ');

/** The first record of the server log that matches. */
function logged(berth: Berth, msg: string): Record<string, unknown> | undefined {
  return berth.records().find((r) => r.msg === msg);
}

describe.each<Target>(['local', 'gateway'])('%s', (target) => {
  describe('finding 1: idle bodies are cut off, and limits answer 503 instead of resets', () => {
    it('POST /token with Content-Length 1e9 and one byte, 100 times: refused at once (or at the 10 s deadline), nothing held', async () => {
      const berth = await start(target, { auth: true });
      try {
        const sampler = new Sampler(berth);
        const baseRss = berth.rssMiB();
        const huge = Array.from({ length: 100 }, () =>
          raw(
            berth.port,
            [
              head('POST', '/token', {
                'Content-Type': 'application/x-www-form-urlencoded',
                'Content-Length': 1_000_000_000,
              }) + 'g',
            ],
            { timeoutMs: 60_000 },
          ),
        );
        await sleep(1000);
        const heldAt1s = berth.held();
        const normal = await normalClient(berth.url, {
          source: '127.0.0.2',
          credentials: ['alice', PASSWORDS.alice!],
        });
        const outcomes = await Promise.all(huge.map((c) => c.outcome));
        const slowest = Math.max(...outcomes.map((o) => o.ms));
        sampler.stop();
        // Nothing left open, nothing reset: each got an answer, then the server closed the connection.
        expect(outcomes.every((o) => o.end === 'closed')).toBe(true);
        // The local server refuses the declared size at once; API Gateway (here, the gateway) reads
        // the whole request before the function runs, so the 10 s deadline for /token answers it.
        expect(statuses(outcomes)).toEqual(target === 'local' ? { 413: 100 } : { 408: 100 });
        expect(berth.held()).toBeLessThanOrEqual(1);
        figures.push({
          target,
          attack: '100 × `POST /token`, Content-Length 1e9, 1 byte sent',
          held: `peak ${sampler.peakHeld}, ${heldAt1s} at 1 s; all closed by ${(slowest / 1000).toFixed(1)} s`,
          memory: `${mib(baseRss)} → peak ${mib(sampler.peakRss)}`,
          normalClient: ms(normal),
          outcome: describeTally(statuses(outcomes)),
        });
      } finally {
        await berth.stop();
      }
    });

    it('POST /token with a small Content-Length and one byte, 100 times: cut off at the 10 s deadline', async () => {
      const berth = await start(target, { auth: true });
      try {
        const sampler = new Sampler(berth);
        const baseRss = berth.rssMiB();
        const slow = Array.from({ length: 100 }, () =>
          raw(
            berth.port,
            [
              head('POST', '/token', {
                'Content-Type': 'application/x-www-form-urlencoded',
                'Content-Length': 4000,
              }) + 'g',
            ],
            { timeoutMs: 60_000 },
          ),
        );
        await sleep(2000);
        const heldAt2s = berth.held();
        const normal = await normalClient(berth.url, {
          source: '127.0.0.2',
          credentials: ['alice', PASSWORDS.alice!],
        });
        const outcomes = await Promise.all(slow.map((c) => c.outcome));
        const slowest = Math.max(...outcomes.map((o) => o.ms));
        sampler.stop();
        expect(outcomes.every((o) => o.end === 'closed')).toBe(true);
        expect(statuses(outcomes)).toEqual({ 408: 100 });
        expect(slowest).toBeLessThan(20_000);
        expect(berth.held()).toBeLessThanOrEqual(1);
        figures.push({
          target,
          attack: '100 × `POST /token`, Content-Length 4000, 1 byte sent',
          held: `peak ${sampler.peakHeld}, ${heldAt2s} at 2 s; all closed by ${(slowest / 1000).toFixed(1)} s`,
          memory: `${mib(baseRss)} → peak ${mib(sampler.peakRss)}`,
          normalClient: ms(normal),
          outcome: describeTally(statuses(outcomes)),
        });
      } finally {
        await berth.stop();
      }
    });

    it('500 PATCHes that send one byte and go silent: 128 held until the 30 s body timeout, the rest 503 + Retry-After', async () => {
      const berth = await start(target);
      try {
        const locations = await sessions(berth, 500);
        const sampler = new Sampler(berth);
        const baseRss = berth.rssMiB();
        const attack = locations.map((location) => idlePatch(berth, location));
        await sleep(3000);
        const heldAt3s = berth.held();
        const normal = await normalClient(berth.url, { source: '127.0.0.2' });
        await sleep(15_000);
        const heldAt18s = berth.held();
        const outcomes = await Promise.all(attack.map((c) => c.outcome));
        const slowest = Math.max(...outcomes.map((o) => o.ms));
        sampler.stop();
        const counts = statuses(outcomes);
        expect(outcomes.every((o) => o.end === 'closed')).toBe(true);
        expect(counts).toEqual({ 408: 128, 503: 372 });
        const refused = outcomes.find((o) => o.status === 503)!;
        expect(refused.headers['retry-after']).toBe('5');
        expect(heldAt18s).toBeLessThanOrEqual(130);
        figures.push({
          target,
          attack: '500 × PATCH of an upload session, 1 byte of 10 MB sent',
          held: `peak ${sampler.peakHeld}; ${heldAt3s} at 3 s, ${heldAt18s} at 18 s; all closed by ${(slowest / 1000).toFixed(1)} s`,
          memory: `${mib(baseRss)} → peak ${mib(sampler.peakRss)}`,
          normalClient: ms(normal),
          outcome: describeTally(counts),
        });
      } finally {
        await berth.stop();
      }
    });

    it('at the descriptor limit (ulimit -n 400, 379 idle PATCHes), new clients get answers, not resets', async () => {
      const berth = await start(target, { openFiles: 400 });
      const attack: ReturnType<typeof idlePatch>[] = [];
      try {
        expect(logged(berth, 'connection limit lowered to fit the open-file limit')).toMatchObject({
          maxConnections: 112,
          openFileLimit: 400,
        });
        const locations = await sessions(berth, 379);
        const sampler = new Sampler(berth);
        const baseRss = berth.rssMiB();
        attack.push(...locations.map((location) => idlePatch(berth, location)));
        await sleep(2500);
        const held = berth.held();
        const fds = berth.fds();
        // New clients from elsewhere are served; new ones from the attacker's address are told to wait.
        const times: number[] = [];
        for (let i = 0; i < 10; i++)
          times.push(await normalClient(berth.url, { source: `127.0.0.${10 + i}` }));
        const sameAddress = await Promise.all(
          Array.from(
            { length: 10 },
            () => raw(berth.port, [head('GET', '/v2/')], { timeoutMs: 10_000 }).outcome,
          ),
        );
        expect(statuses(sameAddress)).toEqual({ 503: 10 });
        expect(sameAddress.every((o) => o.headers['retry-after'] === '5' && o.end === 'closed')).toBe(true);
        expect(fds).toBeLessThan(400);
        sampler.stop();
        // What each attacking connection had got by then (the held ones are still waiting).
        const counts = tally(attack.map(({ result }) => (result ? outcomeOf(result) : 'held')));
        // Each attacking connection is either held (until the 30 s body timeout) or answered 503.
        expect(Object.keys(counts).every((k) => k === 'held' || k.startsWith('503'))).toBe(true);
        expect(counts.held).toBe(56);
        figures.push({
          target,
          attack: '379 × idle PATCH under `ulimit -n 400` (caps lowered to 112 total, 56 per address)',
          held: `peak ${sampler.peakHeld}; ${held} at 2.5 s (${fds} descriptors open)`,
          memory: `${mib(baseRss)} → peak ${mib(sampler.peakRss)}`,
          normalClient: `${ms(Math.min(...times))} to ${ms(Math.max(...times))} (10 new clients, all served); attacker's address: 10 × 503`,
          outcome: describeTally(counts),
        });
      } finally {
        for (const c of attack) c.socket.destroy();
        await berth.stop();
      }
    });
  });

  describe('finding 2: login throttling keyed on account and address', () => {
    it("12 failed logins for alice from the attacker's address do not slow alice's own login from hers", async () => {
      const berth = await start(target, { auth: true });
      try {
        const scope = 'repository:team/alice:pull';
        const baseline = await timed(() => token(berth.url, 'alice', PASSWORDS.alice!, scope, '127.0.0.2'));
        const guesses: number[] = [];
        for (let i = 0; i < 12; i++)
          guesses.push((await token(berth.url, 'alice', `guess-${i}`, scope, ATTACKER)).status);
        expect(tally(guesses)).toEqual({ 401: 5, 429: 7 });
        const locked = await token(berth.url, 'alice', PASSWORDS.alice!, scope, ATTACKER);
        expect(locked.status).toBe(429);
        expect(Number(locked.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        const own = await timed(() => token(berth.url, 'alice', PASSWORDS.alice!, scope, '127.0.0.2'));
        expect(own.result.status).toBe(200);
        const failures = berth.records().filter((r) => r.msg === 'login failed');
        expect(failures).toHaveLength(5);
        expect(failures[0]).toMatchObject({ account: 'alice', source: ATTACKER });
        figures.push({
          target,
          attack: '12 failed logins for alice, from the attacker',
          held: '-',
          memory: '-',
          normalClient: `alice from her address: ${ms(own.ms)} (before the attack: ${ms(baseline.ms)})`,
          outcome: `${describeTally(tally(guesses))}; alice from the attacker's address: 429 + Retry-After`,
        });
      } finally {
        await berth.stop();
      }
    });

    it('a flood of failed logins (8 s, 30 at a time, many accounts) costs an unrelated login no more than any flood', async () => {
      const berth = await start(target, { auth: true });
      try {
        const scope = 'repository:team/carol:pull';
        const carolLogin = () => timed(() => token(berth.url, 'carol', PASSWORDS.carol!, scope, '127.0.0.2'));
        const before: number[] = [];
        for (let i = 0; i < 5; i++) before.push((await carolLogin()).ms);
        /** 30 attackers send `attack(n)` for 8 s while carol logs in every 300 ms. */
        const flood = async (attack: (n: number) => Promise<number>) => {
          const statuses: number[] = [];
          const during: number[] = [];
          const started = performance.now();
          const until = started + 8000;
          let n = 0;
          const worker = async () => {
            while (performance.now() < until) statuses.push(await attack(n++));
          };
          const carol = (async () => {
            await sleep(300);
            while (performance.now() < until - 500) {
              const login = await carolLogin();
              expect(login.result.status).toBe(200);
              during.push(login.ms);
              await sleep(300);
            }
          })();
          await Promise.all([...Array.from({ length: 30 }, worker), carol]);
          const rate = Math.round(statuses.length / ((performance.now() - started) / 1000));
          return { statuses, during, rate };
        };
        const sampler = new Sampler(berth);
        const logins = await flood(
          async (n) =>
            (
              await token(
                berth.url,
                n % 3 === 0 ? 'dave' : `nobody-${n % 200}`,
                `guess-${n}`,
                scope,
                ATTACKER,
              )
            ).status,
        );
        sampler.stop();
        const checks = berth.records().filter((r) => r.msg === 'login failed').length;
        expect(logins.statuses.every((s) => s === 401 || s === 429)).toBe(true);
        // The address is locked after 50 failures: most of the flood is refused without a check.
        expect(checks).toBeLessThanOrEqual(60);
        // For comparison: the same flood of requests that are no logins at all (GET /v2/ without a token).
        const plain = await flood(async () => (await call(`${berth.url}/v2/`, { source: ATTACKER })).status);
        expect(plain.statuses.every((s) => s === 401)).toBe(true);
        figures.push({
          target,
          attack: `failed logins for 8 s, 30 at a time, across 200 accounts, from the attacker (${logins.rate} requests/s)`,
          held: '-',
          memory: `peak ${mib(sampler.peakRss)}`,
          normalClient: `carol's login from her address: median ${ms(median(logins.during))}, max ${ms(Math.max(...logins.during))}; before: ${ms(median(before))}; during \`GET /v2/\` from 30 workers likewise (${plain.rate}/s): ${ms(median(plain.during))}`,
          outcome: `${describeTally(tally(logins.statuses))}; ${checks} password checks ran`,
        });
      } finally {
        await berth.stop();
      }
    });
  });

  describe('finding 3: tokens die with the account incarnation, and cut grants hold at once', () => {
    it('a token issued before an account was removed and re-created under the same name is refused', async () => {
      const file = join(dir, `auth-recreate-${target}.json`);
      await writeFile(file, await readFile(authFile));
      const berth = await Berth.start({ target, dataDir: join(dir, `data-${runs++}`), authFile: file });
      try {
        const before = await token(berth.url, 'dave', PASSWORDS.dave!, 'repository:team/dave:pull,push');
        const headers = { Authorization: `Bearer ${before.token}` };
        expect((await call(`${berth.url}/v2/team/dave/tags/list`, { headers })).status).toBe(404);
        cli(['users', 'remove', 'dave', '--auth-file', file]);
        cli(
          ['users', 'add', 'dave', '--password-stdin', '--grant', 'team/dave:pull,push', '--auth-file', file],
          PASSWORDS.dave,
        );
        const after = await call(`${berth.url}/v2/team/dave/tags/list`, { headers });
        expect(after.status).toBe(401);
        expect(String(after.headers['www-authenticate'])).toContain('error="invalid_token"');
        // A push token of an account cut to pull: the next push is refused, pulls go on.
        const erin = await token(berth.url, 'erin', PASSWORDS.erin!, 'repository:team/erin:pull,push');
        const erinHeaders = { Authorization: `Bearer ${erin.token}` };
        expect((await pushBlob(berth.url, 'team/erin', erinHeaders)).status).toBe(201);
        cli(
          ['users', 'add', 'erin', '--password-stdin', '--grant', 'team/erin:pull', '--auth-file', file],
          PASSWORDS.erin,
        );
        const push = await pushBlob(berth.url, 'team/erin', erinHeaders);
        expect(push.status).toBe(403);
        expect(JSON.parse(push.body.toString()).errors[0].code).toBe('DENIED');
        expect((await call(`${berth.url}/v2/team/erin/tags/list`, { headers: erinHeaders })).status).toBe(
          404,
        );
      } finally {
        await berth.stop();
      }
    });

    it('forged, tampered, expired, alg-none and cross-repository tokens stay refused', async () => {
      const berth = await start(target, { auth: true });
      try {
        const scope = 'repository:team/alice:pull,push';
        const good = (await token(berth.url, 'alice', PASSWORDS.alice!, scope)).token!;
        const [h, p] = good.split('.') as [string, string, string];
        const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
        const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
        const widened = {
          ...claims,
          access: [{ type: 'repository', name: '*', actions: ['pull', 'push', 'delete'] }],
        };
        const doc = JSON.parse(await readFile(authFile, 'utf8')) as { signingKey: JWK };
        const key = await importJWK({ ...doc.signingKey, alg: 'ES256' }, 'ES256');
        const past = Math.floor(Date.now() / 1000) - 3600;
        const expired = await new SignJWT({ access: claims.access, gen: claims.gen })
          .setProtectedHeader({ alg: 'ES256', kid: String(doc.signingKey.kid ?? 'berth') })
          .setIssuer('berth')
          .setSubject('alice')
          .setAudience('berth')
          .setIssuedAt(past - 300)
          .setNotBefore(past - 300)
          .setExpirationTime(past)
          .setJti('x')
          .sign(key);
        const cases: [string, string, string, number][] = [
          ['forged signature', `${h}.${p}.${'A'.repeat(86)}`, '/v2/team/alice/tags/list', 401],
          ['tampered claims', `${h}.${b64(widened)}.${good.split('.')[2]}`, '/v2/team/alice/tags/list', 401],
          [
            'alg none',
            `${b64({ alg: 'none', typ: 'JWT' })}.${b64(widened)}.`,
            '/v2/team/alice/tags/list',
            401,
          ],
          ['expired', expired, '/v2/team/alice/tags/list', 401],
          ['another repository', good, '/v2/team/carol/tags/list', 403],
        ];
        for (const [what, jwt, path, status] of cases) {
          const res = await call(`${berth.url}${path}`, { headers: { Authorization: `Bearer ${jwt}` } });
          expect(res.status, what).toBe(status);
        }
        expect(
          (
            await call(`${berth.url}/v2/team/alice/tags/list`, {
              headers: { Authorization: `Bearer ${good}` },
            })
          ).status,
        ).toBe(404);
      } finally {
        await berth.stop();
      }
    });
  });

  describe('findings 4 and 5: malformed requests and HEAD on list endpoints', () => {
    it('answers malformed requests with 400 (or 431) and a JSON body, never an empty one', async () => {
      const berth = await start(target);
      try {
        const requests: [string, Buffer][] = [
          ['0xff in the path', Buffer.from('GET /v2/a\xff/tags/list HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1')],
          [
            '0xff in the query',
            Buffer.from('GET /v2/_catalog?last=\xff HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1'),
          ],
          ['a backslash in the path', Buffer.from('GET /v2/a\\b/tags/list HTTP/1.1\r\nHost: x\r\n\r\n')],
          ['a space in the path', Buffer.from('GET /v2/a b/tags/list HTTP/1.1\r\nHost: x\r\n\r\n')],
          [
            'a control character in a header',
            Buffer.from('GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n', 'latin1'),
          ],
          [
            '20 KiB of headers',
            Buffer.from(`GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
          ],
        ];
        for (const [what, bytes] of requests) {
          const outcome = await raw(berth.port, [bytes], { timeoutMs: 10_000 }).outcome;
          expect(outcome.status, what).toBeGreaterThanOrEqual(400);
          expect(outcome.status, what).toBeLessThan(500);
          expect(outcome.headers['content-type'], what).toContain('application/json');
          expect(() => JSON.parse(outcome.body) as unknown, what).not.toThrow();
          expect(outcome.end, what).toBe('closed');
        }
        // A backslash in the query is data, not an error.
        const query = await raw(berth.port, [
          'GET /v2/_catalog?last=a\\b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
        ]).outcome;
        expect(query.status).toBe(200);
      } finally {
        await berth.stop();
      }
    });

    it('answers HEAD on tags/list and _catalog with the GET status and headers', async () => {
      const berth = await start(target);
      try {
        await pushImage(berth.url, 'team/app', 'v1');
        for (const path of ['/v2/team/app/tags/list', '/v2/_catalog', '/v2/missing/tags/list']) {
          const get = await call(`${berth.url}${path}`);
          const headRes = await call(`${berth.url}${path}`, { method: 'HEAD' });
          expect(headRes.status, path).toBe(get.status);
          expect(headRes.headers['content-type'], path).toBe(get.headers['content-type']);
          if (get.status === 200)
            expect(headRes.headers['content-length'], path).toBe(String(get.body.length));
        }
      } finally {
        await berth.stop();
      }
    });
  });

  describe('finding 7: abandoned upload sessions are capped per client', () => {
    it('2,000 sessions opened and fed 100 KiB each by one address: 1,000 open, the rest 429 TOOMANYREQUESTS; others still push', async () => {
      const berth = await start(target);
      try {
        const chunk = Buffer.alloc(100 * 1024, 7);
        const outcomes: Record<string, number> = {};
        const started = performance.now();
        for (let i = 0; i < 2000; i++) {
          const opened = await call(`${berth.url}/v2/hostile/app/blobs/uploads/`, {
            method: 'POST',
            source: ATTACKER,
          });
          outcomes[opened.status] = (outcomes[opened.status] ?? 0) + 1;
          if (opened.status !== 202) {
            if (i === 1999) {
              expect(opened.status).toBe(429);
              expect(JSON.parse(opened.body.toString()).errors[0].code).toBe('TOOMANYREQUESTS');
              expect(opened.headers['retry-after']).toBe('60');
            }
            continue;
          }
          const patch = await call(`${berth.url}${String(opened.headers.location)}`, {
            method: 'PATCH',
            source: ATTACKER,
            headers: { 'Content-Type': 'application/octet-stream' },
            body: chunk,
          });
          expect(patch.status).toBe(202);
        }
        const seconds = (performance.now() - started) / 1000;
        expect(outcomes).toEqual({ 202: 1000, 429: 1000 });
        const stored = Number(execFileSync('du', ['-sb', berth.options.dataDir]).toString().split('\t')[0]);
        // 1,000 sessions of 100 KiB: about 100 MiB, where 2,000 took 210 MiB.
        expect(stored).toBeLessThan(130 * 1024 * 1024);
        const normal = await normalClient(berth.url, { source: '127.0.0.2' });
        figures.push({
          target,
          attack: '2,000 × (POST an upload session, PATCH 100 KiB, go away) from one address',
          held: `1000 sessions open (the per-client cap), ${Math.round(stored / 1048576)} MiB on disk`,
          memory: `RSS ${mib(berth.rssMiB())} after ${seconds.toFixed(0)} s`,
          normalClient: ms(normal),
          outcome: describeTally(outcomes),
        });
      } finally {
        await berth.stop();
      }
    });
  });

  if (target === 'gateway') {
    describe('finding 6: berth serve --lambda on the filesystem store', () => {
      it('pulls a 9 MiB blob: a 307 to a signed storage URL the gateway serves, not a 502', async () => {
        const berth = await start(target);
        try {
          const layer = Buffer.from(new Uint8Array(9 * 1024 * 1024).map((_, i) => (i * 13) % 251));
          const digest = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
          const opened = await call(`${berth.url}/v2/big/app/blobs/uploads/`, { method: 'POST' });
          let location = String(opened.headers.location);
          for (let at = 0; at < layer.length; at += 3 * 1024 * 1024) {
            const chunk = layer.subarray(at, at + 3 * 1024 * 1024);
            const patch = await call(`${berth.url}${location}`, {
              method: 'PATCH',
              headers: {
                'Content-Type': 'application/octet-stream',
                'Content-Range': `${at}-${at + chunk.length - 1}`,
              },
              body: chunk,
            });
            expect(patch.status).toBe(202);
            location = String(patch.headers.location);
          }
          expect((await call(`${berth.url}${location}?digest=${digest}`, { method: 'PUT' })).status).toBe(
            201,
          );
          const redirect = await call(`${berth.url}/v2/big/app/blobs/${digest}`);
          expect(redirect.status).toBe(307);
          const blob = await call(new URL(String(redirect.headers.location), berth.url).href);
          expect(blob.status).toBe(200);
          expect(`sha256:${createHash('sha256').update(blob.body).digest('hex')}`).toBe(digest);
        } finally {
          await berth.stop();
        }
      });
    });
  }
});

/** `berth users ...` as an administrator runs it (the bundled command). */
function cli(args: string[], stdin?: string): void {
  execFileSync(process.execPath, [CLI, ...args], { input: stdin ?? '', stdio: ['pipe', 'ignore', 'pipe'] });
}

async function timed<T>(run: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await run();
  return { result, ms: performance.now() - started };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function pushBlob(base: string, repo: string, headers: Record<string, string>) {
  const bytes = Buffer.from(`blob ${Math.random()}`);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  return call(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/octet-stream' },
    body: bytes,
  });
}

async function pushImage(base: string, repo: string, tag: string): Promise<void> {
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  expect((await pushBlob(base, repo, {})).status).toBe(201);
  const blob = await call(`${base}/v2/${repo}/blobs/uploads/?digest=${configDigest}`, {
    method: 'POST',
    body: config,
  });
  expect(blob.status).toBe(201);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: configDigest,
      size: config.length,
    },
    layers: [],
  });
  const put = await call(`${base}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  expect(put.status).toBe(201);
}
