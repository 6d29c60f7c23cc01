import { mapLimit } from '../util/concurrency.ts';
import type { RegistryStore } from '../registry/registry.ts';
import { storeTime } from '../registry/store-clock.ts';
import { checkBlobs } from './blobs.ts';
import { checkCatalog } from './catalog.ts';
import { FsckContext, type FsckOptions } from './context.ts';
import type { Candidate, Finding, FindingKind } from './findings.ts';
import { checkGcKeys, checkOrphans, checkTemporary, snapshotSessions } from './leftovers.ts';
import { reportMissingBlobs } from './links.ts';
import { checkRepositories } from './repositories.ts';
import { countsOf, sortFindings, type FsckReport } from './report.ts';

export type { FsckOptions } from './context.ts';

const RECHECK_DELAY_MS = 2000;
const RECHECK_CONCURRENCY = 8;

/**
 * Checks the store the registry serves (docs/fsck.md): tags, manifests and what they reference,
 * links, blobs and their data, the catalog, referrer entries, and leftovers of uploads and
 * collections. Safe while the registry runs: every finding is looked at again after a pause before
 * it is reported (a push may be between two writes), what a collection in progress has set aside is
 * its business, and leftovers are judged with the upload TTL and the grace period. With `repair`, it
 * mends what is safe to mend and never deletes a blob, a manifest or a tag.
 */
export async function fsck(store: RegistryStore, options: FsckOptions): Promise<FsckReport> {
  const started = performance.now();
  const ctx = new FsckContext(store, options, await storeTime(store.storage));
  await ctx.readCollection();
  // The order matters for leftovers, as in garbage collection: sessions first, then what names data.
  await snapshotSessions(ctx);
  await checkGcKeys(ctx);
  await checkBlobs(ctx);
  await checkRepositories(ctx);
  await reportMissingBlobs(ctx);
  await checkCatalog(ctx);
  await checkOrphans(ctx);
  await checkTemporary(ctx);
  const findings = await recheck(ctx);
  for (const c of findings) {
    const f = c.finding;
    if (f.kind === 'blob-data-missing' || f.kind === 'blob-corrupt' || f.kind === 'blob-missing') {
      f.affects = ctx.blobAffects.get(f.digest ?? '') ?? [];
    }
  }
  await noteCopies(ctx, findings);
  if (options.repair) await repair(ctx, findings);
  const all = sortFindings(findings.map((c) => c.finding));
  const counts = countsOf(all);
  return {
    version: 1,
    clean: counts.broken === 0 && all.every((f) => f.severity !== 'inconsistent' || f.repaired === true),
    complete: ctx.skipped.size === 0,
    skipped: [...ctx.skipped].sort(),
    mode: ctx.cheap ? 'cheap' : 'full',
    storage: store.storage.name,
    startedAt: new Date(ctx.now).toISOString(),
    durationMs: Math.round(performance.now() - started),
    options: {
      verifyDigests: options.verifyDigests === true,
      repair: options.repair === true,
      uploadTtlSeconds: Math.round(options.uploadTtlMs / 1000),
      graceSeconds: Math.round(options.graceMs / 1000),
    },
    checked: { ...ctx.checked },
    counts,
    leftoverBytes: all.filter((f) => f.severity === 'leftover').reduce((n, f) => n + (f.bytes ?? 0), 0),
    repaired: all.filter((f) => f.repaired === true).length,
    collection: ctx.collection ?? null,
    findings: all,
  };
}

/**
 * Looks at every finding once more after a pause: what a push between two writes, or a collection
 * in progress, made look wrong is dropped.
 */
async function recheck(ctx: FsckContext): Promise<Candidate[]> {
  if (ctx.candidates.length === 0) return [];
  const delay = ctx.options.recheckDelayMs ?? RECHECK_DELAY_MS;
  const sleep = ctx.options.sleep ?? ((ms: number) => new Promise((resolve) => setTimeout(resolve, ms)));
  if (delay > 0) await sleep(delay);
  await ctx.readCollection();
  const kept = await mapLimit(
    ctx.candidates,
    RECHECK_CONCURRENCY,
    async (c): Promise<Candidate | undefined> => {
      if (ctx.outOfTime()) {
        ctx.skipped.add('rechecks');
        return undefined;
      }
      if (c.missingKey && (await ctx.setAsideNow(c.missingKey))) return undefined;
      if (!c.recheck) return c;
      const again = await c.recheck();
      if (!again) return undefined;
      if (!again.affects && c.finding.affects) again.affects = c.finding.affects;
      return { ...c, finding: again };
    },
  );
  return kept.filter((c) => c !== undefined);
}

/**
 * Broken findings whose missing object has a copy set aside by a collection no longer in progress:
 * the report says where it is, and --repair keeps it.
 */
async function noteCopies(ctx: FsckContext, findings: readonly Candidate[]): Promise<void> {
  const dead = findings.filter((c) => c.finding.kind === 'orphan-quarantine').map((c) => c.finding.key);
  for (const c of findings) {
    if (c.finding.severity !== 'broken' || !c.missingKey) continue;
    ctx.needed.add(c.missingKey);
    for (const prefix of dead) {
      const copy = `${prefix}${c.missingKey}`;
      if (await ctx.storage.head(copy)) c.finding.copy = copy;
    }
  }
}

/** The order repairs run in: manifests back before what refers to them, leftovers last. */
const REPAIR_ORDER: readonly FindingKind[] = [
  'tag-manifest-missing',
  'blob-pointer-missing',
  'link-stale',
  'referrer-missing',
  'catalog-missing',
  'stale-session',
  'orphan-verifying',
  'orphan-quarantine',
  'orphan-data',
  'orphan-tail',
  'orphan-multipart',
  'temporary-file',
];

async function repair(ctx: FsckContext, findings: readonly Candidate[]): Promise<void> {
  for (const kind of REPAIR_ORDER) {
    for (const c of findings) {
      if (c.finding.kind !== kind || !c.repair) continue;
      try {
        await c.repair();
        setRepaired(c.finding, true);
      } catch (err) {
        setRepaired(c.finding, false, err instanceof Error ? err.message : String(err));
      }
    }
  }
}

function setRepaired(f: Finding, ok: boolean, error?: string): void {
  f.repaired = ok;
  if (error) f.repairError = error;
}
