import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** What the client logs in to a remote registry with. Held in memory only, never written. */
export type Credentials =
  | { readonly kind: 'password'; readonly username: string; readonly password: string }
  | { readonly kind: 'identity-token'; readonly token: string };

interface DockerConfig {
  auths?: Record<string, { auth?: string; identitytoken?: string; username?: string; password?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/**
 * The user's credentials for `host` (`registry.example.com` or `host:port`) from the docker
 * configuration, as docker itself finds them: a per-registry credential helper (`credHelpers`), an
 * `auths` entry (`auth` = base64 user:password, or an `identitytoken`), or the default credential
 * store (`credsStore`). Helpers are run as `docker-credential-<name> get`.
 */
export async function dockerCredentials(
  host: string,
  configDir = process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'),
): Promise<Credentials | undefined> {
  let config: DockerConfig;
  try {
    config = JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8')) as DockerConfig;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${join(configDir, 'config.json')}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const helper = config.credHelpers?.[host];
  if (helper) return fromHelper(helper, host);
  const entry = Object.entries(config.auths ?? {}).find(([key]) => hostOf(key) === host)?.[1];
  if (entry?.identitytoken) return { kind: 'identity-token', token: entry.identitytoken };
  if (entry?.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      return { kind: 'password', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
  }
  if (entry?.username && entry.password) {
    return { kind: 'password', username: entry.username, password: entry.password };
  }
  if (config.credsStore) return fromHelper(config.credsStore, host);
  return undefined;
}

/** `https://host/v1/`, `http://host`, `host` -> `host`. */
function hostOf(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
}

/** Runs `docker-credential-<name> get` with the server on stdin; answers undefined when it has none. */
async function fromHelper(name: string, host: string): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`invalid credential helper name ${name}`);
  const program = `docker-credential-${name}`;
  const output = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', (err) =>
      reject(new Error(`credential helper ${program} could not run: ${err.message}`)),
    );
    child.on('close', (code) => resolve({ code, stdout }));
    child.stdin.end(host);
  });
  // Helpers answer "credentials not found in native keychain" with a non-zero exit.
  if (output.code !== 0) return undefined;
  let parsed: { Username?: string; Secret?: string };
  try {
    parsed = JSON.parse(output.stdout) as { Username?: string; Secret?: string };
  } catch {
    throw new Error(`credential helper ${program} answered something that is not JSON`);
  }
  if (!parsed.Secret) return undefined;
  if (parsed.Username === '<token>') return { kind: 'identity-token', token: parsed.Secret };
  return { kind: 'password', username: parsed.Username ?? '', password: parsed.Secret };
}
