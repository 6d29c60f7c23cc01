// HTTPS on the local server: Berth started with `--tls-self-signed`, its CA installed the
// way the server's own printed commands install it (/etc/docker/certs.d/<host:port>/ca.crt,
// /etc/containers/certs.d/<host:port>/ca.crt, a hosts.toml in /etc/containerd/certs.d), then docker,
// podman, skopeo, ctr and crane push and pull with certificate verification on: no
// --tls-verify=false, no --insecure, no insecure-registries.
//
// docker needs one more step to make that a real test. dockerd treats every registry whose name
// resolves into 127.0.0.0/8 as insecure, and then skips certificate verification altogether (and
// ignores certs.d). So docker reaches Berth as `berth-tls.test:<port>`, a name that does not
// resolve, through an HTTP CONNECT proxy on 127.0.0.1 (dockerd's HTTPS_PROXY) that maps it to
// 127.0.0.1: for dockerd that is a secure registry, verified against certs.d, as a remote one is.
// Each client is also shown to refuse the certificate before the CA is installed.
//
//   BERTH_E2E_SUITE=tls npx vitest run -c test/e2e/clients/vitest.config.ts   (needs root)
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, startDockerd, type Containerd, type Dockerd } from './harness/daemons.ts';
import { OciLayout, smallLayer, verifyLayout } from './harness/images.ts';
import {
  freePort,
  run,
  setTranscript,
  startDaemon,
  waitFor,
  type Daemon,
  type RunResult,
} from './harness/proc.ts';
import { repoRoot } from './harness/registry.ts';
import { RequestLog, serverErrors } from './harness/requestlog.ts';

const DOCKER = process.env.BERTH_E2E_DOCKER ?? (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');
const UNRESOLVABLE = 'berth-tls.test';
const UNTRUSTED = /x509|certificate|unknown authority/i;

describe('HTTPS with a self-signed CA: docker, podman, skopeo and crane verify the certificate', () => {
  const runId = randomBytes(4).toString('hex');
  let workDir = '';
  let port = 0;
  let berth: Daemon;
  let caFile = '';
  let log: RequestLog;
  let dockerd: Dockerd;
  let containerd: Containerd;
  let env: NodeJS.ProcessEnv;
  let layout: OciLayout;
  let pushed = '';
  const connects: string[] = [];
  const installed: string[] = [];
  const stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    workDir = path.join(process.env.BERTH_E2E_WORKDIR ?? os.tmpdir(), `berth-e2e-tls-${runId}`);
    mkdirSync(workDir, { recursive: true });
    setTranscript(path.join(workDir, 'commands.log'));

    port = await freePort();
    const dataDir = path.join(workDir, 'registry-data');
    const logFile = path.join(workDir, 'registry.log');
    berth = startDaemon(
      'berth',
      'sh',
      [
        '-c',
        `npm start -- --port ${port} --data-dir ${dataDir} --tls-self-signed --tls-hosts ${UNRESOLVABLE},localhost,127.0.0.1`,
      ],
      { cwd: repoRoot, logFile, env: { ...process.env, NO_COLOR: '1' }, group: true },
    );
    stops.push(() => berth.stop());
    caFile = path.join(dataDir, 'tls', 'ca.crt');
    await waitFor(
      'berth to answer over HTTPS',
      async () =>
        existsSync(caFile) && (await status(`https://127.0.0.1:${port}/v2/`, readFileSync(caFile))) === 200,
      90_000,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${berth.logTail()}`, { cause: e });
    });
    log = new RequestLog(logFile);

    // The CONNECT proxy dockerd uses: only the registry's unresolvable name, mapped to loopback.
    const sockets = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      sockets.add(client);
      client.on('close', () => sockets.delete(client));
      client.once('data', (head) => {
        const target = /^CONNECT (\S+) HTTP\/1\.[01]\r\n/.exec(head.toString('latin1'))?.[1];
        if (target !== `${UNRESOLVABLE}:${port}`) {
          client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
          return;
        }
        connects.push(target);
        const upstream = net.connect(port, '127.0.0.1', () => {
          client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          client.pipe(upstream).pipe(client);
        });
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
      });
    });
    const proxyPort = await new Promise<number>((resolve) =>
      proxy.listen(0, '127.0.0.1', () => resolve((proxy.address() as net.AddressInfo).port)),
    );
    stops.push(
      () =>
        new Promise((resolve) => {
          proxy.close(() => resolve());
          for (const socket of sockets) socket.destroy();
        }),
    );

    const home = path.join(workDir, 'home');
    const dockerConfig = path.join(workDir, 'docker-config');
    for (const dir of [home, dockerConfig, path.join(workDir, 'tmp')]) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dockerConfig, 'config.json'), '{}');
    // No `insecure = true` anywhere: the registries are only listed so short names never resolve.
    writeFileSync(path.join(workDir, 'registries.conf'), 'unqualified-search-registries = []\n');
    writeFileSync(
      path.join(workDir, 'storage.conf'),
      `[storage]\ndriver = "vfs"\ngraphroot = "${workDir}/storage/root"\nrunroot = "${workDir}/storage/run"\n`,
    );
    writeFileSync(
      path.join(workDir, 'containers.conf'),
      `[engine]\ntmp_dir = "${workDir}/podman-run"\nevents_logger = "file"\nevents_logfile_path = "${workDir}/podman-events.log"\n`,
    );
    const cache = process.env.BERTH_CACHE ?? path.join(process.env.HOME ?? '/root', '.cache', 'berth');
    env = {
      ...process.env,
      PATH: `${process.env.BERTH_E2E_BIN ?? path.join(cache, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: home,
      TMPDIR: path.join(workDir, 'tmp'),
      DOCKER_CONFIG: dockerConfig,
      REGISTRY_AUTH_FILE: path.join(dockerConfig, 'config.json'),
      CONTAINERS_REGISTRIES_CONF: path.join(workDir, 'registries.conf'),
      CONTAINERS_STORAGE_CONF: path.join(workDir, 'storage.conf'),
      CONTAINERS_CONF: path.join(workDir, 'containers.conf'),
      NO_COLOR: '1',
    };
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy']) {
      delete env[name];
    }
    delete env.DOCKER_HOST;
    dockerd = await startDockerd(path.join(workDir, 'dockerd'), {
      ...env,
      HTTPS_PROXY: `http://127.0.0.1:${proxyPort}`,
    });
    stops.push(() => dockerd.daemon.stop());
    env.DOCKER_HOST = dockerd.host;
    containerd = await startContainerd(path.join(workDir, 'containerd'), env);
    stops.push(() => containerd.daemon.stop());

    layout = new OciLayout(path.join(workDir, 'layout'));
    const image = layout.addImage({ layers: [smallLayer(`tls-a-${runId}`), smallLayer(`tls-b-${runId}`)] });
    layout.tag('1', image.descriptor);
    pushed = image.manifestDigest;
  });

  afterAll(async () => {
    for (const dir of installed) rmSync(dir, { recursive: true, force: true });
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    if (!process.env.BERTH_E2E_KEEP && workDir) rmSync(workDir, { recursive: true, force: true });
  });

  const tool = (cmd: string, args: string[], extra: NodeJS.ProcessEnv = {}, allowFailure = false) =>
    run(cmd, args, { env: { ...env, ...extra }, timeoutMs: 120_000, allowFailure });
  const output = (r: RunResult) => `${r.stdout}\n${r.stderr}`;
  const craneDigest = async (ref: string) =>
    (await tool('crane', ['digest', ref], { SSL_CERT_FILE: caFile })).stdout.trim();

  it('before the CA is installed, every client refuses the certificate', async () => {
    const skopeo = await tool('skopeo', ['inspect', `docker://127.0.0.1:${port}/tls/none:1`], {}, true);
    expect(skopeo.code).not.toBe(0);
    expect(output(skopeo)).toMatch(UNTRUSTED);
    const docker = await tool(DOCKER, ['pull', `${UNRESOLVABLE}:${port}/tls/none:1`], {}, true);
    expect(docker.code).not.toBe(0);
    expect(output(docker)).toMatch(UNTRUSTED);
    const crane = await tool('crane', ['digest', `127.0.0.1:${port}/tls/none:1`], {}, true);
    expect(crane.code).not.toBe(0);
    expect(output(crane)).toMatch(UNTRUSTED);
  });

  it('the commands berth serve prints install the CA for docker, podman/skopeo and containerd', async () => {
    const printed = readFileSync(berth.logFile, 'utf8').split('\n');
    for (const root of ['/etc/docker/certs.d', '/etc/containers/certs.d', '/etc/containerd/certs.d']) {
      const line = printed.find((l) => l.includes(`mkdir -p ${root}/$h`));
      expect(line, `no install command for ${root} in the server output`).toBeDefined();
      const names = [`${UNRESOLVABLE}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`];
      expect(line).toContain(`for h in ${names.join(' ')};`);
      installed.push(...names.map((n) => path.join(root, n)));
      // As printed, minus the `sudo ` (the suite runs as root).
      await run('sh', ['-c', line!.slice(line!.indexOf('sh -c ') + 'sh -c '.length).replace(/^'|'$/g, '')]);
      for (const name of names) {
        expect(readFileSync(path.join(root, name, 'ca.crt')).equals(readFileSync(caFile))).toBe(true);
      }
    }
  });

  it('skopeo pushes and podman pulls and pushes over verified HTTPS', async () => {
    const ref = `127.0.0.1:${port}/tls/base:1`;
    await tool('skopeo', ['copy', '-q', '--preserve-digests', `oci:${layout.dir}:1`, `docker://${ref}`]);
    const inspected = JSON.parse((await tool('skopeo', ['inspect', `docker://${ref}`])).stdout) as {
      Digest: string;
    };
    expect(inspected.Digest).toBe(pushed);

    await tool('podman', ['pull', '-q', ref]);
    await tool('podman', ['tag', ref, `localhost:${port}/tls/podman:1`]);
    await tool('podman', ['push', '-q', `localhost:${port}/tls/podman:1`]);
    const copied = path.join(workDir, 'skopeo-pull');
    await tool('skopeo', ['copy', '-q', `docker://localhost:${port}/tls/podman:1`, `oci:${copied}:1`]);
    expect(verifyLayout(copied, '1').blobsVerified).toBe(4); // manifest, config, two layers
    expect(await craneDigest(`127.0.0.1:${port}/tls/podman:1`)).toMatch(/^sha256:[a-f0-9]{64}$/);
  });

  it('docker pulls and pushes through certs.d, as with a remote registry', async () => {
    const base = `${UNRESOLVABLE}:${port}/tls/base:1`;
    await tool(DOCKER, ['pull', base]);
    const repoDigests = (await tool(DOCKER, ['image', 'inspect', base, '--format', '{{json .RepoDigests}}']))
      .stdout;
    expect(repoDigests).toContain(pushed);
    const mine = `${UNRESOLVABLE}:${port}/tls/docker:1`;
    await tool(DOCKER, ['tag', base, mine]);
    const push = await tool(DOCKER, ['push', mine]);
    const digest = /digest: (sha256:[a-f0-9]{64})/.exec(push.stdout)?.[1];
    expect(digest, push.stdout).toBeDefined();
    expect(await craneDigest(`127.0.0.1:${port}/tls/docker:1`)).toBe(digest);
    // dockerd really went through the proxy, i.e. the name it verified was the unresolvable one.
    expect(connects.length).toBeGreaterThan(0);
  });

  it('containerd (ctr --hosts-dir) pulls through the printed hosts.toml', async () => {
    const ref = `127.0.0.1:${port}/tls/base:1`;
    const ctr = (args: string[]) =>
      tool('ctr', ['--address', containerd.address, '--namespace', 'berth-e2e', ...args]);
    await ctr(['images', 'pull', '--snapshotter', 'native', '--hosts-dir', '/etc/containerd/certs.d', ref]);
    expect((await ctr(['images', 'ls', '-q'])).stdout).toContain(ref);
    const listed = (await ctr(['images', 'ls'])).stdout;
    expect(listed).toContain(pushed);
  });

  it('crane pushes and pulls with the CA in SSL_CERT_FILE', async () => {
    const ref = `127.0.0.1:${port}/tls/crane:1`;
    await tool('crane', ['push', layout.dir, ref], { SSL_CERT_FILE: caFile });
    expect(await craneDigest(ref)).toBe(pushed);
    const pulled = path.join(workDir, 'crane-pull');
    await tool('crane', ['pull', '--format', 'oci', ref, pulled], { SSL_CERT_FILE: caFile });
    expect(verifyLayout(pulled).digest).toBe(pushed);
    expect(serverErrors(log.all())).toEqual([]);
  });
});

/** The status of a GET that trusts only `ca`. */
function status(url: string, ca: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
