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
