import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname as machineName } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import type * as X509 from '@peculiar/x509';

/**
 * @peculiar/x509 (and the reflect-metadata polyfill it needs first), loaded by ensureSelfSigned: a
 * server without --tls-self-signed never loads them (a few MiB of an idle server's memory).
 */
let x509: typeof X509;
async function loadX509(): Promise<void> {
  await import('reflect-metadata');
  x509 = await import('@peculiar/x509');
}

/** ECDSA P-256 with SHA-256: accepted by every client (Go's crypto/x509, OpenSSL, NSS), small and fast. */
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** The CA is what users install, so it lives long: reinstalling it is the chore this feature avoids. */
export const CA_VALIDITY_DAYS = 3650;
/** Below Apple's 825-day ceiling for TLS server certificates; renewed automatically anyway. */
export const SERVER_VALIDITY_DAYS = 397;
/** A certificate with less than this left is replaced at start. */
export const RENEW_BEFORE_DAYS = 30;

export interface SelfSignedFiles {
  readonly dir: string;
  /** The CA certificate clients must trust (install it, never the key). */
  readonly caCertFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** What this start did: reused both, issued a new server certificate, or made a new CA too. */
  readonly action: 'reused' | 'new-certificate' | 'new-ca';
}

/**
 * A local CA and a server certificate for `hosts`, kept in `dir` (`ca.crt`, `ca.key`, `server.crt`,
 * `server.key`) and reused across restarts. The server certificate is issued again when the host
 * list changes, when it nears expiry, or when it no longer matches the CA or its key; the CA only
 * when it is missing, unreadable or near expiry, so that a CA once installed keeps working.
 */
export async function ensureSelfSigned(
  dir: string,
  hosts: readonly string[],
  now: Date = new Date(),
): Promise<SelfSignedFiles> {
  await loadX509();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    cert: join(dir, 'server.crt'),
    key: join(dir, 'server.key'),
  };
  const result = (action: SelfSignedFiles['action']): SelfSignedFiles => ({
    dir,
    caCertFile: files.caCert,
    certFile: files.cert,
    keyFile: files.key,
    action,
  });
  const renewBy = new Date(now.getTime() + RENEW_BEFORE_DAYS * DAY_MS);

  let ca = await readCa(files.caCert, files.caKey, renewBy);
  let action: SelfSignedFiles['action'] = 'reused';
  if (!ca) {
    ca = await issueCa(now);
    await writeSecret(files.caKey, ca.keyPem);
    await writePublic(files.caCert, ca.certPem);
    action = 'new-ca';
  }
  if (action === 'reused' && (await serverCertStillFits(files.cert, files.key, ca.cert, hosts, renewBy))) {
    return result('reused');
  }
  const server = await issueServerCert(ca, hosts, now);
  await writeSecret(files.key, server.keyPem);
  await writePublic(files.cert, server.certPem);
  return result(action === 'new-ca' ? 'new-ca' : 'new-certificate');
}

interface Ca {
  readonly cert: X509Certificate;
  readonly certPem: string;
  readonly keyPem: string;
  readonly subject: string;
  readonly signingKey: webcrypto.CryptoKey;
  readonly peculiar: X509.X509Certificate;
}

async function readCa(certFile: string, keyFile: string, renewBy: Date): Promise<Ca | undefined> {
  try {
    const [certPem, keyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    const cert = new X509Certificate(certPem);
    if (!cert.ca || new Date(cert.validTo) <= renewBy) return undefined;
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return undefined;
    const signingKey = await importSigningKey(keyPem);
    const peculiar = new x509.X509Certificate(certPem);
    return { cert, certPem, keyPem, subject: peculiar.subject, signingKey, peculiar };
  } catch {
    return undefined;
  }
}

async function serverCertStillFits(
  certFile: string,
  keyFile: string,
  ca: X509Certificate,
  hosts: readonly string[],
  renewBy: Date,
): Promise<boolean> {
  try {
    const [certPem, keyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    const cert = new X509Certificate(certPem);
    if (new Date(cert.validTo) <= renewBy) return false;
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return false;
    const names = (cert.subjectAltName ?? '').split(', ').filter((n) => n !== '');
    if (names.length !== new Set(hosts).size) return false;
    return hosts.every((h) => {
      if (isIP(h)) return cert.checkIP(h) !== undefined;
      // A wildcard entry is checked through a name it must match.
      if (h.startsWith('*.')) return cert.checkHost(`berth-check${h.slice(1)}`) !== undefined;
      return cert.checkHost(h, { wildcards: false }) !== undefined;
    });
  } catch {
    return false;
  }
}

async function issueCa(now: Date): Promise<Ca> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const subject = `CN=Berth local CA (${commonNameSafe(machineName())} ${now.toISOString().slice(0, 10)})`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      // pathLen 0: this CA signs server certificates, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  const keyPem = await exportKeyPem(keys.privateKey);
  return {
    cert: new X509Certificate(certPem),
    certPem,
    keyPem,
    subject: cert.subject,
    signingKey: keys.privateKey,
    peculiar: cert,
  };
}

async function issueServerCert(
  ca: Ca,
  hosts: readonly string[],
  now: Date,
): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const unique = [...new Set(hosts)];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${commonNameSafe(unique[0] ?? 'localhost')}`,
    issuer: ca.subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(
      Math.min(now.getTime() + SERVER_VALIDITY_DAYS * DAY_MS, new Date(ca.cert.validTo).getTime()),
    ),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: ca.signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(
        unique.map((h) => ({ type: isIP(h) ? ('ip' as const) : ('dns' as const), value: h })),
        false,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.peculiar),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

/** 16 random bytes, positive (RFC 5280 wants a positive serial; Go refuses negative ones). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function commonNameSafe(value: string): string {
  return value.replace(/[^A-Za-z0-9.:*-]/g, '-').slice(0, 48);
}

async function exportKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

async function importSigningKey(pem: string): Promise<webcrypto.CryptoKey> {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
}

/** Private keys: owner-only, written whole (temp file, then rename), so a crash never leaves half a key. */
async function writeSecret(file: string, content: string): Promise<void> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, content, { mode: 0o600, flag: 'wx' });
  await rename(temp, file);
}

async function writePublic(file: string, content: string): Promise<void> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, content, { mode: 0o644, flag: 'wx' });
  await rename(temp, file);
}
