import type { RepositoryName } from '../oci/names.ts';
import { keys, parse } from '../registry/keys.ts';
import { listKeys } from '../registry/layout.ts';
import type { FsckContext } from './context.ts';
import { finding, type Finding } from './findings.ts';

/*
 * Catalog entries (`catalog/<name>`, what /v2/_catalog lists): a repository holding a tag or a
 * manifest has one (a manifest PUT writes it with the manifest; `--repair` writes a missing one, as
 * garbage collection does); an entry whose repository holds neither is what a failed push or deleting
 * everything leaves, and garbage collection removes it once older than the grace period.
 */

export async function checkCatalog(ctx: FsckContext): Promise<void> {
  const listed = new Set<string>();
  for await (const page of listKeys(ctx.storage, keys.catalogPrefix)) {
    for (const key of page) {
      const repo = parse.catalogKey(key) as RepositoryName | undefined;
      if (!repo) continue;
      listed.add(repo);
      // Judged only when every repository was seen (cheap mode may stop early).
      if (ctx.content.has(repo) || !ctx.reposListed) continue;
      if (!ctx.spend(1, 'catalog entries')) continue;
      const found = await examineEmptyEntry(ctx, repo);
      if (found) ctx.add({ finding: found, recheck: () => examineEmptyEntry(ctx, repo) });
    }
    if (ctx.outOfTime()) {
      ctx.skipped.add('catalog');
      return;
    }
  }
  for (const repo of ctx.content) {
    if (listed.has(repo)) continue;
    const name = repo as RepositoryName;
    const make = () =>
      finding('catalog-missing', {
        key: keys.catalog(name),
        repository: name,
        message: `repository ${name} holds tags or manifests but has no catalog entry: /v2/_catalog does not list it`,
      });
    ctx.add({
      finding: make(),
      recheck: async () =>
        !(await ctx.storage.head(keys.catalog(name))) && (await hasContent(ctx, name)) ? make() : undefined,
      repair: async () => {
        await ctx.storage.put(keys.catalog(name), new Uint8Array(0));
      },
    });
  }
}

async function examineEmptyEntry(ctx: FsckContext, repo: RepositoryName): Promise<Finding | undefined> {
  const info = await ctx.storage.head(keys.catalog(repo));
  if (!info || ctx.now - info.lastModified.getTime() < ctx.options.graceMs) return undefined;
  if (await hasContent(ctx, repo)) return undefined;
  return finding('empty-catalog-entry', {
    key: info.key,
    repository: repo,
    message: `the catalog lists ${repo}, which holds no tag and no manifest (garbage collection removes the entry)`,
    bytes: info.size,
    ageSeconds: ctx.ageSeconds(info.lastModified),
  });
}

/** Whether the repository holds a tag or a manifest now (two one-key listings). */
async function hasContent(ctx: FsckContext, repo: RepositoryName): Promise<boolean> {
  for (const prefix of [keys.tagsPrefix(repo), keys.manifestsPrefix(repo)]) {
    if ((await ctx.storage.list(prefix, { limit: 1 })).keys.length > 0) return true;
  }
  return false;
}
