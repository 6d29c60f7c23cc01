import { formatBytes } from '../logging/format.ts';
import type { Affected, Finding, FindingKind } from './findings.ts';
import { summaryLine, type FsckReport } from './report.ts';

/** What a person does about each kind of broken finding (docs/fsck.md says more). */
const WHAT_TO_DO: Partial<Record<FindingKind, string>> = {
  'tag-corrupt': 'push the tag again',
  'tag-dangling': 'push the tag again',
  'manifest-corrupt': 'push the manifest again (same digest): that rewrites its object',
  'reference-missing': 'push the image again: the client finds the blob missing and uploads or mounts it',
  'index-entry-missing': 'push the index again, with its entries',
  'blob-missing':
    'push the blob again into a repository that does not link it, or delete the link first (DELETE /v2/<repository>/blobs/<digest>): while a link is there, clients believe the blob is stored and skip it; then run fsck --repair to re-point the other links',
  'blob-data-missing':
    'push the blob again into a repository that does not link it (or DELETE it from one first): the upload replaces the broken blob for every repository; then run fsck --repair to re-point the other links',
  'blob-corrupt':
    'the stored bytes are wrong: delete blobs/<alg>/<hex> by hand (fsck never deletes a blob), push the blob again, then run fsck --repair to re-point the links',
};

/** Leftovers of one kind printed before the rest is only counted (`--json` lists every one). */
const LEFTOVERS_SHOWN = 50;

/** The report for a person: grouped by severity, what each broken thing breaks, a summary line. */
export function formatReport(report: FsckReport): string {
  const out: string[] = [];
  const of = (severity: Finding['severity']) => report.findings.filter((f) => f.severity === severity);
  const broken = of('broken');
  const inconsistent = of('inconsistent');
  const leftovers = of('leftover');
  const mark = (f: Finding) =>
    f.repaired === true ? 'repaired: ' : f.repairError ? `NOT repaired (${f.repairError}): ` : '';
  if (broken.length > 0) {
    out.push(`BROKEN (${broken.length}): images that will not pull`);
    for (const f of broken) {
      out.push(`  ${f.message}`);
      const breaks = describeAffects(f.affects ?? [], report.mode);
      if (breaks) out.push(`    breaks ${breaks}`);
      if (f.copy) out.push(`    a copy set aside by an earlier collection is at ${f.copy}`);
      const todo = WHAT_TO_DO[f.kind];
      if (todo) out.push(`    to mend: ${todo}`);
    }
    out.push('');
  }
  if (inconsistent.length > 0) {
    out.push(`INCONSISTENT (${inconsistent.length}): berth fsck --repair mends these`);
    for (const f of inconsistent) out.push(`  ${mark(f)}${f.message}`);
    out.push('');
  }
  if (leftovers.length > 0) {
    const bytes = leftovers.reduce((n, f) => n + (f.bytes ?? 0), 0);
    out.push(
      `LEFTOVERS (${leftovers.length}, ${formatBytes(bytes)}): fsck --repair removes them, unless the line says otherwise`,
    );
    const shown = new Map<string, number>();
    for (const f of leftovers) {
      const n = (shown.get(f.kind) ?? 0) + 1;
      shown.set(f.kind, n);
      if (n <= LEFTOVERS_SHOWN)
        out.push(`  ${(f.bytes ?? 0) > 0 ? `${formatBytes(f.bytes!)}  ` : ''}${mark(f)}${f.message}`);
    }
    for (const [kind, n] of shown) {
      if (n > LEFTOVERS_SHOWN)
        out.push(`  ... and ${n - LEFTOVERS_SHOWN} more ${kind} (--json lists every one)`);
    }
    out.push('');
  }
  if (report.collection) {
    const c = report.collection;
    out.push(
      `A garbage collection is in progress (run ${c.runId}, phase ${c.phase}, ${c.setAside} objects set aside): what it has set aside is not reported.`,
    );
  }
  out.push(summaryLine(report));
  return `${out.join('\n')}\n`;
}

/** `app:v1, app:latest; team/c@sha256:… (untagged)`: which pulls break, per repository. */
export function describeAffects(affects: readonly Affected[], mode: FsckReport['mode']): string {
  const parts: string[] = [];
  for (const a of affects) {
    if (a.tags.length > 0) parts.push(a.tags.map((t) => `${a.repository}:${t}`).join(', '));
    else if (a.manifests.length > 0) {
      parts.push(a.manifests.map((m) => `${a.repository}@${m} (untagged)`).join(', '));
    } else {
      parts.push(
        mode === 'cheap' ? `${a.repository} (links it)` : `${a.repository} (links it; no manifest uses it)`,
      );
    }
  }
  return parts.join('; ');
}
