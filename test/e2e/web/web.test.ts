// The web UI in a real browser (Debian's chromium, driven by playwright-core) against Berth started
// as users start it: `npm start` (BERTH_WEB_TARGET=local, the default) or the Lambda bundles behind
// the local API Gateway on S3 (BERTH_WEB_TARGET=lambda, inside test/e2e/with-s3.ts). An image is
// pushed by a real client (skopeo) first. See test/e2e/web/README.md.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, setAnonymousPull } from '../../../lib/auth/admin.ts';
import { have, run } from '../clients/harness/proc.ts';
import { repoRoot, startBerth, type RegistryTarget } from '../clients/harness/registry.ts';
import { writeAppLayout, type PushedLayout } from './images.ts';

const TARGET = process.env.BERTH_WEB_TARGET === 'lambda' ? 'lambda' : 'local';
const CHROMIUM = process.env.BERTH_CHROMIUM ?? '/usr/bin/chromium';
const PASSWORDS = { admin: 'admin-password-1', dev: 'dev-password-1', reader: 'reader-password-1' };
// A year and a bit from now (whole minutes, as the page shows it): never a fixed date, which would
// one day lie in the past and turn the notice into "expired".
const EXPIRES_AT = new Date(Math.ceil((Date.now() + 400 * 86_400_000) / 60_000) * 60_000).toISOString();
const EXPIRES_SHOWN = `${EXPIRES_AT.slice(0, 10)} ${EXPIRES_AT.slice(11, 19)} UTC`;
// README screenshots come from the run against npm start; the Lambda run keeps its own.
const SHOTS = TARGET === 'local' ? join(repoRoot, 'docs', 'screenshots') : undefined;
// oras (for the SBOM referrer) is built by setup-clients.sh into the cache's bin/.
const CLIENT_BIN = join(
  process.env.BERTH_CACHE ?? join(process.env.HOME ?? '/root', '.cache', 'berth'),
  'bin',
);
const CLIENT_ENV = { ...process.env, PATH: `${CLIENT_BIN}:${process.env.PATH ?? '/usr/bin:/bin'}` };
const HAVE_ORAS = have('oras', CLIENT_ENV);

let work: string;
let berth: RegistryTarget;
let browser: Browser;
let app: PushedLayout;
const consoleProblems: string[] = [];

async function skopeo(args: string[]) {
  return run('skopeo', args, { timeoutMs: 120_000 });
}

beforeAll(async () => {
  if (TARGET === 'lambda' && process.env.BERTH_STORAGE !== 's3') {
    throw new Error(
      'the Lambda target needs S3: run `npx tsx test/e2e/with-s3.ts npm run test:e2e:web:lambda`',
    );
  }
  if (!HAVE_ORAS && process.env.CI)
    throw new Error(`no oras in ${CLIENT_BIN}: run test/e2e/setup-clients.sh`);
  work = mkdtempSync(join(tmpdir(), `berth-web-${TARGET}-`));
  const authFile = join(work, 'auth.json');
  await addUser(authFile, 'admin', PASSWORDS.admin, ['*:pull,push,delete', 'registry:catalog:*']);
  await addUser(authFile, 'dev', PASSWORDS.dev, ['team/*:pull,push,delete']);
  await addUser(authFile, 'reader', PASSWORDS.reader, ['team/*:pull']);
  await setAnonymousPull(authFile, ['public/*']);
  // What the page is told about the registry (on AWS the stack sets these from team and ttl).
  process.env.BERTH_REGISTRY_NAME = 'payments';
  process.env.BERTH_EXPIRES_AT = EXPIRES_AT;
  process.env.BERTH_RETENTION = JSON.stringify([
    { repositories: 'team/*', keepLast: 20, untaggedAfterDays: 7 },
  ]);
  process.env.BERTH_IMMUTABLE_TAGS = 'team/*:1.*';
  const auth = `--auth-file ${authFile}`;
  berth = await startBerth(work, {
    command:
      TARGET === 'local'
        ? `npm start -- --port {port} --data-dir {dataDir} ${auth}`
        : `npm run start:lambda -- --port {port} --data-dir {dataDir} ${auth}`,
  });

  // A real client pushes: a two-platform index under 1.0 and latest, its amd64 image alone as old,
  // and a public tool anonymous users may pull.
  app = writeAppLayout(join(work, 'layout'), '1.0');
  const creds = ['--dest-tls-verify=false', '--dest-creds', `admin:${PASSWORDS.admin}`];
  for (const tag of ['1.0', 'latest']) {
    await skopeo([
      'copy',
      '--all',
      '--preserve-digests',
      ...creds,
      `oci:${app.dir}:1.0`,
      `docker://${berth.host}/team/app:${tag}`,
    ]);
  }
  await skopeo([
    'copy',
    '--preserve-digests',
    '--override-arch',
    'amd64',
    '--override-os',
    'linux',
    ...creds,
    `oci:${app.dir}:1.0`,
    `docker://${berth.host}/team/app:old`,
  ]);
  await skopeo([
    'copy',
    '--all',
    '--preserve-digests',
    ...creds,
    `oci:${app.dir}:1.0`,
    `docker://${berth.host}/public/tool:1`,
  ]);
  // An SBOM referrer for the amd64 image, when oras is there (setup-clients.sh builds it).
  const amd64 = app.images.find((i) => i.platform === 'linux/amd64')!;
  if (HAVE_ORAS) {
    const sbom = join(work, 'sbom.spdx.json');
    writeFileSync(sbom, JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'app' }));
    await run(
      'oras',
      [
        'attach',
        '--plain-http',
        '-u',
        'admin',
        '-p',
        PASSWORDS.admin,
        '--artifact-type',
        'application/spdx+json',
        `${berth.host}/team/app@${amd64.digest}`,
        'sbom.spdx.json:application/spdx+json',
      ],
      { cwd: work, env: CLIENT_ENV },
    );
  }
  // A garbage collection run and a usage report, as the janitor leaves them on AWS.
  const gcEnv = { ...process.env, NO_COLOR: '1' };
  const store = TARGET === 'local' ? ['--data-dir', join(work, 'registry-data')] : ['--storage', 's3'];
  await run('npx', ['tsx', 'bin/berth.ts', 'gc', ...store], {
    cwd: repoRoot,
    env: gcEnv,
    timeoutMs: 180_000,
  });

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    // playwright-core gives every launch a fresh, temporary user-data-dir of its own.
  });
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await berth?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function newPage(options: { dark?: boolean } = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 860 },
    colorScheme: options.dark ? 'dark' : 'light',
    reducedMotion: 'reduce',
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: berth.url });
  const page = await context.newPage();
  page.on('console', (m) => {
    // A refused request (the 401 that tells the page to get a token) is logged by the browser as a
    // failed load: expected. Script errors and CSP violations are not.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
      consoleProblems.push(m.text());
  });
  page.on('pageerror', (e) => consoleProblems.push(e.message));
  return { context, page };
}

async function signIn(page: Page, user: keyof typeof PASSWORDS) {
  await page.goto(`${berth.url}/#/sign-in`);
  await page.getByLabel('Name').fill(user);
  await page.getByLabel('Password or secret').fill(PASSWORDS[user]);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(`Signed in as ${user}`).waitFor();
}

async function shot(page: Page, name: string) {
  if (!SHOTS) return;
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

interface AxeViolation {
  id: string;
  impact: string;
  help: string;
  nodes: { target: string[] }[];
}

/**
 * axe-core's WCAG 2.1 A and AA rules on the page as it is. Injected through the DevTools protocol
 * (evaluate), since the page's CSP rightly refuses inline scripts.
 */
async function accessibilityViolations(page: Page): Promise<string[]> {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const axe = (
      globalThis as unknown as {
        axe: { run: (ctx: Document, o: object) => Promise<{ violations: unknown[] }> };
      }
    ).axe;
    const result = await axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    });
    return result.violations;
  });
  return (violations as AxeViolation[]).map(
    (v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
  );
}

describe(`the web UI (${TARGET === 'local' ? 'npm start' : 'Lambda gateway on S3'})`, () => {
  it('serves the page with a content security policy, no inline script, and /v2/ untouched', async () => {
    const page = await fetch(`${berth.url}/`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    const html = await page.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const v2 = await fetch(`${berth.url}/v2/`);
    expect(v2.status).toBe(401);
    expect(v2.headers.get('www-authenticate')).toContain('Bearer realm=');
  });

  it('lets anonymous visitors browse what anonymous users may pull, and shows the expiry and how to log in', async () => {
    const { context, page } = await newPage();
    const started = Date.now();
    await page.goto(`${berth.url}/`);
    await page.getByRole('link', { name: 'public/tool' }).waitFor();
    process.stdout.write(`[web] first screen usable after ${Date.now() - started} ms (${TARGET})\n`);
    expect(await page.getByRole('link', { name: 'team/app' }).count()).toBe(0);
    await expect(page.getByRole('note').textContent()).resolves.toContain(EXPIRES_SHOWN);
    await expect(page.locator('footer').textContent()).resolves.toContain(`docker login ${berth.host}`);
    await expect(page.locator('.registry-name').textContent()).resolves.toBe('payments');
    await context.close();
  });

  it('signs in, lists repositories, and opens an image pushed by skopeo with its kind and platforms', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'dev');
    const row = page.getByRole('row', { name: /team\/app/ });
    await row.waitFor();
    await expect(row.getByRole('cell').first().textContent()).resolves.toBe('3');
    await shot(page, 'repositories');
    await page.getByRole('link', { name: 'team/app' }).click();
    const tagRow = page.getByRole('row', { name: /^1\.0/ });
    await tagRow.waitFor();
    await expect(tagRow.textContent()).resolves.toContain('Multi-platform');
    await expect(tagRow.textContent()).resolves.toContain('linux/amd64, linux/arm64');
    await expect(tagRow.textContent()).resolves.toContain('immutable');
    const oldRow = page.getByRole('row', { name: /^old/ });
    await expect(oldRow.textContent()).resolves.toContain('Image');
    await expect(page.locator('.policy').textContent()).resolves.toContain('keeps the newest 20 tags');
    // The password is nowhere in the page's storage: only the session token is.
    const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage, ...localStorage }));
    expect(stored).not.toContain(PASSWORDS.dev);
    expect(stored).toContain('refreshToken');
    await shot(page, 'tags');
    await context.close();
  });

  it('copies a pull command with the right host', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'dev');
    await page.goto(`${berth.url}/#/r/team/app`);
    await page
      .getByRole('button', { name: `Copy pull command for 1.0: docker pull ${berth.host}/team/app:1.0` })
      .click();
    await page
      .getByRole('button', { name: /Copy pull command for 1\.0/ })
      .getByText('Copied')
      .waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(
      `docker pull ${berth.host}/team/app:1.0`,
    );
    await page.getByLabel('podman').check();
    await page.getByRole('button', { name: /Copy pull command for latest/ }).click();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(
      `podman pull ${berth.host}/team/app:latest`,
    );
    await context.close();
  });

  it("shows an index's platforms, each image's layers, config and history, and its referrers", async () => {
    const { context, page } = await newPage();
    await signIn(page, 'dev');
    await page.goto(`${berth.url}/#/r/team/app/m/1.0`);
    const platforms = page.getByRole('table').first();
    await platforms.getByRole('link', { name: 'linux/arm64' }).waitFor();
    await expect(platforms.getByRole('link', { name: 'linux/amd64' }).count()).resolves.toBe(1);
    await shot(page, 'index');
    await platforms.getByRole('link', { name: 'linux/amd64' }).click();
    await page.getByRole('heading', { name: 'Layers (3)' }).waitFor();
    const amd64 = app.images.find((i) => i.platform === 'linux/amd64')!;
    await expect(page.locator('h1').textContent()).resolves.toContain(amd64.digest.slice(7, 19));
    await expect(page.getByText('APP_MODE=production').count()).resolves.toBe(1);
    await expect(page.getByText('COPY app /usr/local/bin/app # buildkit').count()).resolves.toBe(1);
    await expect(page.getByText('"/usr/local/bin/app"').count()).resolves.toBeGreaterThan(0);
    if (HAVE_ORAS) {
      await expect(page.getByRole('cell', { name: 'application/spdx+json' }).count()).resolves.toBe(1);
    }
    await page.getByText(/^Manifest JSON/).click();
    await expect(page.locator('details.raw pre').textContent()).resolves.toContain('"schemaVersion": 2');
    await shot(page, 'manifest');
    await context.close();
  });

  it('deletes a tag as a user allowed to, after naming what becomes untagged', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'dev');
    await page.goto(`${berth.url}/#/r/team/app`);
    await page.getByRole('button', { name: 'Delete tag old' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Becomes untagged:').waitFor();
    const amd64 = app.images.find((i) => i.platform === 'linux/amd64')!;
    // No tag names the amd64 image any more, but the tagged index still lists it: it is kept.
    await expect(dialog.textContent()).resolves.toContain('Removes the tag old.');
    await expect(dialog.getByRole('listitem').first().textContent()).resolves.toContain(
      `${amd64.digest.slice(0, 19)} (this manifest; a tagged index still lists it, so it is kept)`,
    );
    await expect(dialog.textContent()).resolves.toContain('deletes untagged manifests after 7 days');
    await shot(page, 'delete');
    await dialog.getByRole('button', { name: 'Delete tag old' }).click();
    await page.getByRole('status').filter({ hasText: 'Deleted tag old.' }).waitFor();
    await page.getByRole('row', { name: /^old/ }).waitFor({ state: 'detached' });
    // The registry agrees, through its own API.
    const inspect = await run(
      'skopeo',
      [
        'list-tags',
        '--tls-verify=false',
        '--creds',
        `admin:${PASSWORDS.admin}`,
        `docker://${berth.host}/team/app`,
      ],
      { timeoutMs: 60_000 },
    );
    expect((JSON.parse(inspect.stdout) as { Tags: string[] }).Tags.sort()).toEqual(['1.0', 'latest']);
    await context.close();
  });

  it('offers no delete to a pull-only user, and the registry refuses one all the same', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'reader');
    await page.goto(`${berth.url}/#/r/team/app`);
    await page.getByRole('row', { name: /^latest/ }).waitFor();
    await expect(page.locator('.facts').textContent()).resolves.toContain('pull');
    expect(await page.getByRole('button', { name: /^Delete/ }).count()).toBe(0);
    // What a hand-made request from this session gets: 403 DENIED naming the account.
    const refusal = await page.evaluate(async () => {
      const session = JSON.parse(sessionStorage.getItem('berth.session') ?? '{}') as { refreshToken: string };
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: session.refreshToken,
        client_id: 'berth-ui',
        scope: 'repository:team/app:pull,delete',
      });
      const token = (
        (await (await fetch('/token', { method: 'POST', body: form })).json()) as { token: string }
      ).token;
      const res = await fetch('/v2/team/app/manifests/latest', {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${token}` },
      });
      return { status: res.status, body: await res.text() };
    });
    expect(refusal.status).toBe(403);
    expect(refusal.body).toContain('DENIED');
    expect(refusal.body).toContain('account reader may not delete repository team/app');
    await context.close();
  });

  it('shows usage and operations to an account with registry:catalog:*, and signs out', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'admin');
    await page.getByRole('link', { name: 'Usage and operations' }).click();
    await page.getByRole('heading', { name: 'Garbage collection' }).waitFor();
    await expect(page.locator('main').textContent()).resolves.toContain(
      TARGET === 'local' ? 'filesystem' : 's3',
    );
    await expect(page.locator('main').textContent()).resolves.toContain('Last run finished');
    await page.getByRole('link', { name: 'team/app' }).waitFor();
    await shot(page, 'operations');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('link', { name: 'Sign in' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('berth.session'))).toBeNull();
    await context.close();
  });

  it('passes the axe-core WCAG 2.1 AA checks on every main screen, in light and dark', async () => {
    for (const dark of [false, true]) {
      const { context, page } = await newPage({ dark });
      await page.goto(`${berth.url}/#/sign-in`);
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      expect(await accessibilityViolations(page), 'sign-in').toEqual([]);
      await signIn(page, 'dev');
      const screens: [string, string, string][] = [
        ['repositories', '/#/', 'team/app'],
        ['tags', '/#/r/team/app', 'latest'],
        ['index', '/#/r/team/app/m/latest', 'linux/arm64'],
      ];
      for (const [name, path, ready] of screens) {
        await page.goto(`${berth.url}${path}`);
        await page.getByRole('link', { name: ready }).first().waitFor();
        expect(await accessibilityViolations(page), `${name}${dark ? ' (dark)' : ''}`).toEqual([]);
      }
      await page.goto(`${berth.url}/#/r/team/app`);
      await page.getByRole('button', { name: 'Delete tag latest' }).click();
      await page
        .getByRole('dialog')
        .getByText(/Removes the tag/)
        .waitFor();
      expect(await accessibilityViolations(page), `delete dialog${dark ? ' (dark)' : ''}`).toEqual([]);
      await page.keyboard.press('Escape');
      await expect(page.getByRole('dialog').count()).resolves.toBe(0);
      const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      expect(background).toBe(dark ? 'rgb(13, 17, 23)' : 'rgb(255, 255, 255)');
      if (dark) await shot(page, 'tags-dark');
      await context.close();
    }
  });

  it('is usable from the keyboard alone', async () => {
    const { context, page } = await newPage();
    await page.goto(`${berth.url}/`);
    await page.getByRole('link', { name: 'public/tool' }).waitFor();
    // Tab from the top: the skip link first, then the header; Enter on a repository opens it.
    await page.keyboard.press('Tab');
    await expect(page.evaluate(() => document.activeElement?.textContent)).resolves.toBe('Skip to content');
    for (let i = 0; i < 20; i++) {
      await page.keyboard.press('Tab');
      if ((await page.evaluate(() => document.activeElement?.textContent)) === 'public/tool') break;
    }
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'public/tool' }).waitFor();
    await expect(page.evaluate(() => document.activeElement?.tagName)).resolves.toBe('H1');
    await context.close();
  });

  it('logged no script error and no CSP violation in any page', () => {
    expect(consoleProblems).toEqual([]);
  });
});
