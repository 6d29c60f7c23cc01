import { parseDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { mapLimit } from '../util/concurrency.ts';
import { keys } from '../registry/keys.ts';
import type { RepoKeys } from '../registry/layout.ts';
import { CONCURRENCY, type FsckContext } from './context.ts';
import { finding, type Finding } from './findings.ts';
import type { RepoView } from './repository.ts';

/*
 * Referrer entries (`repos/<name>/_referrers/<alg>/<subject>/<alg>-<hex>`) naming a manifest the
 * repository does not hold: a manifest DELETE that raced a push of it left the entry. The referrers
 * API lists it, and it pulls nothing. Garbage collection removes such an entry once it is older than
 * the grace period (setting it aside first, so a push racing it is safe); fsck reports it then. The
 * opposite, a manifest with a subject missing from the list, is checked with its references.
 */

export async function checkReferrerEntries(ctx: FsckContext, view: RepoView): Promise<void> {
  await mapLimit(view.keys.referrers, CONCURRENCY, async (entry) => {
    if (view.holds(entry.digest) || !ctx.spend(1, 'referrer entries')) return;
    const found = await examineEntry(ctx, view.name, entry, async () => false);
    if (!found) return;
    const manifestKey = keys.manifest(view.name, parseDigest(entry.digest));
    ctx.add({
      finding: found,
      missingKey: manifestKey,
      recheck: () =>
        examineEntry(ctx, view.name, entry, async () => Boolean(await ctx.storage.head(manifestKey))),
    });
  });
}

async function examineEntry(
  ctx: FsckContext,
  repo: RepositoryName,
  entry: RepoKeys['referrers'][number],
  manifestExists: () => Promise<boolean>,
): Promise<Finding | undefined> {
  const info = await ctx.storage.head(entry.key);
  if (!info || ctx.now - info.lastModified.getTime() < ctx.options.graceMs) return undefined;
  if (await manifestExists()) return undefined;
  return finding('dangling-referrer', {
    key: entry.key,
    repository: repo,
    digest: entry.digest,
    message: `the referrers list of ${entry.subject} in ${repo} names ${entry.digest}, which is not a manifest of the repository (garbage collection removes the entry)`,
    bytes: info.size,
    ageSeconds: ctx.ageSeconds(info.lastModified),
  });
}
