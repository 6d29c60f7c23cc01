/**
 * Push throughput of one large layer, same machine, same run:
 *
 *  - direct to `berth serve` (the local Node server) on the filesystem store;
 *  - direct to `berth serve` on S3 (a private MinIO);
 *  - through `berth relay` to `berth serve --lambda` (the built bundle behind the local API Gateway)
 *    on the same MinIO: the bytes go from the relay straight to MinIO in parallel presigned parts.
 *
 *  - the same relay, pushed to as containerd and buildx do (POST, then one PUT ?digest= carrying the
 *    layer): the digest comes first, so the relay sends one PUT that MinIO checks against it, and
 *    the registry function verifies with a HEAD instead of reading the layer back.
 *
 * The client is this script, pushing as docker does (POST, one PATCH with the whole layer, PUT
 * ?digest=) except on the last path, so the numbers measure the registry paths, not a client's gzip.
 * The layer is a random 16 MiB block repeated; its sha256 is computed before the clock starts.
 *
 *   npm run build && npx tsx bench/relay-push.ts [size-MiB=1024] [runs=2]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startS3Server } from '../test/storage/s3-server.ts';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 1024);
const runs = Number(process.argv[3] ?? 2);
const block = randomFillSync(new Uint8Array(16 * MiB));
const blocks = Math.ceil(sizeMiB / 16);
const size = blocks * block.byteLength;

const started: ChildProcess[] = [];
const dataDir = await mkdtemp(join(tmpdir(), 'berth-bench-relay-'));
const s3 = await startS3Server();
try {
  const digest = layerDigest();
  const s3Env = {
    BERTH_STORAGE: 's3',
    BERTH_S3_BUCKET: s3.bucket,
    BERTH_S3_REGION: s3.region,
    BERTH_S3_ENDPOINT: s3.endpoint,
    BERTH_S3_FORCE_PATH_STYLE: 'true',
  };
  const fsServer = await serve(['serve', '--data-dir', join(dataDir, 'fs')], {});
  const s3Server = await serve(['serve'], { ...s3Env, BERTH_S3_PREFIX: 'node' });
  const gateway = await serve(['serve', '--lambda'], { ...s3Env, BERTH_S3_PREFIX: 'lambda' });
  const relayPort = await freePort();
  await start(['relay', '--registry', gateway, '--port', String(relayPort)], {}, relayPort);
  const relay = `http://127.0.0.1:${relayPort}`;

  const rows: string[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const [name, url] of [
      ['direct to `berth serve`, filesystem', fsServer],
      ['direct to `berth serve`, S3 (MinIO)', s3Server],
      ['`berth relay` -> `berth serve --lambda`, S3 (MinIO)', relay],
      ["`berth relay` -> `berth serve --lambda`, S3 (MinIO), containerd's PUT", relay],
    ] as const) {
      const known = name.endsWith("containerd's PUT");
      const seconds = await (known ? pushKnown : push)(url, `bench/run${run}${known ? 'k' : ''}`, digest);
      rows.push(
        `| ${name} | ${run} | ${seconds.toFixed(1)} s | ${(size / MiB / seconds).toFixed(0)} MiB/s |`,
      );
      console.error(rows[rows.length - 1]);
    }
  }
  console.log(`${sizeMiB} MiB layer, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'})`);
  console.log('| path | run | time to 201 | throughput |');
  console.log('| --- | --- | --- | --- |');
  for (const row of rows) console.log(row);
} finally {
  for (const child of started) child.kill('SIGTERM');
  await Promise.all(started.map((c) => new Promise((resolve) => c.once('exit', resolve))));
  await s3.stop();
  await rm(dataDir, { recursive: true, force: true });
}

function layerDigest(): string {
  const hash = createHash('sha256');
  for (let i = 0; i < blocks; i++) hash.update(block);
  return `sha256:${hash.digest('hex')}`;
}

/** POST, one PATCH with the whole layer (streamed), PUT ?digest=; seconds until the 201. */
async function push(base: string, repo: string, digest: string): Promise<number> {
  const t0 = performance.now();
  const open = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (open.status !== 202) throw new Error(`POST ${base}: ${open.status}`);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent === blocks) return controller.close();
      sent++;
      controller.enqueue(block.slice());
    },
  });
  const patch = await fetch(base + open.headers.get('Location'), {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/octet-stream' },
    body,
    duplex: 'half',
  } as RequestInit);
  if (patch.status !== 202) throw new Error(`PATCH ${base}: ${patch.status} ${await patch.text()}`);
  const put = await fetch(`${base}${patch.headers.get('Location')}?digest=${digest}`, { method: 'PUT' });
  if (put.status !== 201) throw new Error(`PUT ${base}: ${put.status} ${await put.text()}`);
  return (performance.now() - t0) / 1000;
}

/** POST, then one PUT ?digest= with the whole layer (streamed, its length announced); seconds until the 201. */
async function pushKnown(base: string, repo: string, digest: string): Promise<number> {
  const t0 = performance.now();
  const open = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (open.status !== 202) throw new Error(`POST ${base}: ${open.status}`);
  const location = open.headers.get('Location')!;
  const target = new URL(`${base}${location}${location.includes('?') ? '&' : '?'}digest=${digest}`);
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(target, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
    });
    req.once('error', reject);
    req.once('response', (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    let sent = 0;
    const write = () => {
      while (sent < blocks) {
        sent++;
        if (!req.write(block.slice())) return void req.once('drain', write);
      }
      req.end();
    };
    write();
  });
  if (status !== 201) throw new Error(`PUT ${base}: ${status}`);
  return (performance.now() - t0) / 1000;
}

async function serve(args: string[], env: Record<string, string>): Promise<string> {
  const port = await freePort();
  await start([...args, '--port', String(port), '--log-level', 'warn'], env, port);
  return `http://127.0.0.1:${port}`;
}

async function start(args: string[], env: Record<string, string>, port: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/berth.ts', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  started.push(child);
  for (let i = 0; i < 300; i++) {
    const status = await fetch(`http://127.0.0.1:${port}/v2/`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`berth ${args.join(' ')} did not start`);
}
