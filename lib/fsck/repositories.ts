import { scanRepos } from '../registry/layout.ts';
import type { FsckContext } from './context.ts';
import { checkVerifyingMarkers } from './leftovers.ts';
import { checkLinks } from './links.ts';
import { checkReferences } from './references.ts';
import { checkReferrerEntries } from './referrers.ts';
import { RepoView } from './repository.ts';
import { readManifests, readTags, reportManifests, reportTags } from './tags.ts';

/**
 * Every repository, one at a time (one listing of `repos/`, as garbage collection's mark): its tags
 * and manifests, what they reference, its links, referrer entries and verification markers; and,
 * for blobs found broken or missing, which of its tags and manifests they break.
 */
export async function checkRepositories(ctx: FsckContext): Promise<void> {
  for await (const keys of scanRepos(ctx.storage)) {
    const view = new RepoView(keys);
    ctx.checked.repositories++;
    if (view.hasContent) ctx.content.add(view.name);
    const tags = await readTags(ctx, view);
    // Cheap mode reads no manifest: its references are the full check's.
    const corrupt = ctx.cheap ? [] : await readManifests(ctx, view);
    reportTags(ctx, view, tags);
    reportManifests(ctx, view, corrupt);
    if (!ctx.cheap) checkReferences(ctx, view);
    await checkLinks(ctx, view);
    await checkReferrerEntries(ctx, view);
    await checkVerifyingMarkers(ctx, view);
    noteBlobAffects(ctx, view);
    if (ctx.outOfTime()) {
      ctx.skipped.add('repositories');
      return;
    }
  }
  ctx.reposListed = true;
}

/** What each broken or missing blob this repository links breaks here. */
function noteBlobAffects(ctx: FsckContext, view: RepoView): void {
  for (const digest of view.links) {
    const missing = ctx.blobsListed && !ctx.blobs.has(digest);
    if (!missing && !ctx.brokenBlobs.has(digest)) continue;
    const affected = view.affects(view.manifestsNeeding(digest));
    ctx.blobAffects.set(digest, [...(ctx.blobAffects.get(digest) ?? []), affected]);
  }
}
