// The registry under test: Berth started the way a user starts it (`npm start`), the reference
// registry (Debian's docker-registry, for validating the harness itself), or any registry already
// running at BERTH_E2E_URL. Everything the scenarios need is in RegistryTarget, so the Lambda, S3
// and auth issues only have to produce one of these.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, GiveUp, have, run, startDaemon, waitFor, type Daemon } from './proc.ts';
import { RequestLog } from './requestlog.ts';

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryTarget {
  /** Shown in test names and the report. */
  name: string;
  /** Base URL, e.g. http://127.0.0.1:5000 (no trailing slash, no path). */
  url: string;
  /** host:port as written in image references. */
  host: string;
  credentials?: Credentials;
  /**
   * Headers for the harness's own raw HTTP checks (HEAD of a blob after a killed push, the
   * referrers probe) when Basic credentials are not enough, e.g. a Bearer token for `path`.
   */
  authHeaders?: (path: string) => Promise<Record<string, string>>;
  /** The registry's own request log, when the harness can read it; counting assertions need it. */
  requests?: RequestLog;
  /** Where the server's output goes (for error messages). */
  logFile?: string;
  stop(): Promise<void>;
}

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');

function hostOf(url: string): string {
  const u = new URL(url);
  if (u.protocol !== 'http:') {
    // TLS targets need certificates in every client's trust store; no scenario needs that yet.
    throw new Error(`only http:// registries are supported by the client harness, got ${url}`);
  }
  if (u.pathname !== '/' && u.pathname !== '') {
    throw new Error(`registry URL must not have a path (clients only speak /v2/ at the root): ${url}`);
  }
  return u.host;
}

async function waitForV2(url: string, daemon?: Daemon, timeoutMs = 90_000): Promise<void> {
  let exited: number | null | undefined;
  void daemon?.exited.then((c) => (exited = c));
  await waitFor(
    `${url}/v2/ to answer`,
    async () => {
      if (exited !== undefined) {
        throw new GiveUp(`${daemon?.name} exited with ${exited} before answering:\n${daemon?.logTail()}`);
      }
      const r = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) });
      return r.status === 200 || r.status === 401;
    },
    timeoutMs,
  ).catch((e: unknown) => {
    if (e instanceof GiveUp) throw e;
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n${daemon ? daemon.logTail() : ''}`, {
      cause: e,
    });
  });
}

function credentialsFromEnv(): Credentials | undefined {
  const username = process.env.BERTH_E2E_USER;
  const password = process.env.BERTH_E2E_PASSWORD;
  return username && password ? { username, password } : undefined;
}

export interface StartBerthOptions {
  /** The start command when BERTH_E2E_START_CMD is not set (same placeholders). */
  command?: string;
  /** How to read the server's output as a request log (default: one JSON line per request). */
  requestLog?: (file: string) => RequestLog;
}

/**
 * Berth as a user starts it. BERTH_E2E_START_CMD overrides the command (a shell command line where
 * {port} and {dataDir} are replaced); the default is `npm start -- --port {port} --data-dir {dataDir}`
 * run from the repository root. Its stdout+stderr go to <workDir>/registry.log, which is also the
 * request log (one JSON line per request with method, path, status).
 */
export async function startBerth(workDir: string, opts: StartBerthOptions = {}): Promise<RegistryTarget> {
  const port = await freePort();
  const dataDir = path.join(workDir, 'registry-data');
  mkdirSync(dataDir, { recursive: true });
  const template =
    process.env.BERTH_E2E_START_CMD ?? opts.command ?? 'npm start -- --port {port} --data-dir {dataDir}';
  const cmd = template.replaceAll('{port}', String(port)).replaceAll('{dataDir}', dataDir);
  const logFile = path.join(workDir, 'registry.log');
  const daemon = startDaemon('berth', 'sh', ['-c', cmd], {
    cwd: repoRoot,
    logFile,
    env: { ...process.env, NO_COLOR: '1' },
    group: true,
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForV2(url, daemon);
  } catch (e) {
    await daemon.stop(5_000);
    throw e;
  }
  return {
    name: 'berth',
    url,
    host: hostOf(url),
    credentials: credentialsFromEnv(),
    requests: opts.requestLog ? opts.requestLog(logFile) : new RequestLog(logFile),
    logFile,
    // npm -> sh -> node: the whole process group that we created is stopped.
    stop: () => daemon.stop(),
  };
}

/**
 * The reference registry (Debian's docker-registry, CNCF Distribution 2.8) on a free port with
 * filesystem storage under workDir and deletes enabled. Used to validate the harness. With
 * BERTH_E2E_USER/BERTH_E2E_PASSWORD it requires HTTP Basic credentials (htpasswd, from apt
 * apache2-utils), which exercises every client's credentials path.
 */
export async function startReference(workDir: string): Promise<RegistryTarget> {
  const bin = process.env.BERTH_E2E_REFERENCE_BIN ?? 'docker-registry';
  if (!have(bin)) throw new Error(`${bin} not found: run test/e2e/setup-clients.sh (apt docker-registry)`);
  const port = await freePort();
  const dir = path.join(workDir, 'reference');
  mkdirSync(dir, { recursive: true });
  const credentials = credentialsFromEnv();
  const auth: string[] = [];
  if (credentials) {
    const htpasswd = path.join(dir, 'htpasswd');
    const r = await run('htpasswd', ['-Bbn', credentials.username, credentials.password]);
    writeFileSync(htpasswd, r.stdout);
    auth.push('auth:', '  htpasswd:', '    realm: berth-e2e', `    path: ${htpasswd}`);
  }
  const config = path.join(dir, 'config.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: info',
      '  formatter: json',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...auth,
      '',
    ].join('\n'),
  );
  const logFile = path.join(workDir, 'registry.log');
  const daemon = startDaemon('docker-registry', bin, ['serve', config], { logFile });
  const url = `http://127.0.0.1:${port}`;
  await waitForV2(url, daemon, 30_000);
  return {
    name: 'reference',
    url,
    host: hostOf(url),
    credentials,
    requests: new RequestLog(logFile),
    logFile,
    stop: () => daemon.stop(),
  };
}

/** A registry someone else started: BERTH_E2E_URL, optionally BERTH_E2E_LOG (its request log). */
export async function externalTarget(url: string): Promise<RegistryTarget> {
  const base = url.replace(/\/+$/, '');
  await waitForV2(base, undefined, 10_000);
  const log = process.env.BERTH_E2E_LOG;
  return {
    name: process.env.BERTH_E2E_NAME ?? 'external',
    url: base,
    host: hostOf(base),
    credentials: credentialsFromEnv(),
    requests: log ? new RequestLog(log) : undefined,
    logFile: log,
    stop: async () => {},
  };
}

/** BERTH_E2E_URL, else BERTH_E2E_TARGET=reference, else Berth via npm start. */
export function targetFromEnv(workDir: string): Promise<RegistryTarget> {
  const url = process.env.BERTH_E2E_URL;
  if (url) return externalTarget(url);
  if (process.env.BERTH_E2E_TARGET === 'reference') return startReference(workDir);
  return startBerth(workDir);
}
