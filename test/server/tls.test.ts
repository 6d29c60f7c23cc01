import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, statSync } from 'node:fs';
import https from 'node:https';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addUser } from '../../lib/auth/admin.ts';
import { parseConfig, type ConfigInput } from '../../lib/config/config.ts';
import { ensureSelfSigned } from '../../lib/server/self-signed.ts';
import { readKeyPair } from '../../lib/server/tls.ts';
import { berthProcesses } from './berth-process.ts';

const { berth, tempDir } = berthProcesses('berth-tls-');

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  peer: X509Certificate;
  reusedSocket: boolean;
  alpn: string | false | null;
}

/** One HTTPS request that trusts only `ca` (as a client with the CA installed would). */
function get(
  url: string,
  ca: Buffer | undefined,
  options: { agent?: https.Agent; headers?: Record<string, string>; servername?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const requestOptions: https.RequestOptions & ConnectionOptions = {
      ca,
      agent: options.agent ?? false,
      headers: options.headers,
      servername: options.servername,
      // Offered as HTTP/2-capable clients (curl, Go) offer it: the server must pick http/1.1.
      ALPNProtocols: ['h2', 'http/1.1'],
    };
    const req = https.get(url, requestOptions, (res) => {
      const socket = res.socket as TLSSocket;
      const peer = socket.getPeerX509Certificate()!;
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          body,
          peer,
          reusedSocket: req.reusedSocket,
          alpn: socket.alpnProtocol,
        }),
      );
    });
    req.on('error', reject);
  });
}

async function selfSigned(dataDir: string, extra: string[] = []) {
  const server = berth(['serve', '--port', '0', '--data-dir', dataDir, '--tls-self-signed', ...extra]);
  const url = await server.url();
  await server.waitForRecord((r) => r.msg === 'self-signed TLS certificate');
  return { server, url, ca: readFileSync(join(dataDir, 'tls', 'ca.crt')) };
}

describe('berth serve --tls-self-signed', () => {
  it('serves HTTPS that a client trusting only the generated CA accepts, with keep-alive and the install commands', async () => {
    const dataDir = tempDir();
    const { server, url, ca } = await selfSigned(dataDir);
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const port = new URL(url).port;

    const agent = new https.Agent({ keepAlive: true, ca });
    const first = await get(`${url}/v2/`, ca, { agent });
    const second = await get(`https://localhost:${port}/v2/`, ca, { agent });
    const third = await get(`https://localhost:${port}/v2/_catalog`, ca, { agent });
    agent.destroy();
    expect(first.status).toBe(200);
    expect(first.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(third.body).toBe('{"repositories":[]}');
    // HTTP/1.1 with keep-alive: the second request to the same name rides the connection already open.
    expect(first.alpn).toBe('http/1.1');
    expect(third.reusedSocket).toBe(true);
    expect(second.status).toBe(200);

    // Without the CA the certificate is refused: this is real verification, not a trust-all client.
    await expect(get(`${url}/v2/`, undefined)).rejects.toThrow(/self-signed|unable to verify|certificate/i);

    const caCert = new X509Certificate(ca);
    expect(caCert.ca).toBe(true);
    const leaf = first.peer;
    expect(leaf.checkIssued(caCert)).toBe(true);
    expect(leaf.verify(caCert.publicKey)).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // extended key usage: serverAuth
    expect(leaf.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(leaf.publicKey.asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });
    const days = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 86_400_000;
    expect(days).toBeGreaterThan(300);
    expect(days).toBeLessThanOrEqual(398);
    expect(statSync(join(dataDir, 'tls', 'ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'tls', 'server.key')).mode & 0o777).toBe(0o600);

    const caFile = join(dataDir, 'tls', 'ca.crt');
    expect(server.stderr).toContain(
      `for h in localhost:${port} 127.0.0.1:${port}; do mkdir -p /etc/docker/certs.d/$h && cp ${caFile} /etc/docker/certs.d/$h/ca.crt; done`,
    );
    expect(server.stderr).toContain(`/etc/containers/certs.d/$h && cp ${caFile}`);
    expect(server.stderr).toContain(`/etc/containerd/certs.d/$h && cp ${caFile}`);
  });

  it('reuses the CA and certificate across restarts; new host names get a new certificate from the same CA', async () => {
    const dataDir = tempDir();
    const first = await selfSigned(dataDir);
    const before = await get(`${first.url}/v2/`, first.ca);
    await first.server.kill();

    const again = await selfSigned(dataDir);
    const reused = await get(`${again.url}/v2/`, first.ca);
    expect(reused.peer.fingerprint256).toBe(before.peer.fingerprint256);
    expect(again.server.records.find((r) => r.msg === 'self-signed TLS certificate')?.action).toBe('reused');
    await again.server.kill();

    const renamed = await selfSigned(dataDir, ['--tls-hosts', 'registry.test,127.0.0.1']);
    // The CA that clients already trust still works: only the server certificate changed.
    expect(renamed.ca.equals(first.ca)).toBe(true);
    const after = await get(`${renamed.url}/v2/`, first.ca, { servername: 'registry.test' });
    expect(after.status).toBe(200);
    expect(after.peer.fingerprint256).not.toBe(before.peer.fingerprint256);
    expect(after.peer.subjectAltName).toBe('DNS:registry.test, IP Address:127.0.0.1');
    expect(renamed.server.stderr).toContain(`for h in registry.test:${new URL(renamed.url).port} 127.0.0.1:`);
  });

  it('renews a server certificate near its expiry and a CA near its own, in place', async () => {
    const dir = join(tempDir(), 'tls');
    const hosts = ['localhost', '127.0.0.1'];
    expect((await ensureSelfSigned(dir, hosts)).action).toBe('new-ca');
    const ca = readFileSync(join(dir, 'ca.crt'));
    const cert = readFileSync(join(dir, 'server.crt'));
    expect((await ensureSelfSigned(dir, hosts)).action).toBe('reused');

    const in380Days = new Date(Date.now() + 380 * 86_400_000);
    expect((await ensureSelfSigned(dir, hosts, in380Days)).action).toBe('new-certificate');
    expect(readFileSync(join(dir, 'ca.crt')).equals(ca)).toBe(true);
    expect(readFileSync(join(dir, 'server.crt')).equals(cert)).toBe(false);

    const in3640Days = new Date(Date.now() + 3640 * 86_400_000);
    expect((await ensureSelfSigned(dir, hosts, in3640Days)).action).toBe('new-ca');
    expect(readFileSync(join(dir, 'ca.crt')).equals(ca)).toBe(false);
    // A server certificate never outlives the CA that signed it.
    const renewedCa = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    const renewed = new X509Certificate(readFileSync(join(dir, 'server.crt')));
    expect(Date.parse(renewed.validTo)).toBeLessThanOrEqual(Date.parse(renewedCa.validTo));
    expect(renewed.checkIssued(renewedCa)).toBe(true);
  });

  it('asks for a token at an https realm, and issues it over HTTPS', async () => {
    const dataDir = tempDir();
    const authFile = join(tempDir(), 'auth.json');
    await addUser(authFile, 'alice', 'alice-password', ['team/*:pull,push']);
    const { url, ca } = await selfSigned(dataDir, ['--auth-file', authFile]);
    const port = new URL(url).port;

    const challenge = await get(`https://localhost:${port}/v2/`, ca);
    expect(challenge.status).toBe(401);
    expect(challenge.headers['www-authenticate']).toBe(
      `Bearer realm="https://localhost:${port}/token",service="berth"`,
    );
    const basic = Buffer.from('alice:alice-password').toString('base64');
    const token = await get(
      `https://localhost:${port}/token?service=berth&scope=repository:team/app:pull`,
      ca,
      {
        headers: { Authorization: `Basic ${basic}` },
      },
    );
    expect(token.status).toBe(200);
    const bearer = (JSON.parse(token.body) as { token: string }).token;
    const tags = await get(`https://localhost:${port}/v2/team/app/tags/list`, ca, {
      headers: { Authorization: `Bearer ${bearer}` },
    });
    expect(tags.status).toBe(404);
    expect(tags.body).toContain('NAME_UNKNOWN');
  });
});

describe('berth serve --tls-cert/--tls-key', () => {
  it('serves the given certificate and picks up a replaced one without a restart', async () => {
    const root = tempDir();
    const a = await ensureSelfSigned(join(root, 'a'), ['localhost', '127.0.0.1']);
    const b = await ensureSelfSigned(join(root, 'b'), ['127.0.0.1', 'berth.test']);
    const certFile = join(root, 'server.crt');
    const keyFile = join(root, 'server.key');
    copyFileSync(a.certFile, certFile);
    copyFileSync(a.keyFile, keyFile);

    const server = berth(['serve', '--port', '0', '--data-dir', join(root, 'data')], {
      BERTH_TLS_CERT: certFile,
      BERTH_TLS_KEY: keyFile,
    });
    const url = await server.url();
    const caA = readFileSync(a.caCertFile);
    const caB = readFileSync(b.caCertFile);
    const before = await get(`${url}/v2/`, caA);
    expect(before.peer.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
    // No install commands for a certificate Berth did not make.
    expect(server.stderr).toBe('');

    copyFileSync(b.keyFile, keyFile);
    copyFileSync(b.certFile, certFile);
    await server.waitForRecord((r) => r.msg === 'TLS certificate reloaded', 15_000);
    const after = await get(`${url}/v2/`, caB);
    expect(after.status).toBe(200);
    expect(after.peer.subjectAltName).toBe('IP Address:127.0.0.1, DNS:berth.test');
  });

  it('refuses to start, naming the problem, when the files are missing, wrong or mismatched', async () => {
    const root = tempDir();
    const a = await ensureSelfSigned(join(root, 'a'), ['localhost']);
    const b = await ensureSelfSigned(join(root, 'b'), ['localhost']);
    await expect(readKeyPair(join(root, 'nope.crt'), a.keyFile)).rejects.toThrow(
      `--tls-cert ${join(root, 'nope.crt')}: no such file`,
    );
    await expect(readKeyPair(a.keyFile, a.keyFile)).rejects.toThrow('not a PEM certificate');
    await expect(readKeyPair(a.certFile, a.certFile)).rejects.toThrow('not a PEM private key');
    const config = (input: ConfigInput) => () => parseConfig(input);
    expect(config({ tlsCert: a.certFile })).toThrow('HTTPS needs both --tls-cert and --tls-key');
    expect(config({ tlsHosts: 'localhost' })).toThrow('add --tls-self-signed');
    expect(config({ tlsSelfSigned: true, tlsHosts: 'ok.test,bad host!' })).toThrow('"bad host!" is neither');
    expect(config({ tlsSelfSigned: true, tlsCert: a.certFile, tlsKey: a.keyFile })).toThrow(
      'leave out --tls-cert and --tls-key',
    );

    // As the CLI reports it: one line naming the file, exit 1, no stack trace.
    const run = berth(['serve', '--port', '0', '--data-dir', join(root, 'data')], {
      BERTH_TLS_CERT: a.certFile,
      BERTH_TLS_KEY: b.keyFile,
    });
    expect(await run.exit(20_000)).toEqual({ code: 1, signal: null });
    expect(run.stderr).toBe(
      `berth: --tls-key ${b.keyFile} is not the key of the certificate in ${a.certFile}\n`,
    );
  });
});
