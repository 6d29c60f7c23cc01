import { formatBytes } from '../logging/format.ts';
import type { Checked, CollectionInProgress } from './context.ts';
import type { Finding, Severity } from './findings.ts';

/** Where the janitor keeps its last check's report (docs/fsck.md, "On AWS"). */
export const FSCK_REPORT_KEY = 'gc/fsck.json';

/**
 * What `berth fsck --json` prints (docs/fsck.md, "JSON"). `version` changes only when a field changes
 * meaning or goes away; fields and finding kinds may be added.
 */
export interface FsckReport {
  readonly version: 1;
  /** Nothing broken, and nothing inconsistent left (leftovers do not count). */
  readonly clean: boolean;
  /** Every check ran to its end (cheap mode and time limits may skip some: `skipped` says which). */
  readonly complete: boolean;
  readonly skipped: string[];
  readonly mode: 'full' | 'cheap';
  readonly storage: string;
  /** When the check began, by the store's clock. */
  readonly startedAt: string;
  readonly durationMs: number;
  readonly options: {
    readonly verifyDigests: boolean;
    readonly repair: boolean;
    readonly uploadTtlSeconds: number;
    readonly graceSeconds: number;
  };
  readonly checked: Checked;
  /** Findings by severity (repaired ones included). */
  readonly counts: Record<Severity, number>;
  /** Bytes the leftovers hold (as far as the store says). */
  readonly leftoverBytes: number;
  /** Findings `--repair` mended. */
  readonly repaired: number;
  /** A garbage collection in progress: what it has set aside is its business, not reported. */
  readonly collection: CollectionInProgress | null;
  /** Broken first, then inconsistent, then leftovers; within each, by kind and key. */
  readonly findings: Finding[];
}

export const SEVERITIES: readonly Severity[] = ['broken', 'inconsistent', 'leftover'];

export function sortFindings(findings: Finding[]): Finding[] {
  return findings.sort(
    (a, b) =>
      SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) ||
      (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0) ||
      (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  );
}

export function countsOf(findings: readonly Finding[]): Record<Severity, number> {
  const counts: Record<Severity, number> = { broken: 0, inconsistent: 0, leftover: 0 };
  for (const f of findings) counts[f.severity]++;
  return counts;
}

/**
 * The exit status of `berth fsck`: 0 clean (leftovers may remain), 1 something is broken, 3 nothing
 * is broken but inconsistencies remain (`--repair` mends them). 2 is kept for a check that could not
 * run (bin/fsck.ts).
 */
export function exitCodeOf(report: FsckReport): number {
  if (report.findings.some((f) => f.severity === 'broken')) return 1;
  if (report.findings.some((f) => f.severity === 'inconsistent' && !f.repaired)) return 3;
  return 0;
}

/** The last line of the text report (and the janitor's log): counts and what was checked. */
export function summaryLine(report: FsckReport): string {
  const { counts, checked } = report;
  const found =
    counts.broken + counts.inconsistent + counts.leftover === 0
      ? 'clean'
      : [
          `${counts.broken} broken`,
          `${counts.inconsistent} inconsistent`,
          `${counts.leftover} leftover${counts.leftover === 1 ? '' : 's'}${counts.leftover > 0 ? ` (${formatBytes(report.leftoverBytes)})` : ''}`,
        ].join(', ');
  const repaired = report.options.repair ? `; repaired ${report.repaired}` : '';
  const scope =
    `${checked.repositories} repositories, ${checked.tags} tags, ${checked.manifests} manifests, ` +
    `${checked.links} links, ${checked.blobs} blobs` +
    (report.options.verifyDigests ? ` (${formatBytes(checked.bytesHashed)} hashed)` : '');
  const partial = report.complete ? '' : `; partial: skipped ${report.skipped.join(', ')}`;
  return `fsck: ${found}${repaired}; checked ${scope} in ${(report.durationMs / 1000).toFixed(1)} s${partial}`;
}
