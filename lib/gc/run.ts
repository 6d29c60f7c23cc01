import type { Registry, RegistryStore } from '../registry/registry.ts';
import type { StorageDriver } from '../storage/port.ts';
import type { GcOptions } from './options.ts';
import { renewLock, saveState, type GcState, type HeldLock } from './state.ts';

/** What a paused run needs to save its progress. */
export const SAVE_MARGIN_MS = 30_000;
/** How long the lock holds without renewal; a run renews it at least every LOCK_RENEW_MS. */
export const LOCK_LEASE_MS = 5 * 60_000;
const LOCK_RENEW_MS = 60_000;
/** Progress within a phase is saved at least this often, so a crash costs little repeated work. */
const SAVE_EVERY_MS = 10_000;
export const CONCURRENCY = 16;

/**
 * One collection's working context, shared by its phases (mark.ts, sweep.ts, set-aside.ts): the store,
 * the options, the state that is saved between invocations, and the bookkeeping every phase needs
 * (time left, the lock, saving progress).
 */
export class Run {
  readonly registry: Registry;
  /** The raw store: a collection works on the layout itself, handed the store by lib/setup. */
  readonly storage: StorageDriver;
  /** Digests of blobs something still needs. */
  readonly keep: Set<string>;
  /** Data objects a blob pointer names. */
  readonly named: Set<string>;
  /** Upload sessions that existed at the session snapshot. */
  readonly sessions: Set<string>;
  readonly now: () => number;
  private lastSave: number;
  private lastRenew: number;

  constructor(
    store: RegistryStore,
    readonly options: GcOptions,
    readonly state: GcState,
    /** The etag of the last saved state (undefined: none saved yet); saves are conditional on it. */
    private stateEtag: string | undefined,
    /** The lock this run holds (a dry run holds none). */
    private readonly lock: HeldLock | undefined,
  ) {
    this.registry = store.registry;
    this.storage = store.storage;
    this.keep = new Set(state.keepBlobs);
    this.named = new Set(state.namedData);
    this.sessions = new Set(state.sessions);
    this.now = options.now ?? Date.now;
    this.lastSave = this.now();
    this.lastRenew = this.now();
  }

  /** Ages are measured from the run's start (store clock): anything newer than this is left alone. */
  get cutoff(): number {
    return this.state.startedAt - this.options.graceMs;
  }

  outOfTime(): boolean {
    return this.options.remainingMs !== undefined && this.options.remainingMs() < SAVE_MARGIN_MS;
  }

  progress(message: string, fields?: Record<string, unknown>): void {
    this.options.onProgress?.(message, { runId: this.state.runId, ...fields });
  }

  /** Saves progress (conditional on the last save: another run that took over makes this throw). */
  async save(): Promise<void> {
    if (!this.lock) return;
    this.state.keepBlobs = [...this.keep];
    this.state.namedData = [...this.named];
    this.state.sessions = [...this.sessions];
    this.stateEtag = await saveState(this.storage, this.state, this.stateEtag);
    this.lastSave = this.now();
  }

  /**
   * Called between units of work: renews the lock when due (throws GcPreempted if another run took
   * it), and saves progress when the last save is older than SAVE_EVERY_MS or `force`.
   */
  async checkpoint(force = false): Promise<void> {
    if (!this.lock) return;
    const now = this.now();
    if (now - this.lastRenew >= LOCK_RENEW_MS) {
      await renewLock(this.storage, this.lock, LOCK_LEASE_MS, now);
      this.lastRenew = now;
    }
    if (force || now - this.lastSave >= SAVE_EVERY_MS) await this.save();
  }
}
