import { GC_KEYS, loadState } from '../gc/state.ts';
import type { Registry, RegistryStore } from '../registry/registry.ts';
import type { StorageDriver } from '../storage/port.ts';
import type { RepositoryName } from '../oci/names.ts';
import type { Affected, Candidate, Finding } from './findings.ts';

export interface FsckOptions {
  /** Upload sessions and their leftovers untouched for this long are stale (BERTH_UPLOAD_TTL). */
  readonly uploadTtlMs: number;
  /** The least age of an orphan whatever the TTL, as garbage collection's (GcOptions.orphanMinAgeMs). */
  readonly orphanMinAgeMs?: number;
  /**
   * Garbage collection's grace period (BERTH_GC_GRACE): catalog and referrer entries it removes are
   * reported only once older than this, as the collection judges them.
   */
  readonly graceMs: number;
  /** Also read every blob's data back and check its digest (a scrub). */
  readonly verifyDigests?: boolean;
  /** Mend what is safe to mend (docs/fsck.md); never deletes a blob, a manifest or a tag. */
  readonly repair?: boolean;
  /**
   * `full` (berth fsck) reads every tag and manifest and heads every link and blob; `cheap` (the
   * janitor) checks what listings show, and spends at most `maxReads` reads and the time left on
   * heads of tags, blobs and their data (docs/fsck.md, "On AWS").
   */
  readonly mode?: 'full' | 'cheap';
  /** Cheap mode: the most object reads the first pass may make (default 5000). */
  readonly maxReads?: number;
  /** How long to wait before looking at each finding again (default 2 s): a push may be between writes. */
  readonly recheckDelayMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Time left (the janitor's invocation); the checks stop, reporting what they finished, before it runs out. */
  readonly remainingMs?: () => number;
}

/** Stop this long before the time given runs out (the janitor still logs and saves the report). */
export const TIME_MARGIN_MS = 20_000;
export const CONCURRENCY = 16;
/** A temporary file of the store lives for one write: one older than this was left by a crash. */
export const TEMPORARY_MAX_AGE_MS = 3600_000;

/** What the blob listing found for one blob. */
export interface BlobState {
  /** The object holding the bytes (the blob key itself, or a data object). */
  readonly dataKey: string;
  readonly size: number;
  /** ok: data present with its size (and digest, when verified); broken: not; unchecked: not looked at (cheap mode). */
  readonly status: 'ok' | 'broken' | 'unchecked';
}

export interface Checked {
  repositories: number;
  tags: number;
  manifests: number;
  links: number;
  blobs: number;
  sessions: number;
  bytesHashed: number;
}

/** The collection in progress when fsck looked (gc/state.json): what it set aside is not reported. */
export interface CollectionInProgress {
  readonly runId: string;
  readonly phase: string;
  readonly setAside: number;
}

/** One fsck run's working state, shared by the checks (one file per group of them). */
export class FsckContext {
  readonly registry: Registry;
  /** The raw store: fsck reads the layout itself, handed the store by lib/setup. */
  readonly storage: StorageDriver;
  readonly cheap: boolean;
  readonly candidates: Candidate[] = [];
  readonly checked: Checked = {
    repositories: 0,
    tags: 0,
    manifests: 0,
    links: 0,
    blobs: 0,
    sessions: 0,
    bytesHashed: 0,
  };
  /** Blob digest -> what the blob listing found. */
  readonly blobs = new Map<string, BlobState>();
  /** Whether the blob listing went to its end (cheap mode may stop early). */
  blobsListed = false;
  /** Blob digest -> the finding of a blob whose data is broken: the repository checks add what it breaks. */
  readonly brokenBlobs = new Map<string, Finding>();
  /** Blob digest -> repositories linking it, for blobs absent from the blob listing. */
  readonly missingBlobs = new Map<string, RepositoryName[]>();
  /** Blob digest -> what it breaks, for broken and missing blobs (filled repository by repository). */
  readonly blobAffects = new Map<string, Affected[]>();
  /** Data objects something names: blob pointers, set-aside blob copies. */
  readonly named = new Set<string>();
  /** Upload session ids at the session snapshot, and that time (store's clock). */
  readonly sessions = new Set<string>();
  sessionsAt = 0;
  /** `uploads/<id>.tail-<n>` objects of older versions, judged with the data objects. */
  readonly uploadTails: string[] = [];
  /** Repositories holding a tag or a manifest. */
  readonly content = new Set<string>();
  /** Whether the repository listing went to its end. */
  reposListed = false;
  /** Keys whose absence a broken finding reports: set-aside copies of them are kept by --repair. */
  readonly needed = new Set<string>();
  /** Shared repairs, run once: the registry's stale-session sweep and the store's temp-file cleaning. */
  purged: Promise<number> | undefined;
  cleaned: Promise<{ readonly removed: number; readonly bytes: number }> | undefined;
  /** Checks that did not run, or not everywhere (cheap mode, out of time): the report is then partial. */
  readonly skipped = new Set<string>();
  collection: CollectionInProgress | undefined;
  private reads = 0;

  constructor(
    store: RegistryStore,
    readonly options: FsckOptions,
    /** Now, by the store's clock (storeTime): every age is measured against it. */
    readonly now: number,
  ) {
    this.registry = store.registry;
    this.storage = store.storage;
    this.cheap = options.mode === 'cheap';
  }

  add(candidate: Candidate): void {
    this.candidates.push(candidate);
  }

  /** Time is short: the remaining checks are skipped (the report says which). */
  outOfTime(): boolean {
    return this.options.remainingMs !== undefined && this.options.remainingMs() < TIME_MARGIN_MS;
  }

  /**
   * Cheap mode: whether `n` more reads fit the budget (and the time). Full mode always reads. A check
   * that is refused records itself in `skipped`.
   */
  spend(n: number, check: string): boolean {
    if (!this.cheap && !this.outOfTime()) return true;
    if (this.outOfTime() || this.reads + n > (this.options.maxReads ?? 5000)) {
      this.skipped.add(check);
      return false;
    }
    this.reads += n;
    return true;
  }

  /** Reads gc/state.json: the collection in progress, if any, and the data its set-aside blobs name. */
  async readCollection(): Promise<void> {
    const saved = await loadState(this.storage);
    if (!saved) {
      this.collection = undefined;
      return;
    }
    const quarantined = Array.isArray(saved.state.quarantined) ? saved.state.quarantined : [];
    this.collection = {
      runId: saved.state.runId,
      phase: String(saved.state.phase),
      setAside: quarantined.length,
    };
    for (const q of quarantined) if (q.dataKey) this.named.add(q.dataKey);
  }

  /** Whether the collection in progress has set `key` aside (it puts it back if anything needs it). */
  async setAsideNow(key: string): Promise<boolean> {
    if (!this.collection) return false;
    return (await this.storage.head(GC_KEYS.quarantine(this.collection.runId, key))) !== undefined;
  }

  /** Seconds since `date`, by the store's clock. */
  ageSeconds(date: Date): number {
    return Math.max(0, Math.round((this.now - date.getTime()) / 1000));
  }
}
