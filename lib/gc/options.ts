import type { ImmutableRule, RetentionRule } from '../registry/tag-policy.ts';

/** What one garbage collection run is asked to do (lib/gc/collector.ts collectGarbage). */
export interface GcOptions {
  /** Nothing written, uploaded, mounted or re-pushed more recently than this is collected. */
  readonly graceMs: number;
  /** Delete manifests no tag reaches (retention rules can ask for it per repository too). */
  readonly deleteUntagged: boolean;
  readonly retention: readonly RetentionRule[];
  /** Immutable tags are never deleted by retention. */
  readonly immutable: readonly ImmutableRule[];
  /** Upload sessions, tails, multipart uploads and orphaned data older than this are removed. */
  readonly uploadTtlMs: number;
  /**
   * The least age of an orphan whatever the TTL (default ORPHAN_MIN_AGE_MS, upload-session.ts): the
   * writes that make a young unowned tail owned may still land. Only tests on a store whose clock
   * they cannot move (S3) lower it; no command or environment variable sets it.
   */
  readonly orphanMinAgeMs?: number;
  /**
   * How long set-aside objects wait before the run decides they are garbage: longer than any manifest
   * PUT can take between checking a blob and writing the manifest (docs/gc.md).
   */
  readonly settleMs: number;
  /** Report what would be deleted; change nothing. */
  readonly dryRun: boolean;
  /** Time left to run (the janitor: Lambda's getRemainingTimeInMillis); absent, no limit. */
  readonly remainingMs?: () => number;
  /** Waits out the settle period in this run; absent, a run pauses and a later one continues. */
  readonly sleep?: (ms: number) => Promise<void>;
  /**
   * The collector's clock, for durations it measures itself (the settle wait, the lock's lease, when
   * the run finished). Ages of stored objects are never measured with it: the run reads the store's
   * clock (storeTime) and compares it with lastModified, which the store stamped (docs/gc.md, "Clocks").
   */
  readonly now?: () => number;
  readonly onProgress?: (message: string, fields?: Record<string, unknown>) => void;
  /** Called before each phase of a (non-dry) run; awaited. */
  readonly onPhase?: (phase: string) => Promise<void> | void;
}
