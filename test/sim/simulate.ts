import { fsck } from '../../lib/fsck/fsck.ts';
import { collectGarbage } from '../../lib/gc/collector.ts';
import { storeTime } from '../../lib/registry/store-clock.ts';
import type { StorageDriver } from '../../lib/storage/port.ts';
import { Client, makePool } from './clients.ts';
import { ControlledStore } from './controlled-store.ts';
import {
  acknowledgedTags,
  fsckAgrees,
  linksServe,
  nothingUnaccounted,
  repushes,
  tagsPull,
} from './invariants.ts';
import { Rng } from './rng.ts';
import type { FaultRates } from './scheduler.ts';
import { seedUuids } from './uuid.ts';
import { Container, LEASE_MS, UPLOAD_TTL_MS, World } from './world.ts';

/*
 * One schedule, from its seed to its verdict: clients and maintenance run against a store through
 * several registry processes under the seeded scheduler, with faults and crashes; then the janitor
 * and a collection run to completion in a quiet world, and the invariants are checked.
 */

export interface SimConfig {
  /** The store under the simulation (a fresh one per schedule). */
  readonly makeStore: (clock: () => number) => Promise<StorageDriver>;
  /** The clock the code under test reads (vi.setSystemTime in the test). */
  readonly setTime: (ms: number) => void;
  readonly faults: FaultRates;
  /** Largest number of clients / operations per client / containers. */
  readonly maxClients: number;
  readonly maxOps: number;
  readonly maxContainers: number;
  /** Chance that a schedule includes a blob larger than a part (a multipart upload). */
  readonly bigBlobChance: number;
}

export interface SimResult {
  readonly seed: number;
  readonly problems: string[];
  readonly trace: string[];
  readonly stats: {
    steps: number;
    calls: number;
    crashes: number;
    faults: number;
    gcRuns: number;
    ops: number;
  };
}

/** A fixed point in time, not today's: the simulated clock starts here and only moves with the schedule. */
const EPOCH = Date.UTC(2030, 0, 1);

/** Waits (real time) until the store's clock is in a later whole second than now. */
async function nextStoreSecond(storage: StorageDriver): Promise<void> {
  if (storage.name !== 's3') return; // the others stamp milliseconds or finer
  const next = Math.floor((await storeTime(storage)) / 1000) * 1000 + 1000;
  while ((await storeTime(storage)) < next) await new Promise((resolve) => setTimeout(resolve, 50));
}

export async function simulate(seed: number, config: SimConfig): Promise<SimResult> {
  const rng = new Rng(seed);
  seedUuids(seed ^ 0x5bd1e995);
  const clock = {
    now: EPOCH,
    set(ms: number) {
      this.now = ms;
      config.setTime(ms);
    },
  };
  clock.set(EPOCH);
  const inner = await config.makeStore(() => clock.now);
  const world = new World(rng, inner, clock, {
    containers: rng.int(1, config.maxContainers),
    faults: config.faults,
    maxCrashes: rng.int(0, 3),
  });
  const pool = makePool(rng, { bigBlob: rng.chance(config.bigBlobChance) });
  const clients = Array.from(
    { length: rng.int(1, config.maxClients) },
    (_, i) => new Client(`client${i}`, world, rng, pool),
  );
  let gcRuns = 0;
  const maintenance = async () => {
    for (let i = rng.int(0, 3); i > 0; i--) {
      await world.scheduler.sleep(rng.int(0, 2_000));
      if (rng.chance(0.3)) await world.janitor();
      else {
        gcRuns++;
        // Some collections apply a retention rule to team/*: keep the newest tag, delete the others.
        const retention = rng.chance(0.3) ? [{ repositories: 'team/*', keepLast: 1 }] : [];
        if (retention.length > 0) world.record({ client: 'janitor', op: 'retention', repo: 'team/*' });
        await world.gc({ deleteUntagged: rng.chance(0.5), retention });
      }
    }
  };
  const problems: string[] = [];
  let done = false;
  const actors = Promise.all([...clients.map((c) => c.run(rng.int(1, config.maxOps))), maintenance()]).then(
    () => {
      done = true;
    },
    (err: unknown) => {
      problems.push(`an actor failed: ${err instanceof Error ? err.message : String(err)}`);
      done = true;
    },
  );
  await world.scheduler.run(() => done);
  await actors;

  // Quiet: the clients are gone; time passes beyond every lease and the upload TTL; the janitor
  // sweeps and a collection runs to completion, with no faults, in a fresh process.
  // The store's clock is its own: the memory store's follows the simulated one, the filesystem's and
  // S3's are real and have moved milliseconds, so everything is judged stale with a TTL of zero, once
  // the store's clock has passed the whole second the last write was stamped in (S3 keeps seconds).
  // Through a store that runs every call as it comes, only to keep the calls in the replay trace.
  const quietStore = new ControlledStore(inner);
  const quiet = new Container('final', quietStore);
  clock.set(clock.now + UPLOAD_TTL_MS + LEASE_MS + 1);
  await nextStoreSecond(inner);
  await quiet.registry.uploads.purgeStale(0);
  // The first run to finish may be one a crashed or paused collection left, resumed with the plan
  // of its own mark; the run after it marks the quiet store. That one takes its session snapshot
  // with no write in flight, so every object no session owns is an orphan, however young (the
  // filesystem's and S3's clocks cannot jump past the orphan minimum age as the memory store's can).
  // The resumed one keeps the minimum: its snapshot is from the busy phase.
  let finished = 0;
  for (let attempt = 0; finished < 2; attempt++) {
    const result = await collectGarbage(quiet, {
      ...(finished === 1 && { orphanMinAgeMs: 0 }),
      graceMs: 0,
      deleteUntagged: false,
      retention: [],
      immutable: [],
      uploadTtlMs: 0,
      settleMs: 5 * 60_000,
      dryRun: false,
      sleep: async (ms) => clock.set(clock.now + ms),
    });
    await nextStoreSecond(inner);
    if (result.status === 'done') {
      finished++;
      continue;
    }
    if (attempt > 6) {
      problems.push(`the final collection did not finish (${result.status})`);
      break;
    }
    // A collection that crashed holds its lock until the lease ends.
    clock.set(clock.now + 6 * 60_000);
  }
  problems.push(...(await tagsPull(quiet, inner, world.history)));
  problems.push(...(await acknowledgedTags(quiet, world.history)));
  problems.push(...(await linksServe(quiet, inner)));
  problems.push(...(await nothingUnaccounted(inner)));
  problems.push(...(await repushes(quiet, pool.blobs)));
  // berth fsck must agree: nothing broken or inconsistent (leftovers are the collection's business).
  const report = await fsck(quiet, { uploadTtlMs: 0, graceMs: 0, recheckDelayMs: 0 });
  problems.push(...fsckAgrees(report, world.history));
  return {
    seed,
    problems,
    trace: [...world.store.trace, ...quietStore.trace.map((line) => `quiet: ${line}`)],
    stats: {
      steps: world.scheduler.steps,
      calls: world.store.trace.length,
      crashes: world.scheduler.crashes,
      faults: world.scheduler.faults,
      gcRuns,
      ops: world.history.length,
    },
  };
}
