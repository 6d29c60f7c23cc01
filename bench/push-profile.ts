/**
 * The server's CPU per GiB of a push, on its own: the typical 10-layer image (bench/lib/images.ts)
 * pushed with skopeo to a fresh Berth on one private MinIO, through `berth serve` or through the
 * local API Gateway (`berth serve --lambda`) with `berth relay` in front (the bench's latency
 * workload's Lambda path, without the latency proxy). Prints the median CPU seconds of the server
 * process per push and per GiB; with `BENCH_BERTH_NODE_ARGS="--cpu-prof --cpu-prof-dir=<dir>"` each
 * server writes a CPU profile when it stops.
 *
 *   npm run build && npx tsx bench/push-profile.ts            # Lambda path, 5 pushes, full size
 *   BENCH_TARGET=serve BENCH_PUSHES=3 npx tsx bench/push-profile.ts
 *   BENCH_SCALE=0.25 npx tsx bench/push-profile.ts             # the image at a quarter of its size
 *   BENCH_WARM=1 npx tsx bench/push-profile.ts                 # a small image pushed first, unmeasured
 *   BENCH_TARGET=serve BENCH_STORE=fs BENCH_IMAGE=32x131072 npx tsx bench/push-profile.ts
 *                                                              # 32 layers of 128 KiB to the filesystem
 *
 *   BENCH_REGISTRY=distribution BENCH_TARGET=serve BENCH_STORE=fs BENCH_IMAGE=64x4194304 npx tsx bench/push-profile.ts
 *                                                              # the same push to Distribution, for comparison
 *   BENCH_REGISTRY=null BENCH_IMAGE=64x4194304 npx tsx bench/push-profile.ts
 *                                                              # to bench/null-registry.ts, which stores nothing:
 *                                                              # the client's own floor
 *
 * BENCH_WARM separates what a first push pays once per process (the lazily imported parts of the
 * bundle, the S3 client's first connections) from what every push pays.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startS3Server } from '../test/storage/s3-server.ts';
import { Skopeo } from './lib/clients.ts';
import { makeLayout, makeLayoutOf, typicalImageSizes } from './lib/images.ts';
import { fileURLToPath } from 'node:url';
import { cpuSplit, freePort, GiB, Server } from './lib/proc.ts';
import {
  startBerth,
  startDistribution,
  startRelay,
  type Context,
  type Registry,
  type Store,
} from './lib/registries.ts';

const distribution = process.env.BENCH_REGISTRY === 'distribution';
const nothing = process.env.BENCH_REGISTRY === 'null';
const target = process.env.BENCH_TARGET === 'serve' || distribution || nothing ? 'serve' : 'lambda';
const pushes = Number(process.env.BENCH_PUSHES ?? 5);
const scale = Number(process.env.BENCH_SCALE ?? 1);
const warm = process.env.BENCH_WARM === '1';
// The null registry has no store: no MinIO for it.
const store: Store = process.env.BENCH_STORE === 'fs' || nothing ? 'fs' : 's3';
/** `<count>x<bytes>`: that many random layers of that size instead of the typical image. */
const image = /^(\d+)x(\d+)$/.exec(process.env.BENCH_IMAGE ?? '');

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const workDir = mkdtempSync(join(tmpdir(), 'berth-push-profile-'));
const ctx: Context = { workDir };
const s3 = store === 's3' ? await startS3Server() : undefined;
ctx.s3 = s3;
try {
  const layout = image
    ? makeLayout(join(workDir, 'layout'), Number(image[1]), Number(image[2]))
    : makeLayoutOf(join(workDir, 'layout'), typicalImageSizes(scale));
  // Another image (other bytes) of a small and a 5 MiB layer: both upload paths through the relay.
  const warmup = makeLayoutOf(join(workDir, 'warmup'), [64 * 1024, 5 * 2 ** 20], 'warmup');
  const skopeo = new Skopeo(join(workDir, 'skopeo'));
  const cpu: number[] = [];
  const user: number[] = [];
  const seconds: number[] = [];
  for (let i = 0; i < pushes; i++) {
    const reg = nothing
      ? await startNullRegistry()
      : distribution
        ? await startDistribution(store, ctx)
        : await startBerth(store, ctx, { lambda: target === 'lambda' });
    let relay: Server | undefined;
    try {
      let host = reg.host;
      if (target === 'lambda') {
        ({ relay, host } = await startRelay(workDir, reg.url));
      }
      if (warm) await skopeo.push(warmup.dir, warmup.tag, `${host}/bench/warmup:latest`);
      const cpu0 = cpuSplit(reg.server.pid);
      const push = await skopeo.push(layout.dir, layout.tag, `${host}/bench/push:run${i}`);
      const cpu1 = cpuSplit(reg.server.pid);
      user.push(cpu1.user - cpu0.user);
      cpu.push(cpu1.user + cpu1.system - cpu0.user - cpu0.system);
      seconds.push(push.seconds);
    } finally {
      await relay?.stop();
      await reg.server.stop();
      if (reg.dataDir) rmSync(reg.dataDir, { recursive: true, force: true });
    }
  }
  const gib = layout.bytes / GiB;
  process.stdout.write(
    `${nothing ? 'The null registry (stores nothing)' : `${distribution ? 'Distribution' : 'Berth'} ${target === 'lambda' ? 'Lambda gateway (via berth relay)' : 'serve'}${warm ? ' (warmed up)' : ''}, ${store === 'fs' ? 'filesystem' : 'S3'}`}: push ${layout.layers} layers, ` +
      `${(layout.bytes / 2 ** 20).toFixed(1)} MiB: median ${median(seconds).toFixed(2)} s, server CPU median ` +
      `${median(cpu).toFixed(2)} s (${(median(cpu) / gib).toFixed(1)} CPU-s/GiB; ${cpu.map((c) => c.toFixed(2)).join(' ')}), of which user ${median(user).toFixed(2)} s\n` +
      `load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}\n`,
  );
} finally {
  await s3?.stop();
  rmSync(workDir, { recursive: true, force: true });
}

/** bench/null-registry.ts on a free port, as a Registry (it has no storage: `dataDir` is unset). */
async function startNullRegistry(): Promise<Registry> {
  const port = await freePort();
  const file = fileURLToPath(new URL('./null-registry.ts', import.meta.url));
  const server = Server.start('null registry', process.execPath, ['--import', 'tsx', file, String(port)]);
  const url = `http://127.0.0.1:${port}`;
  await server.waitHttp(`${url}/v2/`);
  return { kind: 'berth', store, url, host: `127.0.0.1:${port}`, server };
}
