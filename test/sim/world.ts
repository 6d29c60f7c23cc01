import { createHash } from 'node:crypto';
import { collectGarbage, type GcOptions } from '../../lib/gc/collector.ts';
import { Browse } from '../../lib/browse/browse.ts';
import { createApp } from '../../lib/http/app.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import { InMemoryHashStates } from '../../lib/registry/hashing.ts';
import { Registry } from '../../lib/registry/registry.ts';
import type { StorageDriver } from '../../lib/storage/port.ts';
import { ControlledStore } from './controlled-store.ts';
import type { Rng } from './rng.ts';
import { NO_FAULTS, Scheduler, type FaultRates } from './scheduler.ts';

/*
 * The simulated world: one store shared by several registry processes ("containers": Lambda
 * containers, or a local server and its restarts), clients pushing, tagging, deleting, cancelling
 * and pulling through them, the janitor and garbage collection running among them, and a history of
 * what every operation was told. Everything is driven by one seed (test/sim/simulation.test.ts).
 */

export const UPLOAD_TTL_MS = 10 * 60_000;
/**
 * How young a tail must be for a completion to publish it without a claim: shorter than the
 * registry's default (5 minutes, for TTLs of 15 minutes or more) so that, with the TTL above, a
 * tail the collection removes as an orphan is older than the window plus the 5 minutes a write may
 * take to land, as it is with the defaults (lib/registry/upload-session.ts, publishWindowFor).
 */
export const PUBLISH_WINDOW_MS = 2 * 60_000;
export const LEASE_MS = 60_000;
const PART_SIZE = 5 * 1024 * 1024;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A request that never got an answer: its container died under it. */
export const LOST = Symbol('lost');
export type Answer = { status: number; headers: Headers; body: Uint8Array } | typeof LOST;

export class Container {
  readonly registry: Registry;
  /** The store as this container sees it (what lib/setup hands gc and fsck beside the registry). */
  readonly storage: StorageDriver;
  private readonly app: ReturnType<typeof createApp>;
  dead = false;
  readonly died: Promise<typeof LOST>;
  private markDead!: () => void;

  constructor(
    readonly id: string,
    store: ControlledStore | StorageDriver,
    /** Direct uploads up to this size are verified within the completing request, larger ones in the background. */
    syncVerifyLimit = 1024 * 1024 * 1024,
  ) {
    const storage = store instanceof ControlledStore ? store.view({ container: id, name: id }) : store;
    this.storage = storage;
    this.registry = new Registry({
      storage,
      hashes: new InMemoryHashStates(),
      limits: {
        maxBlobSize: 64 * 1024 * 1024,
        partSize: PART_SIZE,
        leaseMs: LEASE_MS,
        publishWindowMs: PUBLISH_WINDOW_MS,
      },
      mountWithoutFrom: false,
      direct: { syncVerifyLimit },
    });
    this.app = createApp({
      registry: this.registry,
      logger: createLogger('silent'),
      redirect: { enabled: false, ttlSeconds: 0 },
      browse: new Browse({ registry: this.registry, storage }),
    });
    this.died = new Promise((resolve) => (this.markDead = () => resolve(LOST)));
  }

  kill(): void {
    this.dead = true;
    this.markDead();
  }

  /** One request, answered whole (body read), or LOST if the container dies first. */
  async request(_actor: string, path: string, init: RequestInit = {}): Promise<Answer> {
    if (this.dead) return LOST;
    const answer = (async () => {
      const res = await this.app.request(`http://registry.test${path}`, init, { incoming: { url: path } });
      return { status: res.status, headers: res.headers, body: new Uint8Array(await res.arrayBuffer()) };
    })();
    return Promise.race([answer, this.died]);
  }
}

/** What one operation was told, and when (scheduler steps). */
export interface Event {
  readonly client: string;
  readonly op: string;
  readonly repo: string;
  readonly tag?: string;
  readonly digest?: string;
  readonly start: number;
  end: number;
  /** ok: acknowledged; failed: refused (the client knows nothing was done); unknown: error or lost. */
  outcome: 'ok' | 'failed' | 'unknown';
}

export interface WorldOptions {
  readonly containers: number;
  readonly faults: FaultRates;
  readonly maxCrashes: number;
}

export class World {
  readonly store: ControlledStore;
  readonly scheduler: Scheduler;
  readonly containers: Container[] = [];
  readonly history: Event[] = [];
  /** Every container ever started, serving or not (the janitor's and collections' too). */
  private readonly all = new Map<string, Container>();
  private generation = 0;

  constructor(
    readonly rng: Rng,
    inner: StorageDriver,
    readonly clock: { now: number; set(ms: number): void },
    readonly options: WorldOptions,
  ) {
    this.scheduler = new Scheduler(rng, clock);
    this.scheduler.rates = options.faults;
    this.scheduler.maxCrashes = options.maxCrashes;
    this.store = new ControlledStore(inner, this.scheduler.gate);
    this.store.onCrash = (id) => this.restart(id);
    this.store.onDone = this.scheduler.done;
    for (let i = 0; i < options.containers; i++) this.start();
  }

  get step(): number {
    return this.scheduler.steps;
  }

  private start(): Container {
    const container = this.spawn('c');
    this.containers.push(container);
    return container;
  }

  private spawn(prefix: string): Container {
    // Some containers verify direct uploads in the background (as for blobs above the sync limit).
    const container = new Container(
      `${prefix}${this.generation++}`,
      this.store,
      this.rng.chance(0.3) ? 0 : 1024 * 1024 * 1024,
    );
    this.all.set(container.id, container);
    this.scheduler.crashable.add(container.id);
    return container;
  }

  /** A crashed container dies; a serving one is replaced by a fresh process (empty memory). */
  private restart(id: string): void {
    this.all.get(id)?.kill();
    const index = this.containers.findIndex((c) => c.id === id);
    if (index < 0) return;
    this.containers.splice(index, 1);
    this.start();
  }

  /**
   * What a client sends straight to the store (a direct upload's part, to its presigned URL): a call
   * of its own, which the scheduler orders with the rest.
   */
  readonly s3 = (): StorageDriver => this.store.view({ container: 'client-to-store', name: 'part' });

  /** A live container, as a load balancer would pick one. */
  pick(): Container {
    return this.rng.pick(this.containers);
  }

  record(event: Omit<Event, 'start' | 'end' | 'outcome'>): Event {
    const full: Event = { ...event, start: this.step, end: Infinity, outcome: 'unknown' };
    this.history.push(full);
    return full;
  }

  finish(event: Event, outcome: Event['outcome']): void {
    event.end = this.step;
    event.outcome = outcome;
  }

  /** Garbage collection as the janitor runs it, in a container of its own that may crash. */
  async gc(options: Partial<GcOptions>): Promise<'done' | 'paused' | 'locked' | 'lost' | 'error'> {
    const container = this.spawn('gc');
    let budget = this.rng.int(20, 400);
    const run = (() =>
      collectGarbage(container, {
        graceMs: 0,
        deleteUntagged: false,
        retention: [],
        immutable: [],
        uploadTtlMs: UPLOAD_TTL_MS,
        settleMs: 5 * 60_000,
        dryRun: false,
        sleep: (ms) => this.scheduler.sleep(ms),
        // Some runs run out of time (a janitor invocation ending) and pause with their progress saved.
        remainingMs: () => (budget-- > 0 ? 600_000 : 0),
        ...options,
      }).then(
        (result) => result.status,
        // A failed invocation (the store refused a call): the janitor's next one starts again.
        () => 'error' as const,
      ))();
    const result = await Promise.race([run, container.died]);
    return result === LOST ? 'lost' : result;
  }

  /** The janitor's sweep of stale sessions, in a container of its own. */
  async janitor(): Promise<'done' | 'lost' | 'error'> {
    const container = this.spawn('janitor');
    const run = container.registry.uploads.purgeStale(UPLOAD_TTL_MS).then(
      () => 'done' as const,
      () => 'error' as const,
    );
    const result = await Promise.race([run, container.died]);
    return result === LOST ? 'lost' : result;
  }

  /** After the schedule: one healthy container, no faults, for the final sweep and the checks. */
  quiet(): Container {
    this.scheduler.rates = NO_FAULTS;
    this.scheduler.crashable.clear();
    const container = new Container(`final${this.generation++}`, this.store);
    return container;
  }
}

export { OCI_INDEX, OCI_MANIFEST, PART_SIZE };
