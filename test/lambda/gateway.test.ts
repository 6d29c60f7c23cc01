import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { createHash } from 'node:crypto';
import { request, type IncomingMessage } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleFunctions } from '../../build/bundle.ts';
import { loadHandler, type HttpFunction } from '../../lib/gateway/invoke.ts';
import { parseConfig } from '../../lib/config/config.ts';
import { connectionLimits } from '../../lib/server/connections.ts';
import { payloadBytes } from '../../lib/gateway/event.ts';
import { startGateway, type RunningGateway } from '../../lib/gateway/http-api.ts';
import { LIMITS } from '../../lib/gateway/limits.ts';
import { FilesystemDriver } from '../../lib/storage/filesystem/index.ts';
import { LocalStorageUrls } from '../../lib/storage/local-urls.ts';

const MB = 1024 * 1024;
let dir: string;
let bundle: RunningGateway;

// The BUILT registry bundle behind the gateway: what `berth serve --lambda` runs.
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-gateway-'));
  await bundleFunctions(join(dir, 'dist'));
  process.env.BERTH_STORAGE = 'filesystem';
  process.env.BERTH_INSECURE_NO_AUTH = 'true';
  process.env.BERTH_DATA_DIR = join(dir, 'data');
  process.env.BERTH_LOG_LEVEL = 'silent';
  // As `berth serve --lambda` sets it up on the filesystem store: the gateway serves the signed
  // storage URLs that the function redirects blob GETs to.
  const key = 'ab'.repeat(32);
  process.env.BERTH_LOCAL_STORAGE_KEY = key;
  bundle = await startGateway({
    handler: await loadHandler(join(dir, 'dist', 'registry', 'index.mjs')),
    storage: {
      driver: new FilesystemDriver({ root: join(dir, 'data') }),
      urls: LocalStorageUrls.fromHex(key),
    },
    limits: connectionLimits(parseConfig({})),
  });
});

afterAll(async () => {
  await bundle?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A gateway in front of a stand-in function, for the limits a registry cannot reach. */
async function withFunction(handler: HttpFunction, run: (url: string) => Promise<void>, timeoutMs?: number) {
  const gateway = await startGateway({ handler, timeoutMs, limits: connectionLimits(parseConfig({})) });
  try {
    await run(gateway.url);
  } finally {
    await gateway.close();
  }
}

function rawGet(url: string, headers: string[]): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    });
    req.on('error', reject);
    req.end();
  });
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('local API Gateway in front of the built bundle', () => {
  it('answers GET /v2/ with the gateway request id', async () => {
    const res = await fetch(`${bundle.url}/v2/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('{}');
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(res.headers.get('x-request-id')).toBe(res.headers.get('apigw-requestid'));
  });

  it('pushes and pulls a 3 MB blob in one PATCH (base64 in the event, under 6 MB)', async () => {
    const layer = new Uint8Array(3 * MB).map((_, i) => (i * 31) % 251);
    const start = await fetch(`${bundle.url}/v2/gw/app/blobs/uploads/`, { method: 'POST' });
    const location = start.headers.get('location')!;
    const patch = await fetch(`${bundle.url}${location}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream' },
      body: layer,
    });
    expect(patch.status).toBe(202);
    const put = await fetch(`${bundle.url}${location}?digest=${sha256(layer)}`, { method: 'PUT' });
    expect(put.status).toBe(201);
    const got = await fetch(`${bundle.url}/v2/gw/app/blobs/${sha256(layer)}`);
    expect(got.status).toBe(200);
    expect(sha256(new Uint8Array(await got.arrayBuffer()))).toBe(sha256(layer));
  });

  it('pulls a 9 MiB blob on the filesystem store: a 307 to a signed storage URL the gateway serves, with ranges', async () => {
    const layer = new Uint8Array(9 * MB).map((_, i) => (i * 7) % 253);
    const digest = sha256(layer);
    const start = await fetch(`${bundle.url}/v2/gw/big/blobs/uploads/`, { method: 'POST' });
    const location = start.headers.get('location')!;
    // Chunks under the Lambda request limit, as a chunked client sends them.
    for (let at = 0; at < layer.length; at += 3 * MB) {
      const chunk = layer.subarray(at, at + 3 * MB);
      const patch = await fetch(`${bundle.url}${location}`, {
        method: 'PATCH',
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${at}-${at + chunk.length - 1}`,
        },
        body: chunk,
      });
      expect(patch.status).toBe(202);
    }
    expect((await fetch(`${bundle.url}${location}?digest=${digest}`, { method: 'PUT' })).status).toBe(201);

    const redirect = await fetch(`${bundle.url}/v2/gw/big/blobs/${digest}`, { redirect: 'manual' });
    expect(redirect.status).toBe(307);
    const signed = redirect.headers.get('location')!;
    expect(signed).toMatch(/^\/_berth\/storage\/(blobs|data)\/[^?]+\?expires=\d+&/);
    const got = await fetch(`${bundle.url}${signed}`);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-length')).toBe(String(layer.length));
    expect(sha256(new Uint8Array(await got.arrayBuffer()))).toBe(digest);
    // What a client sees following the redirect itself.
    const followed = await fetch(`${bundle.url}/v2/gw/big/blobs/${digest}`);
    expect(sha256(new Uint8Array(await followed.arrayBuffer()))).toBe(digest);

    const part = await fetch(`${bundle.url}${signed}`, { headers: { range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${layer.length}`);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(layer.subarray(100, 200));

    const forged = signed.replace(/signature=[^&]+/, 'signature=AAAA');
    const refused = await fetch(`${bundle.url}${forged}`);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
    // The signature covers the method, as S3's does.
    expect((await fetch(`${bundle.url}${signed}`, { method: 'HEAD' })).status).toBe(403);
  });

  it('refuses a PATCH whose event exceeds 6 MB with 413, before the function runs', async () => {
    const res = await fetch(`${bundle.url}/v2/gw/app/blobs/uploads/anything`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array(5 * MB),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ message: 'Request Entity Too Large' });
  });

  it('refuses a body over 10 MB with 413 from API Gateway', async () => {
    const res = await fetch(`${bundle.url}/v2/gw/app/blobs/uploads/anything`, {
      method: 'PATCH',
      body: new Uint8Array(11 * MB),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ message: 'Request Entity Too Large' });
  });

  it('lets a client stream a 48 MiB body to the end, then answers 413 (no broken pipe)', async () => {
    // As skopeo and podman send a layer: Content-Length, then the bytes in small writes.
    const size = 48 * MB;
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(`${bundle.url}/v2/gw/app/blobs/uploads/anything`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-length': size },
      });
      // Go clients report a failed write rather than the answer: all of the body must go out.
      let answered: number | undefined;
      let sentAll = false;
      const settle = () => answered !== undefined && sentAll && resolve(answered);
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => ((answered = res.statusCode), settle()));
      });
      req.on('finish', () => ((sentAll = true), settle()));
      req.on('error', reject);
      const chunk = Buffer.alloc(64 * 1024);
      let sent = 0;
      const write = () => {
        while (sent < size) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', write);
        }
        req.end();
      };
      write();
    });
    expect(status).toBe(413);
  });

  it('passes a body between 4.4 MB and the Lambda limit to the registry, which names the fix', async () => {
    const res = await fetch(`${bundle.url}/v2/gw/app/blobs/uploads/anything`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array(4_500_000),
    });
    expect(res.status).toBe(413);
    const { errors } = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(errors[0]?.code).toBe('SIZE_INVALID');
    expect(errors[0]?.message).toMatch(/berth relay --registry/);
  });
});

describe('local API Gateway event and result mapping', () => {
  it('builds a payload-2.0 event: lower-case headers, repeated values comma-joined, cookies apart', async () => {
    let seen: APIGatewayProxyEventV2 | undefined;
    await withFunction(
      async (event) => {
        seen = event;
        return { statusCode: 204, headers: { 'X-Mixed-Case': 'yes' }, cookies: ['s=1; Path=/', 't=2'] };
      },
      async (url) => {
        // node:http, not fetch: fetch joins repeated headers itself before sending them.
        const res = await rawGet(`${url}/v2/r/tags/list?tag=a&tag=b&n=1%202`, [
          ...['Host', 'registry.local', 'X-Repeated', 'one', 'X-Repeated', 'two', 'Cookie', 'a=1; b=2'],
        ]);
        expect(res.statusCode).toBe(204);
        expect(res.headers['x-mixed-case']).toBe('yes');
        expect(res.headers['set-cookie']).toEqual(['s=1; Path=/', 't=2']);
      },
    );
    expect(seen).toMatchObject({
      version: '2.0',
      routeKey: '$default',
      rawPath: '/v2/r/tags/list',
      rawQueryString: 'tag=a&tag=b&n=1%202',
      queryStringParameters: { tag: 'a,b', n: '1 2' },
      cookies: ['a=1', 'b=2'],
      isBase64Encoded: false,
      requestContext: { http: { method: 'GET', path: '/v2/r/tags/list' }, stage: '$default' },
    });
    expect(seen?.headers['x-repeated']).toBe('one,two');
    expect(seen?.headers.cookie).toBeUndefined();
    expect(seen?.body).toBeUndefined();
  });

  it('sends JSON bodies as text and binary ones base64', async () => {
    const bodies: Pick<APIGatewayProxyEventV2, 'body' | 'isBase64Encoded'>[] = [];
    await withFunction(
      async ({ body, isBase64Encoded }) => {
        bodies.push({ body, isBase64Encoded });
        return { statusCode: 200, body: Buffer.from([0, 255]).toString('base64'), isBase64Encoded: true };
      },
      async (url) => {
        const json = await fetch(url, {
          method: 'PUT',
          headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
          body: '{"a":"é"}',
        });
        expect(new Uint8Array(await json.arrayBuffer())).toEqual(new Uint8Array([0, 255]));
        await fetch(url, { method: 'PATCH', body: new Uint8Array([1, 2, 3]) });
      },
    );
    expect(bodies).toEqual([
      { body: '{"a":"é"}', isBase64Encoded: false },
      { body: 'AQID', isBase64Encoded: true },
    ]);
  });

  it('answers 502 when the function returns more than 6 MB', async () => {
    await withFunction(
      async () => ({ statusCode: 200, body: 'x'.repeat(6 * MB + 200) }),
      async (url) => {
        const res = await fetch(url);
        expect(res.status).toBe(502);
        expect(await res.json()).toEqual({ message: 'Internal Server Error' });
      },
    );
  });

  it('measures a base64 result as Lambda does, to the byte: 6 MB + 100 passes, one byte more is 502', async () => {
    // {"statusCode":200,"isBase64Encoded":true,"body":"AAA..."}: the body fills the rest of the limit.
    const frame = JSON.stringify({ statusCode: 200, isBase64Encoded: true, body: '' }).length;
    for (const [extra, status] of [
      [0, 200],
      [1, 502],
    ] as const) {
      const body = 'A'.repeat(LIMITS.invokeResponseBytes - frame + extra);
      await withFunction(
        async () => ({ statusCode: 200, isBase64Encoded: true, body }),
        async (url) => {
          const res = await fetch(url);
          expect(res.status).toBe(status);
          await res.arrayBuffer();
        },
      );
    }
  });

  it('answers 500 when the function throws, and 503 when it outlives the integration timeout', async () => {
    await withFunction(
      async () => {
        throw new Error('boom');
      },
      async (url) => {
        const res = await fetch(url);
        expect(res.status).toBe(500);
        expect(await res.json()).toEqual({ message: 'Internal Server Error' });
      },
    );
    await withFunction(
      () => new Promise((resolve) => setTimeout(() => resolve({ statusCode: 200 }), 500)),
      async (url) => {
        const res = await fetch(url);
        expect(res.status).toBe(503);
        expect(await res.json()).toEqual({ message: 'Service Unavailable' });
      },
      50,
    );
  });
});

describe('payloadBytes: the bytes of the JSON Lambda measures, without serializing a large base64 body', () => {
  const big = (n: number) => Buffer.alloc(n, 0xa5).toString('base64');
  const cases: [string, unknown][] = [
    [
      'an event with a 4 MiB base64 body',
      { version: '2.0', headers: { a: 'é"\\' }, body: big(4 * MB), isBase64Encoded: true },
    ],
    ['a base64 body ending in one "="', { body: big(100_001), isBase64Encoded: true }],
    ['a base64 body ending in "=="', { body: big(100_000), isBase64Encoded: true }],
    ['a large text body with quotes, controls and non-ASCII', { body: `{"a":"é\u0001\n😀"}`.repeat(20_000) }],
    ['a large string with "=" inside (not base64)', { body: `${big(70_000)}=${big(70_000)}` }],
    ['a large ASCII body with one control character', { body: `${'a'.repeat(70_000)}\u0007` }],
    ['a large ASCII body with one backslash', { body: `${'a'.repeat(70_000)}\\` }],
    ['a large ASCII body with one quote', { body: `"${'a'.repeat(70_000)}` }],
    ['a large ASCII body with DEL (not escaped)', { body: `${'a'.repeat(70_000)}\u007f` }],
    ['a small body', { body: 'AQID', isBase64Encoded: true }],
    ['no body', { statusCode: 204, headers: { 'x-a': 'b' } }],
    ['a string result', 'hello "world"'],
    ['null', null],
    ['undefined', undefined],
  ];
  for (const [name, value] of cases) {
    it(name, () => {
      const bytes = Buffer.byteLength(JSON.stringify(value) ?? '');
      expect(payloadBytes(value)).toBe(bytes);
      // The gateway's own events: a base64 body it made is counted without being looked through.
      if ((value as { isBase64Encoded?: boolean } | null)?.isBase64Encoded)
        expect(payloadBytes(value, true)).toBe(bytes);
    });
  }
});
