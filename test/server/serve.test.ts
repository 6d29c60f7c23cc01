import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BerthProcess, berthProcesses, type LogRecord } from './berth-process.ts';

const API_VERSION = 'registry/2.0';

const { berth, tempDir } = berthProcesses('berth-serve-');

function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function bytesOf(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 17) & 0xff;
  return out;
}

/** A monolithic push (POST ?digest=), as crane and oras do for small blobs. */
async function pushBlob(url: string, repo: string, bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = sha256(bytes);
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: bytes,
  });
  expect(res.status).toBe(201);
  expect(res.headers.get('Docker-Content-Digest')).toBe(digest);
  return digest;
}

/** Pushes a small image (config blob, one layer, manifest) under `tag`; returns the manifest digest. */
async function pushImage(url: string, repo: string, tag: string, layer: Uint8Array<ArrayBuffer>) {
  const config = new TextEncoder().encode('{"architecture":"amd64","os":"linux"}');
  const configDigest = await pushBlob(url, repo, config);
  const layerDigest = await pushBlob(url, repo, layer);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: configDigest,
      size: config.length,
    },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length },
    ],
  });
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  expect(res.status).toBe(201);
  return { manifestDigest: sha256(manifest), layerDigest };
}

/** Files left in the filesystem store's temp area (`<data dir>/.tmp/`, see lib/storage/filesystem/layout.ts). */
function tempFiles(dataDir: string): string[] {
  const tmp = join(dataDir, '.tmp');
  return existsSync(tmp) ? readdirSync(tmp) : [];
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = await listen();
  const port = portOf(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function listen(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on a port');
  return address.port;
}

/**
 * A request sent exactly as given: fetch would normalize the path (`%2e%2e` to `..`) and pool the
 * connection.
 */
function rawRequest(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Uint8Array,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const req = http.request({ hostname, port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function requestRecords(p: BerthProcess): LogRecord[] {
  return p.records.filter((r) => r.msg === 'request');
}

describe('berth serve --port 0', () => {
  let server: BerthProcess;
  let url: string;

  beforeAll(async () => {
    server = new BerthProcess(['serve', '--port', '0', '--data-dir', join(tempDir(), 'data')]);
    url = await server.url();
  });

  afterAll(async () => {
    await server.kill();
  });

  it('announces a loopback URL on an ephemeral port and answers GET and HEAD /v2/ with the API version', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(new URL(url).port).not.toBe('5000');
    const get = await fetch(`${url}/v2/`);
    expect(get.status).toBe(200);
    expect(get.headers.get('Docker-Distribution-Api-Version')).toBe(API_VERSION);
    expect(await get.json()).toEqual({});
    const head = await fetch(`${url}/v2/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('Docker-Distribution-Api-Version')).toBe(API_VERSION);
    const notFound = await fetch(`${url}/v2/no/such/repo/tags/list`);
    expect(notFound.status).toBe(404);
    expect(notFound.headers.get('Docker-Distribution-Api-Version')).toBe(API_VERSION);
  });

  it('logs exactly one JSON line per request with method, path, status, bytes, durationMs and requestId', async () => {
    const blob = bytesOf(3000, 1);
    const digest = sha256(blob);
    const requests: {
      id: string;
      method: string;
      path: string;
      loggedPath?: string;
      body?: Uint8Array<ArrayBuffer>;
    }[] = [
      { id: 'log-base', method: 'GET', path: '/v2/' },
      { id: 'log-head', method: 'HEAD', path: '/v2/' },
      { id: 'log-catalog', method: 'GET', path: '/v2/_catalog?n=10', loggedPath: '/v2/_catalog' },
      { id: 'log-unknown-manifest', method: 'GET', path: '/v2/library/nope/manifests/latest' },
      { id: 'log-bad-name', method: 'GET', path: '/v2/Upper/Case/tags/list' },
      { id: 'log-escaped', method: 'GET', path: '/v2/a/%2e%2e/b/tags/list' },
      { id: 'log-bad-method', method: 'POST', path: '/v2/' },
      { id: 'log-outside-api', method: 'GET', path: '/index.html' },
      {
        id: 'log-push',
        method: 'POST',
        path: `/v2/logs/app/blobs/uploads/?digest=${digest}`,
        loggedPath: '/v2/logs/app/blobs/uploads/',
        body: blob,
      },
      { id: 'log-blob-get', method: 'GET', path: `/v2/logs/app/blobs/${digest}` },
      { id: 'log-blob-range', method: 'GET', path: `/v2/logs/app/blobs/${digest}` },
    ];
    const responses = new Map<string, { status: number; length: number }>();
    for (const r of requests) {
      const headers: Record<string, string> = { 'X-Request-Id': r.id };
      if (r.id === 'log-blob-range') headers.Range = 'bytes=10-19';
      const res = await rawRequest(url, r.method, r.path, headers, r.body);
      expect(res.headers['x-request-id']).toBe(r.id);
      responses.set(r.id, { status: res.status, length: res.body.length });
    }
    // Without an X-Request-Id the server makes one, returns it and logs it.
    const anonymous = await fetch(`${url}/v2/`);
    const generatedId = anonymous.headers.get('X-Request-Id');
    expect(generatedId).toMatch(/^[0-9a-f-]{36}$/);
    // An over-long id is cut, not echoed whole.
    const longId = await fetch(`${url}/v2/`, { headers: { 'X-Request-Id': 'x'.repeat(1000) } });
    expect(longId.headers.get('X-Request-Id')).toBe('x'.repeat(64));
    // Requests are logged in order: once the last is there, all are.
    await fetch(`${url}/v2/`, { headers: { 'X-Request-Id': 'log-sentinel' } });
    await server.waitForRecord((r) => r.requestId === 'log-sentinel');

    const records = requestRecords(server);
    for (const r of requests) {
      const mine = server.records.filter((record) => record.requestId === r.id);
      expect(mine, r.id).toHaveLength(1);
      const [record] = mine;
      const response = responses.get(r.id)!;
      expect(record, r.id).toMatchObject({
        level: 'info',
        msg: 'request',
        method: r.method,
        path: r.loggedPath ?? r.path,
        status: response.status,
        requestId: r.id,
      });
      expect(typeof record!.bytes, r.id).toBe('number');
      expect(record!.bytes as number, r.id).toBeGreaterThanOrEqual(0);
      expect(typeof record!.durationMs, r.id).toBe('number');
      expect(record!.durationMs as number, r.id).toBeGreaterThanOrEqual(0);
      expect(Date.parse(record!.time as string), r.id).not.toBeNaN();
    }
    expect(responses.get('log-base')!.status).toBe(200);
    expect(responses.get('log-unknown-manifest')!.status).toBe(404);
    expect(responses.get('log-bad-name')!.status).toBe(400);
    expect(responses.get('log-escaped')!.status).toBe(400);
    expect(responses.get('log-bad-method')!.status).toBe(405);
    expect(responses.get('log-push')!.status).toBe(201);
    expect(responses.get('log-blob-range')!.status).toBe(206);
    // Where the handler states the body's length, the log carries it.
    for (const [id, length] of [
      ['log-base', 2],
      ['log-blob-get', blob.length],
      ['log-blob-range', 10],
    ] as const) {
      expect(responses.get(id)!.length).toBe(length);
      expect(records.find((r) => r.requestId === id)!.bytes, id).toBe(length);
    }
    expect(records.filter((r) => r.requestId === generatedId)).toHaveLength(1);
    expect(records.filter((r) => r.requestId === 'x'.repeat(64))).toHaveLength(1);
    // Nothing but JSON on stdout; nothing at all on stderr.
    expect(() => server.records).not.toThrow();
    expect(server.stderr).toBe('');
  });

  it('survives a client that disconnects in the middle of an upload, and the session stays usable', async () => {
    const start = await fetch(`${url}/v2/aborted/app/blobs/uploads/`, { method: 'POST' });
    expect(start.status).toBe(202);
    const location = start.headers.get('Location')!;
    await new Promise<void>((resolve) => {
      const req = http.request(`${url}${location}`, {
        method: 'PATCH',
        agent: false,
        headers: { 'Content-Type': 'application/octet-stream', 'X-Request-Id': 'aborted-patch' },
      });
      req.on('error', () => resolve());
      req.write(bytesOf(1000, 2), () => setTimeout(() => req.destroy(), 100));
    });
    const record = await server.waitForRecord((r) => r.requestId === 'aborted-patch' && r.msg === 'request');
    expect(record.method).toBe('PATCH');
    expect(requestRecords(server).filter((r) => r.requestId === 'aborted-patch')).toHaveLength(1);
    // A client hanging up is not a server fault: nothing at error level.
    expect(record.status).toBeLessThan(500);
    expect(server.records.filter((r) => r.requestId === 'aborted-patch' && r.level === 'error')).toEqual([]);

    const status = await fetch(`${url}${location}`);
    expect(status.status).toBe(204);
    expect(status.headers.get('Range')).toBe('0-0');
    const bytes = bytesOf(500, 3);
    const patch = await fetch(`${url}${location}`, { method: 'PATCH', body: bytes });
    expect(patch.status).toBe(202);
    const done = await fetch(`${url}${location}?digest=${sha256(bytes)}`, { method: 'PUT' });
    expect(done.status).toBe(201);
    expect((await fetch(`${url}/v2/`)).status).toBe(200);
  });

  it('answers a complete but out-of-order chunk with 416 and the Range, not as a disconnect', async () => {
    const start = await fetch(`${url}/v2/chunks/app/blobs/uploads/`, { method: 'POST' });
    const location = start.headers.get('Location')!;
    const first = await fetch(`${url}${location}`, {
      method: 'PATCH',
      headers: { 'Content-Range': '0-3', 'Content-Length': '4' },
      body: bytesOf(4, 5),
    });
    expect(first.status).toBe(202);
    const gap = await fetch(`${url}${location}`, {
      method: 'PATCH',
      headers: { 'Content-Range': '10-13', 'Content-Length': '4' },
      body: bytesOf(4, 6),
    });
    expect(gap.status).toBe(416);
    expect(gap.headers.get('Range')).toBe('0-3');
  });
});

describe('berth serve configuration', () => {
  it('reads PORT, BERTH_DATA_DIR and BERTH_LOG_LEVEL from the environment', async () => {
    const port = await freePort();
    const dataDir = join(tempDir(), 'env-data');
    // The web UI off: whether it is built (a warning when not) is not what this test is about.
    const p = berth(['serve'], {
      PORT: String(port),
      BERTH_DATA_DIR: dataDir,
      BERTH_LOG_LEVEL: 'warn',
      BERTH_WEB: 'off',
    });
    const url = `http://127.0.0.1:${port}`;
    // At level warn there is no `berth listening` line to read the URL from: poll the port.
    let answered = false;
    const deadline = Date.now() + 10_000;
    while (!answered) {
      if (p.child.exitCode !== null) throw new Error(`berth exited: ${p.stderr}`);
      if (Date.now() > deadline) throw new Error(`nothing answered on port ${port}`);
      answered = await fetch(`${url}/v2/`).then(
        (res) => res.status === 200,
        () => false,
      );
      if (!answered) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await pushBlob(url, 'env/app', bytesOf(100, 4));
    expect(existsSync(join(dataDir, 'objects'))).toBe(true);
    p.signal('SIGTERM');
    expect(await p.exit()).toEqual({ code: 0, signal: null });
    // warn: neither the listening line, nor request lines, nor the shutdown lines.
    expect(p.stdout).toBe('');
    expect(p.stderr).toBe('');
  });

  it('lets flags win over the environment', async () => {
    // The port the environment names is taken: if the environment won, berth could not start.
    const taken = await listen();
    try {
      const envDir = join(tempDir(), 'env-data');
      const flagDir = join(tempDir(), 'flag-data');
      const p = berth(['serve', '--port', '0', '--data-dir', flagDir, '--log-level', 'info'], {
        PORT: String(portOf(taken)),
        BERTH_DATA_DIR: envDir,
        BERTH_LOG_LEVEL: 'error',
      });
      const listening = await p.waitForRecord((r) => r.msg === 'berth listening');
      expect(listening.dataDir).toBe(flagDir);
      const url = String(listening.url);
      expect(Number(new URL(url).port)).not.toBe(portOf(taken));
      await pushBlob(url, 'flags/app', bytesOf(100, 5));
      await p.waitForRecord((r) => r.msg === 'request' && r.method === 'POST');
      expect(existsSync(join(flagDir, 'objects'))).toBe(true);
      expect(existsSync(envDir)).toBe(false);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('refuses invalid settings with a clear message, no stack trace, and a non-zero exit', async () => {
    const taken = await listen();
    try {
      const dataDir = join(tempDir(), 'data');
      const cases: { args: string[]; env?: Record<string, string>; message: RegExp }[] = [
        { args: ['--port', '70000'], message: /port: .*65535/ },
        { args: ['--port', 'http'], message: /port: / },
        { args: ['--log-level', 'loud'], message: /logLevel: .*"debug"\|"info"\|"warn"\|"error"\|"silent"/ },
        { args: [], env: { PORT: '70000' }, message: /port: .*65535/ },
        { args: [], env: { BERTH_MOUNT_WITHOUT_FROM: 'perhaps' }, message: /mountWithoutFrom: / },
        { args: ['--port', String(portOf(taken))], message: /address is already in use/ },
        { args: ['--bogus'], message: /Unknown option '--bogus'/ },
      ];
      const runs = cases.map(async ({ args, env, message }) => {
        const p = berth(['serve', '--data-dir', dataDir, ...args], env);
        const exit = await p.exit(20_000);
        const label = `${args.join(' ')} ${JSON.stringify(env ?? {})}`;
        expect(exit.code, label).not.toBe(0);
        expect(exit.code, label).not.toBeNull();
        expect(p.stderr, label).toMatch(/^berth: /);
        expect(p.stderr, label).toMatch(message);
        expect(p.stderr, label).not.toMatch(/^\s+at /m);
        expect(p.stdout, label).not.toContain('berth listening');
      });
      await Promise.all(runs);
      expect(existsSync(join(dataDir, 'objects'))).toBe(false);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});

describe('berth serve shutdown and restart', () => {
  it('finishes an upload in flight at SIGTERM, exits 0 without temp files, and a restart sees what was pushed', async () => {
    const dataDir = join(tempDir(), 'data');
    // A long grace period: exiting promptly must come from the connections closing, not from the timer.
    const env = { BERTH_SHUTDOWN_GRACE: '120' };
    const first = berth(['serve', '--port', '0', '--data-dir', dataDir], env);
    const url = await first.url();
    const layer = bytesOf(20_000, 6);
    const { manifestDigest, layerDigest } = await pushImage(url, 'shutdown/app', 'v1', layer);

    const start = await fetch(`${url}/v2/shutdown/app/blobs/uploads/`, { method: 'POST' });
    expect(start.status).toBe(202);
    const location = start.headers.get('Location')!;
    const uploadId = start.headers.get('Docker-Upload-UUID')!;
    // More than a multipart part in the first half: the PATCH claims its session when it writes the
    // part (a PATCH that only leaves a tail holds no claim and commits with one conditional write).
    const body = bytesOf(12 * 1024 * 1024, 7);
    const half = body.length / 2;

    // A streamed PATCH, as docker sends it: chunked, over a keep-alive connection.
    const agent = new http.Agent({ keepAlive: true });
    try {
      const req = http.request(`${url}${location}`, {
        method: 'PATCH',
        agent,
        headers: { 'Content-Type': 'application/octet-stream', 'X-Request-Id': 'slow-patch' },
      });
      const response = new Promise<http.IncomingMessage>((resolve, reject) => {
        req.on('response', resolve);
        req.on('error', reject);
      });
      req.write(body.subarray(0, half));
      // The request holds the session (its lease is on disk) before the server is told to stop.
      const session = join(dataDir, 'objects', 'uploads.d', `${uploadId}.json.obj`);
      await waitUntil(
        () => readFileSync(session, 'utf8').includes('"lease"'),
        'the PATCH claimed its session',
      );

      first.signal('SIGTERM');
      await first.waitForRecord((r) => r.msg === 'shutting down' && r.signal === 'SIGTERM');
      // No new connections once shutting down.
      await expect(fetch(`${url}/v2/`, { headers: { Connection: 'close' } })).rejects.toThrow();
      expect(first.child.exitCode).toBeNull();

      req.end(body.subarray(half));
      const res = await response;
      res.resume();
      expect(res.statusCode).toBe(202);
      expect(res.headers.range).toBe(`0-${body.length - 1}`);
      // The keep-alive client keeps its connection, but a stopping server closes it after the response.
      expect(res.headers.connection).toBe('close');

      const exit = await first.exit(3_000);
      expect(exit).toEqual({ code: 0, signal: null });
      const records = first.records;
      expect(records.find((r) => r.requestId === 'slow-patch')).toMatchObject({
        method: 'PATCH',
        status: 202,
      });
      expect(records.at(-1)).toMatchObject({ msg: 'stopped' });
      expect(first.stderr).toBe('');
      expect(tempFiles(dataDir)).toEqual([]);
    } finally {
      agent.destroy();
    }

    const second = berth(['serve', '--port', '0', '--data-dir', dataDir], env);
    const url2 = await second.url();
    const head = await fetch(`${url2}/v2/shutdown/app/blobs/${layerDigest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('Content-Length')).toBe(String(layer.length));
    const manifest = await fetch(`${url2}/v2/shutdown/app/manifests/v1`, {
      headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('Docker-Content-Digest')).toBe(manifestDigest);
    expect(await (await fetch(`${url2}/v2/shutdown/app/tags/list`)).json()).toEqual({
      name: 'shutdown/app',
      tags: ['v1'],
    });
    // The upload interrupted by the restart resumes where it was and completes.
    const status = await fetch(`${url2}${location}`);
    expect(status.status).toBe(204);
    expect(status.headers.get('Range')).toBe(`0-${body.length - 1}`);
    const done = await fetch(`${url2}${location}?digest=${sha256(body)}`, { method: 'PUT' });
    expect(done.status).toBe(201);
    const blob = await fetch(`${url2}/v2/shutdown/app/blobs/${sha256(body)}`);
    expect(blob.status).toBe(200);
    expect(sha256(new Uint8Array(await blob.arrayBuffer()))).toBe(sha256(body));

    second.signal('SIGINT');
    expect(await second.exit(5_000)).toEqual({ code: 0, signal: null });
    expect(tempFiles(dataDir)).toEqual([]);
  });
});
