/**
 * The per-request cost of a pull, on its own: one push of an image of many small layers to Berth
 * and to Distribution 2.8 (both on one private MinIO), then many `skopeo copy` pulls of it,
 * alternating the two registries, each pull's seconds and the server's CPU seconds measured.
 * Prints medians; with `BENCH_BERTH_NODE_ARGS="--cpu-prof --cpu-prof-dir=<dir>"` Berth writes a
 * CPU profile when it stops.
 *
 *   npm run build && npx tsx bench/pull-profile.ts            # 32 x 128 KiB, 9 pulls each
 *   BENCH_LAYERS=64 BENCH_LAYER_SIZE=4194304 BENCH_PULLS=5 npx tsx bench/pull-profile.ts
 *   BENCH_STORE=fs npx tsx bench/pull-profile.ts               # the filesystem store instead
 *   BENCH_ONLY=berth npx tsx bench/pull-profile.ts             # Berth alone (for a profile)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startS3Server } from '../test/storage/s3-server.ts';
import { Skopeo } from './lib/clients.ts';
import { makeLayout } from './lib/images.ts';
import { cpuSeconds } from './lib/proc.ts';
import {
  label,
  startRegistry,
  type Context,
  type Kind,
  type Registry,
  type Store,
} from './lib/registries.ts';

const layers = Number(process.env.BENCH_LAYERS ?? 32);
const layerSize = Number(process.env.BENCH_LAYER_SIZE ?? 128 * 1024);
const pulls = Number(process.env.BENCH_PULLS ?? 9);
const store = (process.env.BENCH_STORE ?? 's3') as Store;
const kinds: Kind[] =
  process.env.BENCH_ONLY === 'berth'
    ? ['berth']
    : process.env.BENCH_ONLY === 'distribution'
      ? ['distribution']
      : ['berth', 'distribution'];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const workDir = mkdtempSync(join(tmpdir(), 'berth-pull-profile-'));
const ctx: Context = { workDir };
const registries: Registry[] = [];
const s3 = store === 'fs' ? undefined : await startS3Server();
ctx.s3 = s3;
try {
  const layout = makeLayout(join(workDir, 'layout'), layers, layerSize);
  const skopeo = new Skopeo(join(workDir, 'skopeo'));
  const pushed = new Map<Kind, { reg: Registry; ref: string }>();
  for (const kind of kinds) {
    const reg = await startRegistry(kind, store, ctx);
    registries.push(reg);
    const ref = `${reg.host}/bench/pull:latest`;
    const push = await skopeo.push(layout.dir, layout.tag, ref);
    process.stderr.write(
      `${label(kind, store)}: pushed ${layers} x ${layerSize} B in ${push.seconds.toFixed(2)} s\n`,
    );
    pushed.set(kind, { reg, ref });
  }
  const seconds = new Map<Kind, number[]>(kinds.map((k) => [k, []]));
  const cpu = new Map<Kind, number[]>(kinds.map((k) => [k, []]));
  for (let i = 0; i < pulls; i++) {
    for (const kind of i % 2 ? [...kinds].reverse() : kinds) {
      const { reg, ref } = pushed.get(kind)!;
      const dir = join(workDir, `pulled-${kind}-${i}`);
      const cpu0 = cpuSeconds(reg.server.pid);
      const pull = await skopeo.pull(ref, dir, 'pulled');
      cpu.get(kind)!.push(cpuSeconds(reg.server.pid) - cpu0);
      seconds.get(kind)!.push(pull.result.seconds);
      if (pull.digest !== layout.manifestDigest) throw new Error(`${kind}: pulled ${pull.digest}`);
      rmSync(dir, { recursive: true, force: true });
    }
  }
  for (const kind of kinds) {
    const s = seconds.get(kind)!;
    const c = cpu.get(kind)!;
    process.stdout.write(
      `${label(kind, store)}: pull ${layers} x ${layerSize} B: median ${median(s).toFixed(3)} s ` +
        `(${Math.min(...s).toFixed(3)}-${Math.max(...s).toFixed(3)}), server CPU median ${(median(c) * 1000).toFixed(0)} ms ` +
        `(${((median(c) * 1000) / layers).toFixed(2)} ms per blob)\n`,
    );
  }
  process.stdout.write(
    `load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
} finally {
  for (const reg of registries) await reg.server.stop();
  await s3?.stop();
  rmSync(workDir, { recursive: true, force: true });
}
