import { createServer, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../lib/auth/admin.ts';
import { parseConfig, type ConfigInput } from '../../lib/config/config.ts';
import { startGateway } from '../../lib/gateway/http-api.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import {
  ConnectionGuard,
  addressKey,
  connectionLimits,
  serverTimeoutOptions,
} from '../../lib/server/connections.ts';
import { registryAnswer, type RunningServer } from '../../lib/server/local-registry.ts';
import { startLocalRegistry } from '../../lib/setup/local-server.ts';
import { head, raw, type RawOutcome } from './raw-http.ts';

let dir: string;
const servers: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-connections-'));
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

/** `berth serve` in this process, with short limits so that each case takes a second or two. */
async function server(input: ConfigInput = {}): Promise<{ running: RunningServer; port: number }> {
  const config = parseConfig({
    port: 0,
    dataDir: join(dir, `data-${servers.length}`),
    logLevel: 'silent',
    headersTimeoutSeconds: 1,
    bodyTimeoutSeconds: 1,
    bodyMinBytes: 1024,
    unauthTimeoutSeconds: 1,
    keepAliveTimeoutSeconds: 1,
    ...input,
  });
  const running = await startLocalRegistry(config, createLogger('silent'));
  servers.push(running);
  return { running, port: Number(new URL(running.url).port) };
}

async function uploadUrl(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/v2/slow/app/blobs/uploads/`, { method: 'POST' });
  return res.headers.get('location')!;
}

function errorCode(outcome: RawOutcome): string | undefined {
  return (JSON.parse(outcome.body) as { errors: { code: string }[] }).errors[0]?.code;
}

describe('request timeouts on the local server', () => {
  let port: number;
  beforeAll(async () => {
    ({ port } = await server());
  });

  it('answers a body that never starts with 408 in the spec format, and closes the connection', async () => {
    const location = await uploadUrl(port);
    const outcome = await raw(port, [head('PATCH', location, { 'Content-Length': 100_000 }) + 'x']).outcome;
    expect(outcome.status).toBe(408);
    expect(errorCode(outcome)).toBe('UNSUPPORTED');
    expect(outcome.body).toContain('no byte of the request body within 1 s');
    expect(outcome.end).toBe('closed');
  });

  it('cuts off a body that trickles in below the minimum progress', async () => {
    const location = await uploadUrl(port);
    const drip = Array.from({ length: 40 }, () => [{ wait: 250 }, 'y'.repeat(50)]).flat();
    const outcome = await raw(port, [head('PATCH', location, { 'Content-Length': 100_000 }), ...drip])
      .outcome;
    expect(outcome.status).toBe(408);
    expect(outcome.body).toMatch(/advanced by \d+ bytes in 1 s, less than 1024/);
  });

  it('lets a slow but steady body through (above the minimum in every interval)', async () => {
    const location = await uploadUrl(port);
    const chunks = Array.from({ length: 6 }, () => [{ wait: 400 }, 'z'.repeat(2000)]).flat();
    const outcome = await raw(port, [head('PATCH', location, { 'Content-Length': 12_000 }), ...chunks])
      .outcome;
    expect(outcome.status).toBe(202);
    expect(outcome.headers.range).toBe('0-11999');
  });

  it('answers headers that never end with 408 in the spec format', async () => {
    const outcome = await raw(port, ['GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n']).outcome;
    expect(outcome.status).toBe(408);
    expect(errorCode(outcome)).toBe('UNSUPPORTED');
  });

  it('closes an idle keep-alive connection after the keep-alive timeout', async () => {
    const outcome = await raw(port, [head('GET', '/v2/', { Connection: 'keep-alive' })]).outcome;
    expect(outcome.status).toBe(200);
    expect(outcome.end).toBe('closed');
    expect(outcome.headers['keep-alive']).toBe('timeout=1');
  });
});

describe('malformed requests on the local server', () => {
  let port: number;
  beforeAll(async () => {
    ({ port } = await server());
  });

  it.each([
    [
      'a raw 0xff byte in the path',
      Buffer.concat([Buffer.from('GET /v2/a'), Buffer.from([0xff]), Buffer.from('/tags/list')]),
    ],
    [
      'a raw 0xff byte in the query',
      Buffer.concat([Buffer.from('GET /v2/_catalog?last='), Buffer.from([0xff])]),
    ],
    ['a backslash in the path', Buffer.from('GET /v2/a\\b/tags/list')],
    ['a space in the path', Buffer.from('GET /v2/a b/tags/list')],
  ])('answers %s with 400 and a JSON error body', async (_what, line) => {
    const request = Buffer.concat([
      line,
      Buffer.from(' HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'),
    ]);
    const outcome = await raw(port, [request]).outcome;
    expect(outcome.status).toBe(400);
    expect(outcome.headers['content-type']).toContain('application/json');
    expect(errorCode(outcome)).toBe('UNSUPPORTED');
    expect(outcome.body).toMatch(/malformed request: .*(percent-encode|HTTP)/);
    expect(outcome.end).toBe('closed');
  });

  it('answers headers over 16 KiB with 431 and a JSON error body', async () => {
    const outcome = await raw(port, [head('GET', '/v2/', { 'X-Big': 'a'.repeat(20_000) })]).outcome;
    expect(outcome.status).toBe(431);
    expect(errorCode(outcome)).toBe('UNSUPPORTED');
  });
});

describe('connection caps on the local server', () => {
  it('answers past the per-address and total caps with 503 and Retry-After, never a reset, and serves other addresses', async () => {
    const { port, running } = await server({
      headersTimeoutSeconds: 10,
      maxConnections: 5,
      maxConnectionsPerAddress: 3,
    });
    // Three connections from 127.0.0.1 that send nothing: the address's cap.
    const held = [0, 1, 2].map(() => raw(port, [], { timeoutMs: 8000 }));
    await new Promise((r) => setTimeout(r, 200));
    expect(running.connections()).toMatchObject({
      open: 3,
      busiestAddress: { address: '127.0.0.1', connections: 3 },
    });

    const refused = await raw(port, [head('GET', '/v2/')]).outcome;
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(errorCode(refused)).toBe('UNAVAILABLE');
    expect(refused.body).toContain('your address has too many connections open (limit 3)');
    expect(refused.end).toBe('closed');

    // A refused request with a body: read (and dropped) before the 503, so the client sees the answer.
    const withBody = await raw(port, [
      head('PUT', '/v2/x/manifests/y', { 'Content-Length': 300_000 }),
      Buffer.alloc(300_000),
    ]).outcome;
    expect(withBody.status).toBe(503);
    expect(withBody.end).toBe('closed');

    const elsewhere = await raw(port, [head('GET', '/v2/')], { localAddress: '127.0.0.2' }).outcome;
    expect(elsewhere.status).toBe(200);

    // Two more from a third address reach the total cap of 5: everyone else waits.
    const more = [0, 1].map(() => raw(port, [], { localAddress: '127.0.0.3', timeoutMs: 8000 }));
    await new Promise((r) => setTimeout(r, 200));
    const total = await raw(port, [head('GET', '/v2/')], { localAddress: '127.0.0.4' }).outcome;
    expect(total.status).toBe(503);
    expect(total.body).toContain('the registry has too many connections open (limit 5)');
    for (const c of [...held, ...more]) c.socket.destroy();
    await new Promise((r) => setTimeout(r, 200));
    expect((await raw(port, [head('GET', '/v2/')], { localAddress: '127.0.0.4' }).outcome).status).toBe(200);
  });

  it('caps TLS connections the same way, counted before the handshake', async () => {
    const { port } = await server({
      tlsSelfSigned: true,
      headersTimeoutSeconds: 10,
      maxConnectionsPerAddress: 1,
    });
    const held = raw(port, [], { timeoutMs: 8000 });
    await new Promise((r) => setTimeout(r, 200));
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port, path: '/v2/', rejectUnauthorized: false },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(503);
    held.socket.destroy();
  });
});

describe('unauthenticated requests', () => {
  let port: number;
  beforeAll(async () => {
    const authFile = join(dir, 'auth.json');
    await addUser(authFile, 'alice', 'alice-password', ['*:pull']);
    ({ port } = await server({ authFile, bodyTimeoutSeconds: 30 }));
  });

  it('cuts off a /token body not sent whole within the short deadline, even while it trickles', async () => {
    const drip = Array.from({ length: 20 }, () => [{ wait: 200 }, 'a'.repeat(100)]).flat();
    const outcome = await raw(port, [
      head('POST', '/token', { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': 8000 }),
      ...drip,
    ]).outcome;
    expect(outcome.status).toBe(408);
    expect(outcome.body).toContain('unauthenticated request must be sent whole within 1 s');
  });

  it('refuses a /token body declared over 8 KiB at once with 413', async () => {
    const outcome = await raw(port, [
      head('POST', '/token', {
        'Content-Type': 'application/x-www-form-urlencoded',
        'Content-Length': 1_000_000_000,
      }) + 'x',
    ]).outcome;
    expect(outcome.status).toBe(413);
    expect(errorCode(outcome)).toBe('SIZE_INVALID');
  });
});

describe('the guard itself', () => {
  /** A bare Node server behind the guard, with a handler the test writes. */
  async function guarded(handler: Parameters<ConnectionGuard['wrap']>[0]) {
    const limits = connectionLimits(
      parseConfig({ headersTimeoutSeconds: 5, bodyTimeoutSeconds: 1, bodyMinBytes: 1024 }),
    );
    const s = createServer(serverTimeoutOptions(limits));
    const guard = new ConnectionGuard(s, { limits, logger: createLogger('silent'), answer: registryAnswer });
    s.on('request', guard.wrap(handler));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    servers.push({
      close: () =>
        new Promise<void>((r) => {
          guard.close();
          s.closeAllConnections();
          s.close(() => r());
        }),
    });
    return (s.address() as AddressInfo).port;
  }

  it('does not count time the server spends not reading the body against the client', async () => {
    const port = await guarded((req, res) => {
      // A slow store: the body waits 2.5 s, two body timeouts, before it is read.
      setTimeout(() => {
        let size = 0;
        req.on('data', (chunk: Buffer) => (size += chunk.length));
        req.on('end', () => res.end(String(size)));
      }, 2500);
    });
    const size = 4 * 1024 * 1024;
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, method: 'PUT', headers: { 'Content-Length': size } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.end(Buffer.alloc(size));
    });
    expect(body).toBe(String(size));
  });

  it('closes a response the client stopped reading', async () => {
    let finished: boolean | undefined;
    const closed = new Promise<void>((resolve) => {
      void guarded((_req, res) => {
        res.on('close', () => {
          finished = res.writableFinished;
          resolve();
        });
        const chunk = Buffer.alloc(1024 * 1024);
        let sent = 0;
        const write = () => {
          while (sent < 256 && !res.destroyed) {
            sent++;
            if (!res.write(chunk)) return void res.once('drain', write);
          }
          res.end();
        };
        write();
      }).then((port) => {
        // Sends its request, then never reads: the socket's buffers fill and the server stalls.
        const c = raw(port, [head('GET', '/big')], { timeoutMs: 15_000 });
        c.socket.pause();
      });
    });
    await closed;
    expect(finished).toBe(false);
  });

  it('groups IPv6 addresses by /64 and IPv4-mapped ones as IPv4', () => {
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('10.1.2.3')).toBe('10.1.2.3');
  });

  it('lowers the default caps to what the open-file limit can hold, and keeps explicit ones', () => {
    const config = parseConfig({});
    expect(connectionLimits(config, undefined, 400)).toMatchObject({
      maxConnections: 112,
      maxPerAddress: 56,
    });
    expect(connectionLimits(config, undefined, 1_048_576)).toMatchObject({
      maxConnections: 1000,
      maxPerAddress: 128,
    });
    expect(connectionLimits(config, undefined, undefined)).toMatchObject({ maxConnections: 1000 });
    const explicit = parseConfig({ maxConnections: 5000, maxConnectionsPerAddress: 7 });
    expect(connectionLimits(explicit, undefined, 400)).toMatchObject({
      maxConnections: 5000,
      maxPerAddress: 7,
    });
  });
});

describe('the same limits through the local API Gateway', () => {
  let port: number;
  beforeAll(async () => {
    const limits = connectionLimits(
      parseConfig({ headersTimeoutSeconds: 10, bodyTimeoutSeconds: 1, maxConnectionsPerAddress: 2 }),
    );
    const gateway = await startGateway({
      handler: async () => ({ statusCode: 200, body: 'ok' }),
      limits,
    });
    servers.push(gateway);
    port = Number(new URL(gateway.url).port);
  });

  it("answers past the per-address cap with 503, Retry-After and API Gateway's body", async () => {
    const held = [0, 1].map(() => raw(port, [], { timeoutMs: 8000 }));
    await new Promise((r) => setTimeout(r, 200));
    const refused = await raw(port, [head('GET', '/v2/')]).outcome;
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(JSON.parse(refused.body)).toEqual({ message: 'Service Unavailable' });
    for (const c of held) c.socket.destroy();
  });

  it("answers a malformed request with 400 and API Gateway's body, and a stalled body with 408", async () => {
    await new Promise((r) => setTimeout(r, 200));
    const bad = await raw(port, [Buffer.from('GET /v2/\xff HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1')]).outcome;
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toEqual({ message: 'Bad Request' });
    const stalled = await raw(port, [
      head('PATCH', '/v2/a/blobs/uploads/x', { 'Content-Length': 1000 }) + 'x',
    ]).outcome;
    expect(stalled.status).toBe(408);
    expect(JSON.parse(stalled.body)).toEqual({ message: 'Request Timeout' });
  });
});
