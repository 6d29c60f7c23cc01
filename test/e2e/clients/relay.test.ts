// `berth relay` with real clients, through the Lambda path: the BUILT registry bundle behind the
// local API Gateway (`berth serve --lambda`) on MinIO, where no request may carry more than 4.4 MB.
// A 1 GiB layer pushed by docker, podman and crane through the relay must arrive whole (its parts
// go straight to S3), and pull from the gateway directly with the same digest. containerd names the
// digest before the bytes, so its push goes in one PUT that S3 checks against it.
//
//   npx tsx test/e2e/with-s3.ts npm run test:e2e:relay
//
// The gateway verifies blobs above 256 MiB in the background (BERTH_VERIFY_SYNC_LIMIT), so the
// asynchronous verification path is what these layers take.
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientEnv } from './harness/clients.ts';
import { freePort, run, sleep, startDaemon, waitFor, type Daemon } from './harness/proc.ts';
import { repoRoot, startBerth, type RegistryTarget } from './harness/registry.ts';
import { GatewayRequestLog } from './harness/requestlog.ts';

const MiB = 1024 * 1024;
const LAYER_MIB = Number(process.env.BERTH_E2E_RELAY_LAYER_MIB ?? 1024);

let work: string;
let gateway: RegistryTarget;
let relay: Daemon;
let relayPort: number;
let clients: ClientEnv;
let archive: string;

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** A `docker save`-style archive of one image whose only layer holds `mib` MiB of random bytes. */
async function makeArchive(
  dir: string,
  mib: number,
  gzip: boolean,
): Promise<{ file: string; layerDigest: string }> {
  mkdirSync(path.join(dir, 'layer'), { recursive: true });
  await run('sh', ['-c', `head -c ${mib * MiB} /dev/urandom > "${dir}/layer/big.bin"`], {
    timeoutMs: 120_000,
  });
  await run('tar', ['-cf', path.join(dir, 'layer.tar'), '-C', path.join(dir, 'layer'), 'big.bin']);
  rmSync(path.join(dir, 'layer'), { recursive: true });
  const diffId = await sha256File(path.join(dir, 'layer.tar'));
  if (gzip) await run('gzip', ['-1', path.join(dir, 'layer.tar')], { timeoutMs: 120_000 });
  const layer = gzip ? 'layer.tar.gz' : 'layer.tar';
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: [diffId] },
  });
  writeFileSync(path.join(dir, 'config.json'), config);
  writeFileSync(
    path.join(dir, 'manifest.json'),
    JSON.stringify([{ Config: 'config.json', RepoTags: ['berth-e2e/big:1'], Layers: [layer] }]),
  );
  const file = `${dir}.tar`;
  await run('tar', ['-cf', file, '-C', dir, 'manifest.json', 'config.json', layer]);
  const layerDigest = await sha256File(path.join(dir, layer));
  rmSync(dir, { recursive: true });
  return { file, layerDigest };
}

async function startRelay(): Promise<Daemon> {
  const d = startDaemon(
    'relay',
    'npx',
    ['tsx', 'bin/berth.ts', 'relay', '--registry', gateway.url, '--port', String(relayPort)],
    {
      cwd: repoRoot,
      logFile: path.join(work, 'relay.log'),
      env: { ...process.env, NO_COLOR: '1' },
      group: true,
    },
  );
  await waitFor(
    'the relay to answer',
    async () => (await fetch(`http://127.0.0.1:${relayPort}/v2/`).catch(() => undefined))?.status === 200,
    60_000,
  );
  return d;
}

async function head(digest: string, repo: string): Promise<number> {
  return (await fetch(`${gateway.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' })).status;
}

const relayHost = () => `127.0.0.1:${relayPort}`;

describe.skipIf(process.env.BERTH_STORAGE !== 's3')(
  'berth relay: any layer size through the Lambda path',
  () => {
    beforeAll(async () => {
      work = mkdtempSync(path.join(tmpdir(), 'berth-e2e-relay-'));
      await run('npm', ['run', 'build'], { cwd: repoRoot });
      gateway = await startBerth(work, {
        command:
          'BERTH_VERIFY_SYNC_LIMIT=268435456 npx tsx bin/berth.ts serve --lambda --port {port} --data-dir {dataDir}',
        requestLog: (file) => new GatewayRequestLog(file),
      });
      relayPort = await freePort();
      relay = await startRelay();
      clients = await ClientEnv.start(
        { name: 'relay', url: `http://${relayHost()}`, host: relayHost(), stop: async () => {} },
        path.join(work, 'clients'),
      );
      archive = (await makeArchive(path.join(work, 'image'), LAYER_MIB, false)).file;
    }, 10 * 60_000);

    afterAll(async () => {
      await clients?.stop();
      await relay?.stop();
      await gateway?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    it(`docker pushes a ${LAYER_MIB} MiB layer through the relay; docker pulls it from the gateway with the same digest`, async (t) => {
      const skip = clients.skipReason('docker');
      if (skip) return t.skip(skip);
      await clients.docker(['load', '-i', archive], { timeoutMs: 300_000 });
      const ref = `${relayHost()}/e2e/docker:1`;
      await clients.docker(['tag', 'berth-e2e/big:1', ref]);
      const pushed = await clients.docker(['push', ref], { timeoutMs: 600_000 });
      const digest = /digest: (sha256:[a-f0-9]{64})/.exec(pushed.stdout)?.[1];
      expect(digest).toBeDefined();
      await clients.docker(['rmi', ref, 'berth-e2e/big:1']);
      const direct = `${gateway.host}/e2e/docker:1`;
      await clients.docker(['pull', direct], { timeoutMs: 600_000 });
      const inspected = await clients.docker(['inspect', '--format', '{{json .RepoDigests}}', direct]);
      expect(inspected.stdout).toContain(`${gateway.host}/e2e/docker@${digest}`);
      await clients.docker(['rmi', direct]);
    });

    it(`podman pushes the ${LAYER_MIB} MiB image through the relay; the gateway serves the same manifest`, async (t) => {
      const skip = clients.skipReason('podman', 'crane');
      if (skip) return t.skip(skip);
      await clients.podman(['load', '-i', archive], { timeoutMs: 300_000 });
      const file = path.join(work, 'podman-digest');
      await clients.podman(
        [
          'push',
          '--tls-verify=false',
          '--digestfile',
          file,
          'berth-e2e/big:1',
          `${relayHost()}/e2e/podman:1`,
        ],
        {
          timeoutMs: 600_000,
        },
      );
      const digest = (await run('cat', [file])).stdout.trim();
      const served = await run('crane', ['digest', '--insecure', `${gateway.host}/e2e/podman:1`], {
        env: clients.env,
      });
      expect(served.stdout.trim()).toBe(digest);
      await clients.podman(['rmi', '--all', '--force'], { allowFailure: true });
    });

    it(`crane pushes the ${LAYER_MIB} MiB archive through the relay; crane reads every blob back from the gateway`, async (t) => {
      const skip = clients.skipReason('crane');
      if (skip) return t.skip(skip);
      const pushed = await run('crane', ['push', '--insecure', archive, `${relayHost()}/e2e/crane:1`], {
        env: clients.env,
        timeoutMs: 600_000,
      });
      const ref = pushed.stdout.trim();
      const served = await run('crane', ['digest', '--insecure', `${gateway.host}/e2e/crane:1`], {
        env: clients.env,
      });
      expect(ref.endsWith(served.stdout.trim())).toBe(true);
      const manifest = JSON.parse(
        (await run('crane', ['manifest', '--insecure', `${gateway.host}/e2e/crane:1`], { env: clients.env }))
          .stdout,
      ) as { layers: { digest: string; size: number }[] };
      expect(manifest.layers[0]!.size).toBeGreaterThan(LAYER_MIB * MiB * 0.99);
      // The layer's bytes, fetched from the gateway (a redirect to S3), hash to its digest.
      const layer = manifest.layers[0]!.digest;
      const check = await run(
        'sh',
        ['-c', `crane blob --insecure "${gateway.host}/e2e/crane@${layer}" | sha256sum`],
        { env: clients.env, timeoutMs: 300_000 },
      );
      expect(`sha256:${check.stdout.split(' ')[0]}`).toBe(layer);
    });

    it(`containerd (ctr) pushes the ${LAYER_MIB} MiB image through the relay in one checked PUT; crane reads it from the gateway`, async (t) => {
      const skip = clients.skipReason('ctr', 'crane');
      if (skip) return t.skip(skip);
      await clients.ctr(['images', 'import', '--no-unpack', archive], { timeoutMs: 300_000 });
      const ref = `${relayHost()}/e2e/ctr:1`;
      const pushed = await clients.pushLocal('ctr', 'docker.io/berth-e2e/big:1', ref, { timeoutMs: 600_000 });
      // containerd names the digest and length before the bytes (POST, then PUT ?digest= with the
      // body): the relay sends the layer in one PUT that S3 checks, and says so per blob in its log.
      const pushedLines = readFileSync(path.join(work, 'relay.log'), 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('e2e/ctr ') && line.includes(': pushed '));
      expect(pushedLines.join('\n')).toMatch(/\(one PUT straight to storage, checked there, /);
      const served = await run('crane', ['digest', '--insecure', `${gateway.host}/e2e/ctr:1`], {
        env: clients.env,
      });
      expect(served.stdout.trim()).toBe(pushed.digest);
      await clients.ctr(['images', 'rm', ref, 'docker.io/berth-e2e/big:1']);
    });

    it('a relay killed mid-upload leaves no visible blob, and the push then succeeds through a new relay', async (t) => {
      const skip = clients.skipReason('crane');
      if (skip) return t.skip(skip);
      // A compressed layer: crane pushes it as it is, so its digest is known before the push.
      const { file, layerDigest } = await makeArchive(path.join(work, 'resume'), 256, true);
      const ref = `${relayHost()}/e2e/resume:1`;
      const requests = gateway.requests!;
      const mark = requests.mark();
      const push = run('crane', ['push', '--insecure', file, ref], {
        env: clients.env,
        timeoutMs: 300_000,
        allowFailure: true,
      });
      await waitFor(
        'the relay to start sending parts',
        async () =>
          requests
            .all()
            .slice(mark)
            .some((r) => r.path.includes('/_berth/v1/uploads/')),
        120_000,
      );
      // SIGKILL: a crash, not a shutdown (which would cancel the upload on the remote first).
      process.kill(-relay.pid, 'SIGKILL');
      await relay.exited;
      const interrupted = await push;
      expect(interrupted.code).not.toBe(0);
      expect(await head(layerDigest, 'e2e/resume')).toBe(404);

      relay = await startRelay();
      await run('crane', ['push', '--insecure', file, ref], { env: clients.env, timeoutMs: 300_000 });
      expect(await head(layerDigest, 'e2e/resume')).toBe(200);
    });

    it('a client lying about the digest gets DIGEST_INVALID, and neither digest becomes visible', async () => {
      const base = `http://${relayHost()}`;
      const blob = new Uint8Array(12 * MiB).map((_, i) => (i * 7) & 0xff);
      const truth = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
      const lie = `sha256:${createHash('sha256').update('a different blob').digest('hex')}`;
      const start = await fetch(`${base}/v2/e2e/lie/blobs/uploads/`, { method: 'POST' });
      const patch = await fetch(base + start.headers.get('Location')!, { method: 'PATCH', body: blob });
      expect(patch.status).toBe(202);
      const put = await fetch(`${base}${patch.headers.get('Location')}?digest=${lie}`, { method: 'PUT' });
      expect(put.status).toBe(400);
      expect(((await put.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('DIGEST_INVALID');
      await sleep(100);
      expect(await head(lie, 'e2e/lie')).toBe(404);
      expect(await head(truth, 'e2e/lie')).toBe(404);
    });
  },
);
