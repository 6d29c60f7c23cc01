import { X509Certificate, createPrivateKey } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import { readFile as readFileAsync } from 'node:fs/promises';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import type { Server as TlsServer } from 'node:tls';
import { describeError, type Logger } from '../logging/logger.ts';
import { ensureSelfSigned } from './self-signed.ts';

/** The certificate and key a TLS server was started with, and where they came from. */
export interface TlsSetup {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  /**
   * With --tls-self-signed: the CA clients must trust, the names the certificate covers, and the
   * directory that holds them.
   */
  readonly selfSigned?: {
    readonly caCertFile: string;
    readonly hosts: readonly string[];
    readonly dir: string;
  };
}

/** What the server is told to serve HTTPS with; neither part: plain HTTP. */
export interface TlsOptions {
  /** `--tls-self-signed`: a certificate from a local CA kept in `dir`, for these names. */
  readonly selfSigned?: { readonly dir: string; readonly hosts: readonly string[] };
  /** `--tls-cert` and `--tls-key`: certificate (chain) and key files, re-read when they change. */
  readonly files?: { readonly cert: string; readonly key: string };
}

/** How often a self-signed certificate is checked for renewal while the server runs. */
const RENEW_CHECK_MS = 24 * 3600 * 1000;
/** How often certificate files are polled for changes (stat polling also sees renames and symlink swaps). */
const WATCH_INTERVAL_MS = 1000;

/**
 * The names a self-signed certificate covers: `--tls-hosts` when given, else loopback (`localhost`,
 * `127.0.0.1`, `::1`) and the listening address when it is a specific one (not `0.0.0.0` or `::`).
 */
export function selfSignedHosts(given: readonly string[] | undefined, listenHost: string): string[] {
  if (given && given.length > 0) return [...new Set(given)];
  const hosts = ['localhost', '127.0.0.1', '::1'];
  if (listenHost !== '0.0.0.0' && listenHost !== '::' && !hosts.includes(listenHost)) hosts.push(listenHost);
  return hosts;
}

/** The TLS setup the options ask for, or undefined for plain HTTP. */
export async function prepareTls(options: TlsOptions, logger: Logger): Promise<TlsSetup | undefined> {
  if (options.selfSigned) {
    const { hosts } = options.selfSigned;
    // Absolute, so that the printed commands work from any directory.
    const dir = resolve(options.selfSigned.dir);
    const files = await ensureSelfSigned(dir, hosts);
    logger.info('self-signed TLS certificate', {
      action: files.action,
      caCertFile: files.caCertFile,
      certFile: files.certFile,
      hosts,
    });
    const pair = await readKeyPair(files.certFile, files.keyFile);
    return { ...pair, selfSigned: { caCertFile: files.caCertFile, hosts, dir } };
  }
  if (options.files) return readKeyPair(options.files.cert, options.files.key);
  return undefined;
}

/** Reads and checks a certificate chain and its key; the message names the file that is wrong. */
export async function readKeyPair(certFile: string, keyFile: string): Promise<TlsSetup> {
  const read = async (file: string, flag: string) => {
    try {
      return await readFileAsync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : 'unreadable';
      throw new Error(`${flag} ${file}: ${why}`, { cause: err });
    }
  };
  const [cert, key] = await Promise.all([read(certFile, '--tls-cert'), read(keyFile, '--tls-key')]);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw new Error(`--tls-cert ${certFile}: not a PEM certificate`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new Error(`--tls-key ${keyFile}: not a PEM private key (or it is encrypted)`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new Error(`--tls-key ${keyFile} is not the key of the certificate in ${certFile}`);
  }
  return { certFile, keyFile, cert, key };
}

/**
 * Keeps a running TLS server's certificate current: the files are polled and, once both read as a
 * matching pair, become the context of new connections (connections already open keep theirs). A
 * self-signed setup is also renewed here when it nears expiry. Returns the function that stops it.
 */
export function keepCertificateCurrent(server: TlsServer, setup: TlsSetup, logger: Logger): () => void {
  let current = `${setup.cert.toString('base64')}|${setup.key.toString('base64')}`;
  let pending: NodeJS.Timeout | undefined;
  const reload = () => {
    pending = undefined;
    readKeyPair(setup.certFile, setup.keyFile).then(
      (next) => {
        const id = `${next.cert.toString('base64')}|${next.key.toString('base64')}`;
        if (id === current) return;
        server.setSecureContext({ cert: next.cert, key: next.key });
        current = id;
        const leaf = new X509Certificate(next.cert);
        logger.info('TLS certificate reloaded', {
          certFile: setup.certFile,
          subject: leaf.subject,
          validTo: new Date(leaf.validTo).toISOString(),
        });
      },
      // Half-written or mismatched files (a renewal in progress): keep serving the old pair.
      (err: unknown) =>
        logger.warn('TLS certificate not reloaded; serving the previous one', describeError(err)),
    );
  };
  const changed = () => {
    clearTimeout(pending);
    pending = setTimeout(reload, 200);
  };
  watchFile(setup.certFile, { interval: WATCH_INTERVAL_MS, persistent: false }, changed);
  watchFile(setup.keyFile, { interval: WATCH_INTERVAL_MS, persistent: false }, changed);

  const renewal = setup.selfSigned
    ? setInterval(() => {
        ensureSelfSigned(setup.selfSigned!.dir, setup.selfSigned!.hosts).then(
          (files) => {
            if (files.action !== 'reused') changed();
          },
          (err: unknown) => logger.warn('renewing the self-signed certificate failed', describeError(err)),
        );
      }, RENEW_CHECK_MS)
    : undefined;
  renewal?.unref();

  return () => {
    clearTimeout(pending);
    clearInterval(renewal);
    unwatchFile(setup.certFile, changed);
    unwatchFile(setup.keyFile, changed);
  };
}

/**
 * The one-line commands that make clients trust the self-signed CA for each `host:port` they may
 * use (IPv6 literals and wildcard names are left out: clients name such registries rarely, and a
 * directory cannot be named after a wildcard).
 */
export function trustInstructions(caCertFile: string, hosts: readonly string[], port: number): string {
  const names = hosts.filter((h) => isIP(h) !== 6 && !h.startsWith('*.')).map((h) => `${h}:${port}`);
  const install = (root: string) =>
    `sudo sh -c 'for h in ${names.join(' ')}; do mkdir -p ${root}/$h && cp ${shellQuote(caCertFile)} ${root}/$h/ca.crt; done'`;
  // containerd talks plain HTTP to loopback names unless a hosts.toml names an https server.
  const dir = '/etc/containerd/certs.d/$h';
  const hostsToml = `printf "server = \\"https://%s\\"\\n[host.\\"https://%s\\"]\\n  ca = \\"${dir}/ca.crt\\"\\n" $h $h > ${dir}/hosts.toml`;
  const installContainerd = `sudo sh -c 'for h in ${names.join(' ')}; do mkdir -p ${dir} && cp ${shellQuote(caCertFile)} ${dir}/ca.crt && ${hostsToml}; done'`;
  const line = (label: string, command: string) => `  ${label.padEnd(42)}${command}`;
  return [
    `Berth serves HTTPS with a certificate from its own CA: ${caCertFile}`,
    'Trust that CA once per machine (no insecure-registries entry is needed):',
    line('docker (read per connection, no restart):', install('/etc/docker/certs.d')),
    line('podman, skopeo, buildah:', install('/etc/containers/certs.d')),
    line('containerd (nerdctl, ctr --hosts-dir):', installContainerd),
    line(
      'crane, oras, regctl, curl:',
      `SSL_CERT_FILE=${shellQuote(caCertFile)} <command>, or add it to the system store`,
    ),
    '',
  ].join('\n');
}

/** Quoted for `sh -c '...'`: double quotes inside the single-quoted script. */
function shellQuote(path: string): string {
  if (/^[A-Za-z0-9_./+-]+$/.test(path)) return path;
  return `"${path.replace(/(["$`\\])/g, '\\$1').replace(/'/g, `'\\''`)}"`;
}
