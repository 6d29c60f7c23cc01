import { isIP } from 'node:net';

// Kept apart from the certificate code, so that the configuration (also bundled for Lambda) stays small.

/** Host names and addresses a certificate can name: IPv4/IPv6 addresses, DNS names, `*.` wildcards. */
export function checkTlsHost(host: string): string | undefined {
  if (isIP(host)) return undefined;
  const label = '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
  const name = new RegExp(`^(\\*\\.)?${label}(\\.${label})*$`);
  if (host.length <= 253 && name.test(host)) return undefined;
  return `"${host}" is neither an IP address nor a DNS name`;
}

/**
 * The names a self-signed certificate covers: `--tls-hosts` when given, else loopback (`localhost`,
 * `127.0.0.1`, `::1`) and the listening address when it is a specific one (not `0.0.0.0` or `::`).
 */
export function selfSignedHosts(tlsHosts: string | undefined, listenHost: string): string[] {
  const given = (tlsHosts ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
  if (given.length > 0) return [...new Set(given)];
  const hosts = ['localhost', '127.0.0.1', '::1'];
  if (listenHost !== '0.0.0.0' && listenHost !== '::' && !hosts.includes(listenHost)) hosts.push(listenHost);
  return hosts;
}
