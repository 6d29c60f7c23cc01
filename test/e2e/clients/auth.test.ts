// Token authentication with real clients: Berth started with an auth file made by the
// CLI (`berth users add`, `berth robots create`, `berth anonymous set`), then every client's own
// login command, push and pull with the credentials it stored, a pull-only robot refused a push
// with a message that reaches the user, and anonymous pulls of the public repositories only.
//
//   BERTH_E2E_SUITE=auth npx vitest run -c test/e2e/clients/vitest.config.ts
//
// The clients start with no credentials (BERTH_E2E_USER/PASSWORD are ignored here): each test logs
// in into a config file of its own. BERTH_E2E_START_CMD is honoured; the auth file reaches the
// server as BERTH_AUTH_FILE, which every `berth serve` reads.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ClientEnv, layoutImage, type LocalImage } from './harness/clients.ts';
import { smallLayer, verifyDirCopy, verifyLayout } from './harness/images.ts';
import { CommandError, note, reapLeftovers, run, setTranscript, type RunOptions } from './harness/proc.ts';
import { repoRoot, startBerth, type RegistryTarget } from './harness/registry.ts';
import { formatRequests, serverErrors } from './harness/requestlog.ts';

const ADMIN = 'e2e-admin';
const ROBOT = 'ci-reader';
/** What a refused login or an anonymous pull of a private repository looks like to a user. */
const UNAUTHORIZED =
  /unauthorized|incorrect username or password|authentication required|invalid username\/password/i;

const skipReason = process.env.BERTH_E2E_URL
  ? 'BERTH_E2E_URL: the auth suite starts its own Berth with an auth file'
  : process.env.BERTH_E2E_TARGET === 'reference'
    ? 'the reference registry does not speak Docker token auth'
    : undefined;

/** The failure text of a command that must fail. */
async function mustFail(what: string, fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof CommandError) return e.result.stderr + e.result.stdout;
    return e instanceof Error ? e.message : String(e);
  }
  throw new Error(`${what} succeeded but should have failed`);
}

/** `skopeo copy` of a registry image into a `dir:` copy, with the given auth file. */
function skopeoCopy(c: ClientEnv, authfile: string, ref: string, dir: string) {
  return c.skopeo([
    'copy',
    '-q',
    '--authfile',
    authfile,
    '--src-tls-verify=false',
    `docker://${ref}`,
    `dir:${dir}`,
  ]);
}

describe.skipIf(skipReason !== undefined)(
  'token authentication with real clients (berth --auth-file)',
  () => {
    const runId = randomBytes(4).toString('hex');
    const repo = (name: string) => `e2e-auth/${runId}/${name}`;
    const publicRepo = (name: string) => `public/${runId}/${name}`;
    const password = randomBytes(12).toString('hex');
    let workDir = '';
    let authFile = '';
    let robot: { name: string; secret: string; expiresAt: string };
    let target: RegistryTarget;
    let c: ClientEnv;
    let host = '';
    let mark = 0;
    /** A docker-style config.json holding the admin's credentials, for the harness's own checks. */
    let adminConfig = '';
    let seed: LocalImage;
    let seedRef = '';
    let publicRef = '';
    /** What each client printed when refused, for the report. */
    const messages: Record<string, string> = {};

    const berth = (args: string[], input?: string) =>
      run('npx', ['tsx', 'bin/berth.ts', ...args, '--auth-file', authFile], { cwd: repoRoot, input });

    /** A fresh DOCKER_CONFIG directory, optionally with a config.json holding credentials. */
    const dockerConfig = (label: string, creds?: { user: string; password: string }): string => {
      const dir = c.dir(label);
      if (creds) {
        const auth = Buffer.from(`${creds.user}:${creds.password}`).toString('base64');
        writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auths: { [host]: { auth } } }));
      }
      return dir;
    };
    const craneAs = (config: string, args: string[], opts: RunOptions = {}) =>
      c.crane(args, { ...opts, env: { DOCKER_CONFIG: config, ...opts.env } });
    const servedDigest = async (ref: string) =>
      (await craneAs(adminConfig, ['digest', '--insecure', ref])).stdout.trim();
    const remember = (key: string, text: string) => {
      const lines = text.trim().split('\n').filter(Boolean);
      const telling = lines.filter((l) => /denied|unauthori[sz]ed|invalid|incorrect|error/i.test(l));
      messages[key] = (telling.length ? telling : lines).slice(-2).join(' | ').slice(0, 400);
      note(`[message] ${key}: ${messages[key]}`);
    };
    /** A config.json (or a dir holding one), as the clients wrote it. */
    const readConfig = (file: string) =>
      JSON.parse(readFileSync(file.endsWith('.json') ? file : path.join(file, 'config.json'), 'utf8')) as {
        auths?: Record<string, { auth?: string; identitytoken?: string }>;
        credsStore?: string;
      };

    beforeAll(async () => {
      await reapLeftovers();
      const base = process.env.BERTH_E2E_WORKDIR ?? os.tmpdir();
      mkdirSync(base, { recursive: true });
      workDir = path.join(base, `berth-e2e-auth-${runId}`);
      mkdirSync(workDir);
      setTranscript(path.join(workDir, 'commands.log'));
      authFile = path.join(workDir, 'auth.json');
      await berth(
        ['users', 'add', ADMIN, '--password-stdin', '--grant', '*:pull,push,delete'],
        `${password}\n`,
      );
      robot = JSON.parse(
        (await berth(['robots', 'create', ROBOT, '--grant', '*:pull', '--expires', '1h'])).stdout,
      ) as typeof robot;
      expect(robot.name).toBe(ROBOT);
      expect(robot.secret.length).toBeGreaterThanOrEqual(16);
      await berth(['anonymous', 'set', 'public/*']);

      // Every `berth serve` reads BERTH_AUTH_FILE, also under a BERTH_E2E_START_CMD of the user's.
      const saved = process.env.BERTH_AUTH_FILE;
      process.env.BERTH_AUTH_FILE = authFile;
      try {
        target = { ...(await startBerth(workDir)), name: 'berth (--auth-file)', credentials: undefined };
      } finally {
        if (saved === undefined) delete process.env.BERTH_AUTH_FILE;
        else process.env.BERTH_AUTH_FILE = saved;
      }
      host = target.host;
      try {
        c = await ClientEnv.start(target, workDir);
      } catch (e) {
        await target.stop();
        throw e;
      }
      const missing = c.skipReason('docker', 'podman', 'skopeo', 'crane', 'oras');
      if (missing && process.env.BERTH_E2E_ALLOW_MISSING !== '1') throw new Error(missing);

      // The images every test pulls: one private, one public, pushed by the admin.
      adminConfig = dockerConfig('admin-config', { user: ADMIN, password });
      seed = layoutImage(c.dir('layout'), { layers: [smallLayer(`auth-seed-${runId}`)] });
      seedRef = c.ref(repo('seed'), 'v1');
      publicRef = c.ref(publicRepo('app'), 'v1');
      for (const ref of [seedRef, publicRef]) {
        await craneAs(adminConfig, ['push', '--insecure', seed.layout, ref]);
        expect(await servedDigest(ref)).toBe(seed.digest);
      }
      console.log(`[e2e] auth: registry ${target.url}, work dir ${workDir}`);
    }, 300_000);

    afterAll(async () => {
      console.log('[e2e] auth: what the clients printed when refused:\n' + JSON.stringify(messages, null, 2));
      await c?.stop();
      await target?.stop();
      setTranscript(undefined);
      if (workDir && process.env.BERTH_E2E_KEEP !== '1') rmSync(workDir, { recursive: true, force: true });
      else if (workDir) console.log(`[e2e] kept ${workDir}`);
    }, 120_000);

    beforeEach((t) => {
      mark = target?.requests?.mark() ?? 0;
      note(`\n=== ${t.task.name}`);
    });

    afterEach(async () => {
      if (!target?.requests) return;
      const errors = serverErrors(await target.requests.since(mark));
      expect(errors, `the registry answered 5xx during this test:\n${formatRequests(errors)}`).toEqual([]);
    });

    const skipUnless = (
      t: { skip: (why: string) => void },
      ...tools: Parameters<ClientEnv['skipReason']>
    ) => {
      const why = c.skipReason(...tools);
      if (why) t.skip(why);
    };

    it('docker login stores the credentials, push and pull work, logout removes them', async (t) => {
      skipUnless(t, 'docker', 'crane');
      const config = dockerConfig('docker-login');
      const env = { DOCKER_CONFIG: config };
      const wrong = await mustFail('docker login with a wrong password', () =>
        c.docker(['login', '-u', ADMIN, '--password-stdin', host], { env, input: 'not-the-password\n' }),
      );
      remember('docker login, wrong password', wrong);
      expect(wrong).toMatch(UNAUTHORIZED);

      const login = await c.docker(['login', '-u', ADMIN, '--password-stdin', host], {
        env,
        input: `${password}\n`,
      });
      expect(login.stdout + login.stderr).toMatch(/Login Succeeded/);
      const entry = readConfig(config).auths?.[host];
      expect(entry, `config.json after login: ${JSON.stringify(readConfig(config))}`).toBeDefined();
      // The token endpoint hands docker a refresh token (offline_token=true): docker keeps that
      // identity token, and the password is stored nowhere.
      expect(entry?.identitytoken, 'docker stores the refresh token as its identity token').toBeTruthy();
      const stored = readFileSync(path.join(config, 'config.json'), 'utf8');
      expect(stored).not.toContain(password);
      expect(stored).not.toContain(Buffer.from(`${ADMIN}:${password}`).toString('base64'));

      const ref = c.ref(repo('docker'), 'v1');
      await c.dockerBuild(ref, { 'docker.txt': `pushed by docker after login ${runId}\n` });
      const pushed = await c.pushLocal('docker', ref, ref, { env });
      expect(await servedDigest(ref)).toBe(pushed.digest);
      await c.forget('docker', ref);
      const pulled = await c.pull('docker', ref, { env });
      expect(pulled.digest).toBe(pushed.digest);

      await c.docker(['logout', host], { env });
      expect(
        readConfig(config).auths?.[host],
        'config.json still has the registry after logout',
      ).toBeUndefined();
      await c.forget('docker', ref);
      const refused = await mustFail('docker pull of a private repository after logout', () =>
        c.docker(['pull', ref], { env }),
      );
      remember('docker pull after logout', refused);
      expect(refused).toMatch(/unauthorized: authentication required/i);
    });

    it('podman login --authfile: a wrong password is refused, the right one lets podman push', async (t) => {
      skipUnless(t, 'podman', 'crane');
      const authfile = path.join(c.dir('podman-auth'), 'auth.json');
      const login = (secret: string) =>
        c.podman(
          ['login', '--authfile', authfile, '--tls-verify=false', '-u', ADMIN, '--password-stdin', host],
          { input: `${secret}\n` },
        );
      const wrong = await mustFail('podman login with a wrong password', () => login('not-the-password'));
      remember('podman login, wrong password', wrong);
      expect(wrong).toMatch(UNAUTHORIZED);
      await login(password);
      expect(readConfig(authfile).auths?.[host]).toBeDefined();

      const local = await c.podmanBuild(`localhost/auth-podman-${runId}`, {
        'podman.txt': `pushed by podman after login ${runId}\n`,
      });
      const ref = c.ref(repo('podman'), 'v1');
      const digestFile = path.join(c.dir('podman-digest'), 'digest');
      await c.podman([
        'push',
        '--authfile',
        authfile,
        '--tls-verify=false',
        '--digestfile',
        digestFile,
        local,
        `docker://${ref}`,
      ]);
      expect(await servedDigest(ref)).toBe(readFileSync(digestFile, 'utf8').trim());
    });

    it('skopeo login --authfile: a wrong password is refused, the right one lets skopeo pull', async (t) => {
      skipUnless(t, 'skopeo');
      const authfile = path.join(c.dir('skopeo-auth'), 'auth.json');
      const login = (secret: string) =>
        c.skopeo(
          ['login', '--authfile', authfile, '--tls-verify=false', '-u', ADMIN, '--password-stdin', host],
          { input: `${secret}\n` },
        );
      const wrong = await mustFail('skopeo login with a wrong password', () => login('not-the-password'));
      remember('skopeo login, wrong password', wrong);
      expect(wrong).toMatch(UNAUTHORIZED);
      await login(password);
      const dir = c.dir('skopeo-pull');
      await skopeoCopy(c, authfile, seedRef, dir);
      expect(verifyDirCopy(dir).digest).toBe(seed.digest);
    });

    it('crane auth login: stores what it is given; a wrong password fails at the first request', async (t) => {
      skipUnless(t, 'crane');
      // crane v0.22 `auth login` writes the credentials without asking the registry (cmd/crane/cmd/auth.go):
      // a wrong password is refused by the first command that uses it.
      const config = dockerConfig('crane-login');
      const login = (secret: string) =>
        craneAs(config, ['auth', 'login', host, '-u', ADMIN, '--password-stdin'], { input: `${secret}\n` });
      await login('not-the-password');
      const wrong = await mustFail('crane pull with a wrong password', () =>
        craneAs(config, ['pull', '--insecure', '--format', 'oci', seedRef, c.dir('crane-wrong')]),
      );
      remember('crane pull after auth login with a wrong password', wrong);
      expect(wrong).toMatch(UNAUTHORIZED);

      await login(password);
      expect(readConfig(config).auths?.[host]).toBeDefined();
      const img = layoutImage(c.dir('layout'), { layers: [smallLayer(`auth-crane-${runId}`)] });
      const ref = c.ref(repo('crane'), 'v1');
      const pushed = await craneAs(config, ['push', '--insecure', img.layout, ref]);
      expect(pushed.stdout).toContain(img.digest);
      const dir = c.dir('crane-pull');
      await craneAs(config, ['pull', '--insecure', '--format', 'oci', ref, dir]);
      expect(verifyLayout(dir).digest).toBe(img.digest);
    });

    it('oras login --plain-http: a wrong password is refused, the right one lets oras push and pull', async (t) => {
      skipUnless(t, 'oras', 'crane');
      const registryConfig = path.join(c.dir('oras-auth'), 'config.json');
      const login = (secret: string) =>
        c.oras(
          [
            'login',
            '--plain-http',
            '--registry-config',
            registryConfig,
            '-u',
            ADMIN,
            '--password-stdin',
            host,
          ],
          { input: `${secret}\n` },
        );
      const wrong = await mustFail('oras login with a wrong password', () => login('not-the-password'));
      remember('oras login, wrong password', wrong);
      expect(wrong).toMatch(UNAUTHORIZED);
      await login(password);
      expect(readConfig(registryConfig).auths?.[host]).toBeDefined();

      const work = c.dir('oras-files');
      const content = `an artifact pushed by oras after login ${runId}\n`;
      writeFileSync(path.join(work, 'note.txt'), content);
      const ref = c.ref(repo('oras'), 'v1');
      const pushed = await c.oras(
        ['push', '--no-tty', '--plain-http', '--registry-config', registryConfig, ref, 'note.txt'],
        { cwd: work },
      );
      const digest = /Digest:\s*(sha256:[a-f0-9]{64})/.exec(pushed.stdout)?.[1];
      expect(digest, pushed.stdout).toBeDefined();
      expect(await servedDigest(ref)).toBe(digest);
      const out = c.dir('oras-pull');
      await c.oras(['pull', '--no-tty', '--plain-http', '--registry-config', registryConfig, '-o', out, ref]);
      expect(readFileSync(path.join(out, 'note.txt'), 'utf8')).toBe(content);
    });

    it('a pull-only robot pulls, and docker and crane pushes are refused with "denied"', async (t) => {
      skipUnless(t, 'docker', 'crane');
      const robotDenied = new RegExp(`denied.*account ${ROBOT} may not push repository`, 'is');

      // docker: login with the generated secret, pull, push refused.
      const config = dockerConfig('robot-docker');
      const env = { DOCKER_CONFIG: config };
      await c.docker(['login', '-u', ROBOT, '--password-stdin', host], { env, input: `${robot.secret}\n` });
      await c.forget('docker', seedRef);
      expect((await c.pull('docker', seedRef, { env })).digest).toBe(seed.digest);
      const denied = c.ref(repo('robot-docker'), 'v1');
      await c.docker(['tag', seedRef, denied]);
      const dockerRefused = await mustFail('docker push by a pull-only robot', () =>
        c.docker(['push', denied], { env }),
      );
      remember('docker push by a pull-only robot', dockerRefused);
      expect(dockerRefused).toMatch(robotDenied);

      // crane: the same credentials through crane auth login.
      const craneConfig = dockerConfig('robot-crane');
      await craneAs(craneConfig, ['auth', 'login', host, '-u', ROBOT, '--password-stdin'], {
        input: `${robot.secret}\n`,
      });
      const dir = c.dir('robot-crane-pull');
      await craneAs(craneConfig, ['pull', '--insecure', '--format', 'oci', seedRef, dir]);
      expect(verifyLayout(dir).digest).toBe(seed.digest);
      const img = layoutImage(c.dir('layout'), { layers: [smallLayer(`auth-robot-${runId}`)] });
      const craneRefused = await mustFail('crane push by a pull-only robot', () =>
        craneAs(craneConfig, ['push', '--insecure', img.layout, c.ref(repo('robot-crane'), 'v1')]),
      );
      remember('crane push by a pull-only robot', craneRefused);
      expect(craneRefused).toMatch(/DENIED/);
      expect(craneRefused).toMatch(robotDenied);
    });

    it('a revoked robot and an expired robot are refused at their next pull (docker, crane)', async (t) => {
      skipUnless(t, 'docker', 'crane');
      const revoked = JSON.parse(
        (await berth(['robots', 'create', 'ci-revoked', '--grant', '*:pull', '--expires', '1h'])).stdout,
      ) as typeof robot;
      const expiring = JSON.parse(
        (await berth(['robots', 'create', 'ci-expiring', '--grant', '*:pull', '--expires', '20s'])).stdout,
      ) as typeof robot;

      const config = dockerConfig('robot-revoked-docker');
      const env = { DOCKER_CONFIG: config };
      await c.docker(['login', '-u', revoked.name, '--password-stdin', host], {
        env,
        input: `${revoked.secret}\n`,
      });
      await c.forget('docker', seedRef);
      expect((await c.pull('docker', seedRef, { env })).digest).toBe(seed.digest);
      const craneConfig = dockerConfig('robot-expiring-crane', {
        user: expiring.name,
        password: expiring.secret,
      });
      await craneAs(craneConfig, [
        'pull',
        '--insecure',
        '--format',
        'oci',
        seedRef,
        c.dir('robot-expiring-1'),
      ]);

      await berth(['robots', 'revoke', revoked.name]);
      // The server re-reads the auth file at most every 2 s.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      await c.forget('docker', seedRef);
      const dockerRefused = await mustFail('docker pull by a revoked robot', () =>
        c.docker(['pull', seedRef], { env }),
      );
      remember('docker pull by a revoked robot', dockerRefused);
      expect(dockerRefused).toMatch(UNAUTHORIZED);

      const wait = Date.parse(expiring.expiresAt) - Date.now() + 500;
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const craneRefused = await mustFail('crane pull by an expired robot', () =>
        craneAs(craneConfig, ['pull', '--insecure', '--format', 'oci', seedRef, c.dir('robot-expiring-2')]),
      );
      remember('crane pull by an expired robot', craneRefused);
      expect(craneRefused).toMatch(UNAUTHORIZED);
    });

    it('anonymous: crane and skopeo pull public/* without credentials, private repositories are refused', async (t) => {
      skipUnless(t, 'crane', 'skopeo');
      const none = dockerConfig('anonymous');
      writeFileSync(path.join(none, 'config.json'), '{}');
      const authfile = path.join(none, 'config.json');

      const craneDir = c.dir('anon-crane');
      await craneAs(none, ['pull', '--insecure', '--format', 'oci', publicRef, craneDir]);
      expect(verifyLayout(craneDir).digest).toBe(seed.digest);
      const skopeoDir = c.dir('anon-skopeo');
      await skopeoCopy(c, authfile, publicRef, skopeoDir);
      expect(verifyDirCopy(skopeoDir).digest).toBe(seed.digest);

      const craneRefused = await mustFail('anonymous crane pull of a private repository', () =>
        craneAs(none, ['pull', '--insecure', '--format', 'oci', seedRef, c.dir('anon-crane-private')]),
      );
      remember('anonymous crane pull of a private repository', craneRefused);
      expect(craneRefused).toMatch(/UNAUTHORIZED/);
      const skopeoRefused = await mustFail('anonymous skopeo copy of a private repository', () =>
        skopeoCopy(c, authfile, seedRef, c.dir('anon-skopeo-private')),
      );
      remember('anonymous skopeo copy of a private repository', skopeoRefused);
      expect(skopeoRefused).toMatch(UNAUTHORIZED);
    });
  },
);
