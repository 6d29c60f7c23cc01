/*
 * What `berth fsck` can find (docs/fsck.md lists each kind, what it means and what to do). Every kind
 * has one severity and one remedy, so that scripts reading `--json` can rely on them:
 *
 * - broken: an image that will not pull (or will not pull by digest); only pushing it again mends it.
 * - inconsistent: the layout disagrees with itself in a way `fsck --repair` mends from what is stored.
 * - leftover: something no session, manifest or collection accounts for any more; it takes space.
 */

export type Severity = 'broken' | 'inconsistent' | 'leftover';

/**
 * Who mends it: `push-again` (the owner pushes the image or blob again), `fsck-repair` (`berth fsck
 * --repair`), `gc` (the next garbage collection removes it, once older than its grace period), or
 * `none` (not Berth's: left alone).
 */
export type Remedy = 'push-again' | 'fsck-repair' | 'gc' | 'none';

export const KINDS = {
  // Broken.
  'tag-corrupt': { severity: 'broken', remedy: 'push-again' },
  'tag-dangling': { severity: 'broken', remedy: 'push-again' },
  'manifest-corrupt': { severity: 'broken', remedy: 'push-again' },
  'reference-missing': { severity: 'broken', remedy: 'push-again' },
  'index-entry-missing': { severity: 'broken', remedy: 'push-again' },
  'blob-missing': { severity: 'broken', remedy: 'push-again' },
  'blob-data-missing': { severity: 'broken', remedy: 'push-again' },
  'blob-corrupt': { severity: 'broken', remedy: 'push-again' },
  // Inconsistent, mended by --repair.
  'tag-manifest-missing': { severity: 'inconsistent', remedy: 'fsck-repair' },
  'catalog-missing': { severity: 'inconsistent', remedy: 'fsck-repair' },
  'referrer-missing': { severity: 'inconsistent', remedy: 'fsck-repair' },
  'link-stale': { severity: 'inconsistent', remedy: 'fsck-repair' },
  'blob-pointer-missing': { severity: 'inconsistent', remedy: 'fsck-repair' },
  // Leftovers.
  'stale-session': { severity: 'leftover', remedy: 'fsck-repair' },
  'orphan-data': { severity: 'leftover', remedy: 'fsck-repair' },
  'orphan-tail': { severity: 'leftover', remedy: 'fsck-repair' },
  'orphan-multipart': { severity: 'leftover', remedy: 'fsck-repair' },
  'orphan-quarantine': { severity: 'leftover', remedy: 'fsck-repair' },
  'orphan-verifying': { severity: 'leftover', remedy: 'fsck-repair' },
  'temporary-file': { severity: 'leftover', remedy: 'fsck-repair' },
  'empty-catalog-entry': { severity: 'leftover', remedy: 'gc' },
  'dangling-referrer': { severity: 'leftover', remedy: 'gc' },
  'unknown-key': { severity: 'leftover', remedy: 'none' },
} as const satisfies Record<string, { severity: Severity; remedy: Remedy }>;

export type FindingKind = keyof typeof KINDS;

/** Which pulls a broken object breaks, in one repository. */
export interface Affected {
  readonly repository: string;
  /** Tags whose pull reaches it (through an index too). */
  tags: string[];
  /** Manifests of the repository that reference it directly (empty: it is linked, but no image uses it). */
  manifests: string[];
}

/** One finding, as the report (and `--json`) gives it. */
export interface Finding {
  readonly severity: Severity;
  readonly kind: FindingKind;
  /** The storage key it is about (a prefix for a group: `gc/quarantine/<run>/`). */
  readonly key: string;
  /** One sentence a person can act on. */
  readonly message: string;
  readonly remedy: Remedy;
  readonly repository?: string;
  readonly tag?: string;
  readonly digest?: string;
  /** Broken findings: the repositories, tags and manifests it breaks. */
  affects?: Affected[];
  /** Leftovers: the bytes it holds (0 when the store does not say). */
  readonly bytes?: number;
  /** Leftovers: how long ago it was last written, by the store's clock. */
  readonly ageSeconds?: number;
  /** A copy of the missing object that a garbage collection which is no longer running set aside. */
  copy?: string;
  /** With --repair, for remedy fsck-repair: whether it was mended. */
  repaired?: boolean;
  /** Why a repair failed. */
  repairError?: string;
}

/** A finding as the checks produce it: checked again before it is reported, and how to mend it. */
export interface Candidate {
  finding: Finding;
  /**
   * Looks again with fresh reads (a push may have been between two writes): the finding as it stands
   * now, or undefined when it no longer holds.
   */
  readonly recheck?: () => Promise<Finding | undefined>;
  /** The key whose absence makes the finding: a garbage collection that set it aside will put it back. */
  readonly missingKey?: string;
  /** For remedy fsck-repair: mends it (throws when it cannot). */
  readonly repair?: () => Promise<void>;
}

export function finding(kind: FindingKind, fields: Omit<Finding, 'severity' | 'kind' | 'remedy'>): Finding {
  return { severity: KINDS[kind].severity, kind, remedy: KINDS[kind].remedy, ...fields };
}
