import { writes, type Call, type Decision } from './controlled-store.ts';
import type { Rng } from './rng.ts';

/**
 * Releases storage calls one at a time in a seeded order. Every call the registry makes waits here
 * until it is picked; between two picks all JavaScript that can run does (microtasks, nextTicks),
 * so every actor is either done or waiting on one of these calls. A pick also advances the simulated
 * clock a little, and decides the call's fate (run, fail, lose its answer, crash its container).
 */

export interface FaultRates {
  /** A write (or read) refused: the caller sees StorageUnavailable. */
  readonly fail: number;
  /** A write that happened but whose answer was lost. */
  readonly lose: number;
  /** A listing page cut short (truncated, fewer keys). */
  readonly short: number;
  /** The caller's container dies at a write (before it reaches the store, or after). */
  readonly crash: number;
}

export const NO_FAULTS: FaultRates = { fail: 0, lose: 0, short: 0, crash: 0 };

interface PendingCall {
  readonly kind: 'call';
  readonly call: Call;
  readonly resolve: (decision: Decision) => void;
}

interface PendingSleep {
  readonly kind: 'sleep';
  readonly ms: number;
  readonly resolve: () => void;
}

type Pending = PendingCall | PendingSleep;

export class Scheduler {
  private readonly pending: Pending[] = [];
  /** Calls let through whose work at the store has not finished yet. */
  private readonly running = new Map<number, () => void>();
  steps = 0;
  crashes = 0;
  faults = 0;
  /** Containers that may crash (the final check runs in one that may not). */
  readonly crashable = new Set<string>();
  rates: FaultRates = NO_FAULTS;
  maxCrashes = 2;

  constructor(
    private readonly rng: Rng,
    private readonly clock: { now: number; set(ms: number): void },
  ) {}

  /** The ControlledStore reports a call's end here. */
  readonly done = (call: Call): void => {
    this.running.get(call.seq)?.();
    this.running.delete(call.seq);
  };

  /** The gate for the ControlledStore: the call waits for its pick. */
  readonly gate = (call: Call): Promise<Decision> =>
    new Promise<Decision>((resolve) => this.pending.push({ kind: 'call', call, resolve }));

  /** A sleep that other actors' calls interleave with; its pick moves the clock on by `ms`. */
  readonly sleep = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => this.pending.push({ kind: 'sleep', ms, resolve }));

  /** Runs picks until `done()` and nothing is pending; throws if actors wait on something else. */
  async run(done: () => boolean, maxSteps = 200_000): Promise<void> {
    for (;;) {
      await settle(() => this.pending.length);
      if (this.pending.length === 0) {
        if (done()) return;
        // Something other than a storage call or a sleep is awaited: let timers of 0 ms run, then judge.
        for (let i = 0; i < 20 && this.pending.length === 0 && !done(); i++) await settle(() => 0);
        if (this.pending.length === 0) {
          if (done()) return;
          throw new Error('simulation stuck: actors wait on something that is not a storage call');
        }
      }
      if (++this.steps > maxSteps) throw new Error(`simulation did not finish in ${maxSteps} steps`);
      const index = this.rng.int(0, this.pending.length - 1);
      const [picked] = this.pending.splice(index, 1) as [Pending];
      this.clock.set(this.clock.now + this.rng.int(1, 20));
      if (picked.kind === 'sleep') {
        this.clock.set(this.clock.now + picked.ms);
        picked.resolve();
      } else {
        // Waits for the store to finish the call (a filesystem or S3 call is real I/O), so that the
        // next pick happens only when every actor is waiting again.
        const finished = new Promise<void>((resolve) => this.running.set(picked.call.seq, resolve));
        picked.resolve(this.decide(picked.call));
        await finished;
      }
    }
  }

  private decide(call: Call): Decision {
    const r = this.rates;
    const write = writes(call.op);
    const x = this.rng.next();
    const container = call.actor?.container;
    if (
      write &&
      container !== undefined &&
      this.crashable.has(container) &&
      this.crashes < this.maxCrashes &&
      x < r.crash
    ) {
      this.crashes++;
      return this.rng.chance(0.5) ? 'crash-before' : 'crash-after';
    }
    if (x < r.crash + r.fail) {
      this.faults++;
      return 'fail';
    }
    if (write && x < r.crash + r.fail + r.lose) {
      this.faults++;
      return 'lose';
    }
    if (call.op === 'list' && this.rng.chance(r.short)) return 'short';
    return 'run';
  }
}

/**
 * Lets what is runnable run. Most continuations are promise reactions: a few dozen microtask turns
 * let them reach their next storage call, and are far cheaper than a macrotask. Then a setImmediate,
 * before which nextTicks (Node streams) and the remaining microtasks drain. Both are deterministic:
 * the same code takes the same turns.
 */
async function settle(pending: () => number): Promise<void> {
  for (let i = 0; i < 40; i++) await null;
  if (pending() === 0) await new Promise((resolve) => setImmediate(resolve));
}
