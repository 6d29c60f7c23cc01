// CORS from a real browser: Debian's Chromium, headless, driven by playwright-core (no
// browser download), loads a page served from one loopback origin and calls Berth on another: the
// catalog and a manifest (its Docker-Content-Digest read from the response), with and without
// token authentication, through `npm start` and through the built Lambda bundle behind the local
// API Gateway (`berth serve --lambda`). A page from an origin Berth was not told about must be
// refused by the browser.
//
//   npm run test:e2e:browser      (needs apt chromium: test/e2e/setup-clients.sh)
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, run, setTranscript } from './harness/proc.ts';
import { repoRoot, startBerth, type RegistryTarget } from './harness/registry.ts';

const CHROMIUM = process.env.BERTH_E2E_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;

const sha256 = (bytes: Uint8Array | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** A page origin: an HTTP server on its own loopback port serving one empty HTML page. */
async function startPageServer(): Promise<{ origin: string; server: Server }> {
  const port = await freePort();
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>registry UI</title><h1>registry UI</h1>');
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${port}`, server };
}

/** Pushes a one-layer image from Node (no CORS involved); returns the manifest digest. */
async function pushImage(url: string, repo: string, headers: Record<string, string> = {}): Promise<string> {
  const config = new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux', repo }));
  const layer = randomBytes(2048);
  for (const blob of [config, layer]) {
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/octet-stream' },
      body: blob,
    });
    if (res.status !== 201) throw new Error(`blob upload: ${res.status} ${await res.text()}`);
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: sha256(config),
      size: config.length,
    },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length },
    ],
  });
  const put = await fetch(`${url}/v2/${repo}/manifests/v1`, {
    method: 'PUT',
    headers: { ...headers, 'Content-Type': OCI_MANIFEST },
    body: manifest,
  });
  if (put.status !== 201) throw new Error(`manifest PUT: ${put.status} ${await put.text()}`);
  return sha256(manifest);
}

/** What the page saw: run inside the browser, so every request is a cross-origin fetch. */
interface PageView {
  catalog?: { status: number; body: unknown; error?: string };
  manifest?: { status: number; digest: string | null; computed: string; mediaType: string | null };
  challenge?: string | null;
  badLogin?: number | string;
  error?: string;
}

async function browse(
  page: Page,
  registry: string,
  repo: string,
  credentials?: { username: string; password: string },
): Promise<PageView> {
  return page.evaluate(
    async ({ registry, repo, credentials }) => {
      const view: PageView = {};
      const hex = async (bytes: ArrayBuffer) =>
        'sha256:' +
        [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))]
          .map((b) => b.toString(16).padStart(2, '0'))
          .join('');
      try {
        let auth: Record<string, string> = {};
        if (credentials) {
          const challenged = await fetch(`${registry}/v2/_catalog`);
          view.challenge = challenged.headers.get('WWW-Authenticate');
          const realm = /realm="([^"]+)"/.exec(view.challenge ?? '')?.[1] ?? '';
          const service = /service="([^"]+)"/.exec(view.challenge ?? '')?.[1] ?? '';
          // A wrong password must come back as a failure the page can show, not hang.
          const bad = await Promise.race([
            fetch(`${realm}?service=${service}`, {
              headers: { Authorization: `Basic ${btoa('nobody:wrong')}` },
            }).then((r) => r.status),
            new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 10 s'), 10_000)),
          ]);
          view.badLogin = bad;
          const scope = `registry:catalog:* repository:${repo}:pull`;
          const tokenRes = await fetch(`${realm}?service=${service}&scope=${encodeURIComponent(scope)}`, {
            headers: { Authorization: `Basic ${btoa(`${credentials.username}:${credentials.password}`)}` },
          });
          const { token } = (await tokenRes.json()) as { token: string };
          auth = { Authorization: `Bearer ${token}` };
        }
        // X-Request-Id is not a CORS-safelisted header: this request is preflighted (OPTIONS) even
        // without a token.
        const catalog = await fetch(`${registry}/v2/_catalog`, {
          headers: { ...auth, 'X-Request-Id': 'registry-ui-page' },
        });
        view.catalog = { status: catalog.status, body: await catalog.json() };
        const manifest = await fetch(`${registry}/v2/${repo}/manifests/v1`, {
          headers: { ...auth, Accept: 'application/vnd.oci.image.manifest.v1+json' },
        });
        const bytes = await manifest.arrayBuffer();
        view.manifest = {
          status: manifest.status,
          digest: manifest.headers.get('Docker-Content-Digest'),
          computed: await hex(bytes),
          mediaType: manifest.headers.get('Content-Type'),
        };
      } catch (err) {
        view.error = String(err);
      }
      return view;
    },
    { registry, repo, credentials },
  );
}

describe.skipIf(process.env.BERTH_E2E_ALLOW_MISSING === '1' && !existsSync(CHROMIUM))(
  'CORS: a page in Chromium calls Berth from another origin',
  () => {
    const work = mkdtempSync(path.join(process.env.BERTH_E2E_WORKDIR ?? os.tmpdir(), 'berth-e2e-browser-'));
    let ui: { origin: string; server: Server };
    let stranger: { origin: string; server: Server };
    let browser: BrowserContext;
    const registries: RegistryTarget[] = [];

    beforeAll(async () => {
      setTranscript(path.join(work, 'commands.log'));
      if (!existsSync(CHROMIUM))
        throw new Error(`${CHROMIUM} not found: run test/e2e/setup-clients.sh (apt chromium)`);
      ui = await startPageServer();
      stranger = await startPageServer();
      browser = await chromium.launchPersistentContext(path.join(work, 'chromium-profile'), {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
      });
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      for (const r of registries) await r.stop();
      ui?.server.close();
      stranger?.server.close();
      if (!process.env.BERTH_E2E_KEEP) rmSync(work, { recursive: true, force: true });
    });

    async function berth(
      label: string,
      command: string,
      env: Record<string, string> = {},
    ): Promise<RegistryTarget> {
      const dir = path.join(work, label);
      mkdirSync(dir, { recursive: true });
      const saved = { ...process.env };
      Object.assign(process.env, env);
      try {
        const target = await startBerth(dir, { command });
        registries.push(target);
        return target;
      } finally {
        for (const key of Object.keys(env)) {
          if (saved[key] === undefined) delete process.env[key];
          else process.env[key] = saved[key];
        }
      }
    }

    async function pageAt(origin: string): Promise<Page> {
      const page = await browser.newPage();
      await page.goto(origin);
      return page;
    }

    it('npm start --cors-origin: the page reads the catalog and a manifest with its digest; another origin is refused', async () => {
      const target = await berth(
        'open',
        `npm start -- --port {port} --data-dir {dataDir} --cors-origin ${ui.origin}`,
      );
      const digest = await pushImage(target.url, 'web/app');
      const page = await pageAt(ui.origin);
      const view = await browse(page, target.url, 'web/app');
      expect(view.error).toBeUndefined();
      expect(view.catalog?.status).toBe(200);
      expect((view.catalog?.body as { repositories: string[] }).repositories).toContain('web/app');
      expect(view.manifest).toEqual({ status: 200, digest, computed: digest, mediaType: OCI_MANIFEST });

      const other = await browse(await pageAt(stranger.origin), target.url, 'web/app');
      expect(other.error).toMatch(/Failed to fetch/);
      expect(other.catalog).toBeUndefined();
    });

    it('with an auth file: the page reads the challenge, logs in at /token (a wrong password fails visibly), lists and reads', async () => {
      const authFile = path.join(work, 'auth.json');
      await run(
        'npx',
        [
          'tsx',
          'bin/berth.ts',
          'users',
          'add',
          'ui',
          '--password-stdin',
          '--grant',
          '*:pull,push',
          '--grant',
          'registry:catalog:*',
          '--auth-file',
          authFile,
        ],
        {
          cwd: repoRoot,
          input: `${PASSWORD}\n`,
        },
      );
      const target = await berth(
        'auth',
        `npm start -- --port {port} --data-dir {dataDir} --auth-file ${authFile} --cors-origin ${ui.origin}`,
      );
      const token = (await (
        await fetch(
          `${target.url}/token?service=berth&scope=${encodeURIComponent('repository:team/api:pull,push')}`,
          {
            headers: { Authorization: `Basic ${Buffer.from(`ui:${PASSWORD}`).toString('base64')}` },
          },
        )
      ).json()) as { token: string };
      const digest = await pushImage(target.url, 'team/api', { Authorization: `Bearer ${token.token}` });
      const view = await browse(await pageAt(ui.origin), target.url, 'team/api', {
        username: 'ui',
        password: PASSWORD,
      });
      expect(view.error).toBeUndefined();
      expect(view.challenge).toMatch(/^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/token",service="berth"/);
      expect(view.badLogin).toBe(401);
      expect(view.catalog?.status).toBe(200);
      expect((view.catalog?.body as { repositories: string[] }).repositories).toContain('team/api');
      expect(view.manifest).toEqual({ status: 200, digest, computed: digest, mediaType: OCI_MANIFEST });
    });

    it('the Lambda bundle behind the local API Gateway, with BERTH_CORS_ORIGINS: the same page works', async () => {
      await run('npm', ['run', 'build'], { cwd: repoRoot, timeoutMs: 300_000 });
      const target = await berth(
        'lambda',
        'npx tsx bin/berth.ts serve --lambda --port {port} --data-dir {dataDir}',
        {
          BERTH_CORS_ORIGINS: ui.origin,
        },
      );
      const digest = await pushImage(target.url, 'lambda/app');
      const view = await browse(await pageAt(ui.origin), target.url, 'lambda/app');
      expect(view.error).toBeUndefined();
      expect((view.catalog?.body as { repositories: string[] }).repositories).toContain('lambda/app');
      expect(view.manifest).toEqual({ status: 200, digest, computed: digest, mediaType: OCI_MANIFEST });
      const other = await browse(await pageAt(stranger.origin), target.url, 'lambda/app');
      expect(other.error).toMatch(/Failed to fetch/);
    });
  },
);
