/** How failed logins are slowed down; see LoginThrottle. */
export interface ThrottleSettings {
  /** Failed logins for one account from one address before each further one locks that pair. */
  readonly freeFailures: number;
  /** The first lock; each further failure doubles it, up to `maxLockMs`. */
  readonly baseLockMs: number;
  readonly maxLockMs: number;
  /** Failed logins from one address, for any accounts, within `windowMs` before the address is locked. */
  readonly sourceFailures: number;
  /** Failed logins from one address within the window after which its checks are spaced `sourceSpacingMs` apart. */
  readonly sourceSlowAfter: number;
  readonly sourceSpacingMs: number;
  /** How long failures are remembered (and a locked address stays locked). */
  readonly windowMs: number;
  /** Password checks running at once in the process (each is about 32 MiB and tens of ms of CPU). */
  readonly concurrency: number;
  /**
   * Password checks one address may have running at once: below `concurrency`, so a flood from one
   * address always leaves a slot to everyone else.
   */
  readonly perSourceConcurrency: number;
  /** Password checks one address may have running or waiting; more are refused at once. */
  readonly perSourcePending: number;
  /** Accounts-and-addresses remembered at most; the oldest are forgotten first. */
  readonly maxEntries: number;
}

export const DEFAULT_THROTTLE: ThrottleSettings = {
  freeFailures: 5,
  baseLockMs: 1_000,
  maxLockMs: 15 * 60_000,
  sourceFailures: 50,
  sourceSlowAfter: 10,
  sourceSpacingMs: 1_000,
  windowMs: 15 * 60_000,
  concurrency: 2,
  perSourceConcurrency: 1,
  perSourcePending: 8,
  maxEntries: 10_000,
};

export type Attempt<T> =
  | { readonly outcome: 'checked'; readonly ok: boolean; readonly value: T }
  | {
      readonly outcome: 'throttled';
      /** Whose attempts are locked: this account from this address, or this address for any account. */
      readonly scope: 'account' | 'source';
      readonly retryAfterSeconds: number;
      /** True for the first refusal of a lock (log it once, not once per attempt). */
      readonly first: boolean;
    };

interface PairState {
  failures: number;
  inFlight: number;
  lastFailure: number;
  lockedUntil: number;
  reported: number;
}

interface SourceState {
  failures: number;
  windowStart: number;
  pending: number;
  reported: number;
  /** Once the address has failed `sourceSlowAfter` times: when its next check may run. */
  nextCheckAt: number;
}

/**
 * Slows down password guessing without locking out the real user or slowing anyone else:
 *
 * - Failures are counted per account AND source address together: after `freeFailures` for a
 *   pair, that pair is locked for 1 s, then 2 s, 4 s ... up to 15 minutes, and its attempts are
 *   refused (429 with Retry-After) without checking the password. The same account from another
 *   address is not affected.
 * - An address with `sourceSlowAfter` failures (any accounts) within the window gets one check a
 *   second, and with `sourceFailures` it is locked for the rest of the window: guessing across many
 *   accounts from one place slows, then stops.
 * - A refused attempt costs a map lookup. Password checks (scrypt, deliberately expensive) run at
 *   most `concurrency` at once, taken from each waiting address in turn; one address runs at most
 *   `perSourceConcurrency` of them and may have `perSourcePending` waiting: a flood from one
 *   address waits behind itself and leaves a slot free for everyone else.
 *
 * State lives in this process: on Lambda each container counts on its own (docs/lambda.md).
 */
export class LoginThrottle {
  private readonly pairs = new Map<string, PairState>();
  private readonly sources = new Map<string, SourceState>();
  private readonly slots: FairSlots;

  constructor(
    private readonly settings: ThrottleSettings = DEFAULT_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {
    this.slots = new FairSlots(settings.concurrency, settings.perSourceConcurrency);
  }

  /** Runs `check` (the password check) unless the pair or the address is locked; counts the result. */
  async attempt<T>(
    account: string,
    source: string,
    check: () => Promise<{ ok: boolean; value: T }>,
  ): Promise<Attempt<T>> {
    const t = this.now();
    const pairKey = `${account.toLowerCase()}\u0000${source}`;
    const pair = this.pairState(pairKey, t);
    const src = this.sourceState(source, t);
    const { freeFailures, sourceFailures, perSourcePending } = this.settings;

    if (pair.lockedUntil > t) return this.refuse('account', pair, pair.lockedUntil - t);
    // Past the free failures, one attempt at a time: a burst must not run many checks at once.
    if (pair.inFlight >= Math.max(1, freeFailures - pair.failures)) return this.refuse('account', pair, 1000);
    if (src.failures >= sourceFailures) {
      return this.refuse('source', src, src.windowStart + this.settings.windowMs - t);
    }
    if (src.pending >= perSourcePending) return this.refuse('source', src, 1000);
    if (src.failures >= this.settings.sourceSlowAfter) {
      if (t < src.nextCheckAt) return this.refuse('source', src, src.nextCheckAt - t);
      src.nextCheckAt = t + this.settings.sourceSpacingMs;
    }

    pair.inFlight++;
    src.pending++;
    let result: { ok: boolean; value: T } | undefined;
    try {
      await this.slots.acquire(source);
      try {
        result = await check();
      } finally {
        this.slots.release(source);
      }
    } finally {
      pair.inFlight--;
      src.pending--;
      this.settle(pairKey, pair, source, src, result?.ok);
    }
    return { outcome: 'checked', ok: result!.ok, value: result!.value };
  }

  private settle(
    pairKey: string,
    pair: PairState,
    source: string,
    src: SourceState,
    ok: boolean | undefined,
  ) {
    const t = this.now();
    if (ok === true) {
      this.pairs.delete(pairKey);
    } else if (ok === false) {
      pair.failures++;
      pair.lastFailure = t;
      const over = pair.failures - this.settings.freeFailures;
      if (over >= 0) {
        pair.lockedUntil =
          t + Math.min(this.settings.maxLockMs, this.settings.baseLockMs * 2 ** Math.min(over, 30));
      }
      src.failures++;
    }
    if (pair.failures === 0 && pair.inFlight === 0) this.pairs.delete(pairKey);
    if (src.failures === 0 && src.pending === 0) this.sources.delete(source);
  }

  private refuse(
    scope: 'account' | 'source',
    state: PairState | SourceState,
    waitMs: number,
  ): Attempt<never> {
    const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
    // One log line per lock: `reported` remembers the lock (or the second) it was made for.
    const lockId = 'lockedUntil' in state ? state.lockedUntil : state.windowStart;
    const first = state.reported !== lockId;
    state.reported = lockId;
    return { outcome: 'throttled', scope, retryAfterSeconds, first };
  }

  private pairState(key: string, t: number): PairState {
    let pair = this.pairs.get(key);
    // Failures older than the window are forgotten, unless a lock still runs.
    if (
      pair &&
      pair.inFlight === 0 &&
      pair.lockedUntil <= t &&
      t - pair.lastFailure > this.settings.windowMs
    ) {
      this.pairs.delete(key);
      pair = undefined;
    }
    if (!pair) {
      pair = { failures: 0, inFlight: 0, lastFailure: t, lockedUntil: 0, reported: -1 };
      this.remember(this.pairs, key, pair);
    }
    return pair;
  }

  private sourceState(source: string, t: number): SourceState {
    let src = this.sources.get(source);
    if (src && t - src.windowStart > this.settings.windowMs) {
      src.failures = 0;
      src.windowStart = t;
    }
    if (!src) {
      src = { failures: 0, windowStart: t, pending: 0, reported: -1, nextCheckAt: 0 };
      this.remember(this.sources, source, src);
    }
    return src;
  }

  /** Adds an entry, forgetting the oldest idle ones beyond `maxEntries` (memory stays bounded under a flood of names). */
  private remember<V extends { inFlight?: number; pending?: number }>(
    map: Map<string, V>,
    key: string,
    value: V,
  ) {
    map.set(key, value);
    if (map.size <= this.settings.maxEntries) return;
    for (const [oldKey, old] of map) {
      if (map.size <= this.settings.maxEntries) break;
      if ((old.inFlight ?? 0) === 0 && (old.pending ?? 0) === 0) map.delete(oldKey);
    }
  }

  /** For tests and figures: how many pairs and addresses are remembered. */
  get size(): { pairs: number; sources: number } {
    return { pairs: this.pairs.size, sources: this.sources.size };
  }
}

/**
 * At most `limit` holders at once, and at most `perSource` from one address; waiters are served
 * one address at a time in turn, so one address's queue cannot delay another's by more than one turn.
 */
class FairSlots {
  private running = 0;
  private readonly runningBy = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(
    private readonly limit: number,
    private readonly perSource: number,
  ) {}

  acquire(source: string): Promise<void> {
    if (
      this.running < this.limit &&
      (this.runningBy.get(source) ?? 0) < this.perSource &&
      !this.waiting.has(source)
    ) {
      this.take(source);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const queue = this.waiting.get(source);
      if (queue) queue.push(resolve);
      else this.waiting.set(source, [resolve]);
    });
  }

  release(source: string): void {
    this.running--;
    const left = (this.runningBy.get(source) ?? 1) - 1;
    if (left > 0) this.runningBy.set(source, left);
    else this.runningBy.delete(source);
    // The first address in line that may run another; it then goes to the back of the line.
    for (const [next, queue] of this.waiting) {
      if (this.running >= this.limit) return;
      if ((this.runningBy.get(next) ?? 0) >= this.perSource) continue;
      const resolve = queue.shift()!;
      this.waiting.delete(next);
      if (queue.length > 0) this.waiting.set(next, queue);
      this.take(next);
      resolve();
      return;
    }
  }

  private take(source: string): void {
    this.running++;
    this.runningBy.set(source, (this.runningBy.get(source) ?? 0) + 1);
  }
}
