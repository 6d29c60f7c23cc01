import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FilesystemDriver } from '../../lib/storage/filesystem/index.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { S3Driver } from '../../lib/storage/s3/index.ts';
import { minioInstalled, startS3Server, testS3Client, type S3TestServer } from '../storage/s3-server.ts';
import { simulate, type SimConfig, type SimResult } from './simulate.ts';
import { nextUuid } from './uuid.ts';

// Every id the code under test makes comes from the schedule's seed (./uuid.ts).
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  const { nextUuid: uuid } = await import('./uuid.ts');
  return { ...actual, randomUUID: uuid, default: { ...actual, randomUUID: uuid } };
});

/*
 * The deterministic simulation (RELIABILITY.md). Environment:
 *   BERTH_SIM_RUNS   schedules to run (default 1500 on the memory store, 40 on the others)
 *   BERTH_SIM_SEED   the first seed (default 1); a failure prints the seed that replays it
 *   BERTH_SIM_STORE  memory (default), filesystem, s3
 *   BERTH_SIM_FAULTS fault rates for a stress sweep, e.g. crash=0.05,fail=0.02 (defaults below)
 * Replay one schedule: BERTH_SIM_SEED=<seed> BERTH_SIM_RUNS=1 npx vitest run test/sim
 */

const STORE = (process.env.BERTH_SIM_STORE ?? 'memory') as 'memory' | 'filesystem' | 's3';
const RUNS = Number(process.env.BERTH_SIM_RUNS ?? (STORE === 'memory' ? 1500 : 40));
const FIRST = Number(process.env.BERTH_SIM_SEED ?? 1);
// BERTH_SIM_FAULTS=crash=0.05,fail=0.02 changes rates for a stress sweep (the same seed is then
// another schedule; a failure's replay line names the rates).
const BASE_FAULTS = { fail: 0.01, lose: 0.01, short: 0.1, crash: 0.01 };
const FAULTS = {
  ...BASE_FAULTS,
  ...Object.fromEntries(
    (process.env.BERTH_SIM_FAULTS ?? '')
      .split(',')
      .filter((pair) => pair.includes('='))
      .map((pair) => {
        const [name, value] = pair.split('=') as [string, string];
        if (!['fail', 'lose', 'short', 'crash'].includes(name) || !(Number(value) >= 0))
          throw new Error(`BERTH_SIM_FAULTS: ${pair}: expected fail|lose|short|crash=<probability>`);
        return [name, Number(value)];
      }),
  ),
};

const dirs: string[] = [];
let s3: S3TestServer | undefined;

function config(): SimConfig {
  return {
    setTime: (ms) => vi.setSystemTime(ms),
    faults: FAULTS,
    maxClients: 4,
    maxOps: 6,
    maxContainers: STORE === 'filesystem' ? 1 : 3,
    bigBlobChance: STORE === 'memory' ? 0.02 : 0.1,
    makeStore: async (clock) => {
      if (STORE === 'memory') return new MemoryDriver({ clock, direct: true });
      if (STORE === 'filesystem') {
        const root = await mkdtemp(join(tmpdir(), 'berth-sim-'));
        dirs.push(root);
        return new FilesystemDriver({ root });
      }
      s3 ??= await startS3Server();
      return new S3Driver({ client: testS3Client(s3), bucket: s3.bucket, prefix: `sim-${nextUuid()}` });
    },
  };
}

function replay(result: SimResult, faults = process.env.BERTH_SIM_FAULTS): string {
  // BERTH_SIM_TRACE=<text>: also print every storage call whose line contains it (the quiet phase's
  // calls, the janitor and final collection after the schedule, start with `quiet:`).
  const grep = process.env.BERTH_SIM_TRACE;
  const matching = grep
    ? `\nstorage calls matching ${grep}:\n  ${result.trace.filter((l) => l.includes(grep)).join('\n  ')}`
    : '';
  return (
    `schedule ${result.seed} broke an invariant on the ${STORE} store:\n  ${result.problems.join('\n  ')}\n` +
    `replay: BERTH_SIM_STORE=${STORE}${faults ? ` BERTH_SIM_FAULTS=${faults}` : ''} BERTH_SIM_SEED=${result.seed} BERTH_SIM_RUNS=1 npx vitest run test/sim\n` +
    `last storage calls of the schedule:\n  ${result.trace
      .filter((l) => !l.startsWith('quiet: '))
      .slice(-25)
      .join('\n  ')}${matching}`
  );
}

describe.skipIf(STORE === 's3' && !minioInstalled && process.env.CI !== 'true')(
  `deterministic simulation on the ${STORE} store`,
  () => {
    beforeEach(() => vi.useFakeTimers({ toFake: ['Date'] }));
    afterEach(() => vi.useRealTimers());
    afterAll(async () => {
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
      await s3?.stop();
    });

    // Schedules outside the seeds above that once broke an invariant, kept as they were found (a
    // change to the simulation's choices gives a seed another schedule, so each names what it found
    // then; RELIABILITY.md lists them). 5321: a stale direct-upload session's sweep deleted data a
    // collection had set the blob aside with (HEAD 200, GET 404 once the blob was put back). 5889: a
    // collection that crashed after setting a blob aside was resumed, saw a link a push had written
    // again meanwhile, and skipped the blob without recording its move; the blob's copy went with the
    // run's leftovers (tags 404, links naming data that was gone). 50916, with five times the crash
    // rate: a collection's session snapshot fell between a first PATCH's tail and its session write
    // (the POST wrote nothing); it crashed, was resumed with that snapshot and a TTL of 0, and
    // deleted the tail a completed push had made a blob's data (HEAD 200, GET 404).
    it.skipIf(STORE !== 'memory')('holds every invariant over the schedules that found bugs', async () => {
      const found: [number, Partial<typeof BASE_FAULTS>][] = [
        [5321, {}],
        [5889, {}],
        [50916, { crash: 0.05 }],
      ];
      for (const [seed, rates] of found) {
        const result = await simulate(seed, { ...config(), faults: { ...BASE_FAULTS, ...rates } });
        const named = Object.entries(rates).map(([name, rate]) => `${name}=${rate}`);
        if (result.problems.length > 0) expect.fail(replay(result, named.join(',')));
      }
    });

    it(
      `holds every invariant over ${RUNS} seeded schedules (from seed ${FIRST})`,
      async () => {
        const totals = { steps: 0, calls: 0, crashes: 0, faults: 0, gcRuns: 0, ops: 0 };
        for (let seed = FIRST; seed < FIRST + RUNS; seed++) {
          const result = await simulate(seed, config()).catch((err: unknown) => ({
            seed,
            problems: [`the schedule could not run: ${err instanceof Error ? err.message : String(err)}`],
            trace: [] as string[],
            stats: { steps: 0, calls: 0, crashes: 0, faults: 0, gcRuns: 0, ops: 0 },
          }));
          for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += result.stats[k];
          if (result.problems.length > 0) expect.fail(replay(result));
          if (STORE !== 'memory')
            await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
        }
        // Printed for RELIABILITY.md: how much was explored.
        process.stdout.write(`simulation (${STORE}): ${RUNS} schedules, ${JSON.stringify(totals)}\n`);
        // A run of many schedules must have explored crashes and collections (a replay of one need not).
        if (RUNS >= 20) {
          expect(totals.crashes).toBeGreaterThan(0);
          expect(totals.gcRuns).toBeGreaterThan(0);
        }
        // Long sweeps (BERTH_SIM_RUNS in the thousands) get time in proportion, on a loaded machine too.
      },
      Math.max(600_000, RUNS * (STORE === 'memory' ? 250 : 15_000)),
    );

    // On the filesystem and S3 the store stamps objects with the real clock, so ages (and what a
    // collection decides) can differ by a millisecond between two runs: exact replay is the memory store's.
    it.skipIf(STORE !== 'memory')(
      'replays a schedule exactly from its seed',
      async () => {
        // The first schedule from FIRST with a few hundred storage calls: a replay worth comparing.
        let seed = FIRST;
        let a = await simulate(seed, config());
        while (a.trace.length < 300) a = await simulate(++seed, config());
        const b = await simulate(seed, config());
        expect(b.problems).toEqual(a.problems);
        expect(b.trace).toEqual(a.trace);
      },
      120_000,
    );
  },
);
