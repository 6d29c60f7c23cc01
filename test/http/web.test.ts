import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleWeb, WEB_BUDGET_GZIPPED } from '../../build/web.ts';
import { parseConfig } from '../../lib/config/config.ts';
import { connectionLimits } from '../../lib/server/connections.ts';
import { startGateway, type RunningGateway } from '../../lib/gateway/http-api.ts';
import { WebAssets } from '../../lib/web/assets.ts';
import { createWebHandler } from '../../lib/web/lambda.ts';
import { testRegistry } from './harness.ts';

let dir: string;
let web: WebAssets;
let script: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-web-'));
  const built = await bundleWeb(join(dir, 'web'));
  expect(built.gzippedBytes).toBeLessThan(WEB_BUDGET_GZIPPED);
  web = (await WebAssets.load(built.dir))!;
  script = built.files.find((f) => f.name.endsWith('.js'))!.name;
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the built web UI', () => {
  it('stays within its budget of 80 KB gzipped, and its page has no inline script or style', async () => {
    expect(web.gzippedBytes).toBeLessThan(80 * 1024);
    const html = await readFile(join(dir, 'web', 'index.html'), 'utf8');
    expect(html).toContain(`<script type="module" src="/ui/${script}"></script>`);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|style=/);
    // No external fonts, scripts or styles: the page works without internet.
    expect(html).not.toMatch(/https?:\/\//);
  });
});

describe('serving it', () => {
  it('serves the page at / with a CSP and no caching, and hashed files gzipped and cached for good', () => {
    const page = web.serve('GET', '/', {});
    expect(page.status).toBe(200);
    expect(page.headers['Content-Security-Policy']).toContain("script-src 'self'");
    expect(page.headers['Content-Security-Policy']).toContain("frame-ancestors 'none'");
    expect(page.headers['Cache-Control']).toBe('no-cache');
    const js = web.serve('GET', `/ui/${script}`, { acceptEncoding: 'gzip, br' });
    expect(js.headers['Content-Encoding']).toBe('gzip');
    expect(js.headers['Cache-Control']).toContain('immutable');
    expect(gunzipSync(js.body).toString('utf8')).toContain('berth.session');
    const again = web.serve('GET', `/ui/${script}`, { ifNoneMatch: js.headers.ETag });
    expect(again.status).toBe(304);
    expect(web.serve('GET', '/ui/assets/nothing.js', {}).status).toBe(404);
    expect(web.serve('POST', '/', {}).status).toBe(405);
  });

  it('is served by the registry app at / and /ui/, leaving /v2/ to the registry', async () => {
    const r = testRegistry({ web });
    const page = await r.request('/');
    expect(page.status).toBe(200);
    expect(page.headers.get('Content-Type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('Content-Security-Policy')).toContain("default-src 'none'");
    const v2 = await r.request('/v2/');
    expect(v2.status).toBe(200);
    expect(await v2.text()).toBe('{}');
    const other = await r.request('/favicon.ico');
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ errors: [{ code: 'UNSUPPORTED' }] });
  });

  it('is served on Lambda by its own function, which the gateway routes GET / and GET /ui/ to', async () => {
    const handler = createWebHandler(web);
    const registry = async (event: APIGatewayProxyEventV2) => ({
      statusCode: 200,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ registry: event.rawPath }),
    });
    const gateway: RunningGateway = await startGateway({
      handler: registry,
      routes: [
        { method: 'GET', path: '/', handler, functionName: 'ui' },
        { method: 'GET', path: '/ui/', handler, functionName: 'ui' },
      ],
      limits: connectionLimits(parseConfig({})),
    });
    try {
      const page = await fetch(`${gateway.url}/`);
      expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(await page.text()).toContain('<div id="app">');
      const js = await fetch(`${gateway.url}/ui/${script}`);
      expect(js.status).toBe(200);
      expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(await (await fetch(`${gateway.url}/v2/`)).json()).toEqual({ registry: '/v2/' });
      // Only GET is routed to the page's function, as the HTTP API's route keys say.
      expect(await (await fetch(`${gateway.url}/`, { method: 'POST' })).json()).toEqual({ registry: '/' });
      expect(await (await fetch(`${gateway.url}/ui/`)).json()).toEqual({ registry: '/ui/' });
    } finally {
      await gateway.close();
    }
  });
});
