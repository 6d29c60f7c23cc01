import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startReplayFront, type ReplayFront } from '../../bench/lib/replay-front.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const BLOB = `sha256:${'b'.repeat(64)}`;

/** A registry stand-in that counts what reaches it. */
async function upstream(): Promise<{ server: Server; host: string; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.url === '/v2/r/manifests/tag') {
      res.writeHead(200, { 'Docker-Content-Digest': DIGEST, 'Content-Type': 'application/json' });
      res.end(req.method === 'HEAD' ? undefined : '{"manifest":1}');
    } else if (req.url === `/v2/r/blobs/${BLOB}`) {
      res.writeHead(307, { Location: 'http://storage.example/blob?signed' });
      res.end();
    } else {
      res.writeHead(404);
      res.end('{}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, host: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

let front: ReplayFront | undefined;
let up: Awaited<ReturnType<typeof upstream>> | undefined;
afterEach(async () => {
  await front?.close();
  await new Promise((resolve) => up?.server.close(resolve));
});

const get = (path: string, init: RequestInit = {}) =>
  fetch(`http://${front!.host}${path}`, { redirect: 'manual', ...init });

describe('the replay front (the pull bound)', () => {
  it('answers a recorded pull from memory, with no request reaching the registry', async () => {
    up = await upstream();
    front = await startReplayFront(up.host);
    expect((await get('/v2/r/manifests/tag', { headers: { Accept: 'a, b' } })).status).toBe(200);
    expect((await get(`/v2/r/blobs/${BLOB}`)).status).toBe(307);
    const recorded = up.seen.length;
    front.replay();

    // The Accept in another order (docker's next pull), the HEAD of the tag, the manifest by digest.
    const tag = await get('/v2/r/manifests/tag', { headers: { Accept: 'b, a' } });
    expect(await tag.text()).toBe('{"manifest":1}');
    const head = await get('/v2/r/manifests/tag', { method: 'HEAD' });
    expect([head.status, head.headers.get('docker-content-digest')]).toEqual([200, DIGEST]);
    expect(await (await get(`/v2/r/manifests/${DIGEST}`)).text()).toBe('{"manifest":1}');
    const blob = await get(`/v2/r/blobs/${BLOB}`);
    expect([blob.status, blob.headers.get('location')]).toEqual([307, 'http://storage.example/blob?signed']);

    expect(up.seen.length).toBe(recorded);
    expect(front.misses).toEqual([]);
  });

  it('sends what it never recorded to the registry and lists it as a miss', async () => {
    up = await upstream();
    front = await startReplayFront(up.host);
    front.replay();
    expect((await get('/v2/r/manifests/other')).status).toBe(404);
    expect(up.seen).toEqual(['GET /v2/r/manifests/other']);
    expect(front.misses).toEqual([expect.stringMatching(/^GET \/v2\/r\/manifests\/other /)]);
  });
});
