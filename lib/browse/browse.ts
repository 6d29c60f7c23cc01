import type { Reference, RepositoryName } from '../oci/names.ts';
import { keys } from '../registry/keys.ts';
import type { RegistryStore } from '../registry/registry.ts';
import { BERTH_VERSION } from '../version.ts';
import { deleteImpact, type DeleteImpact } from './impact.ts';
import { lastGcRun, type BrowseSettings, type LastGcRun } from './info.ts';
import { manifestDetails, type ManifestDetails } from './manifest-details.ts';
import {
  repositoryPage,
  repositorySummary,
  UsageSizes,
  type RepositoryPage,
  type RepositoryRow,
} from './repositories.ts';
import { TagSummaries, type TagPage } from './tags.ts';

/**
 * The web UI's read model (docs/web-ui.md), which lib/http's browse routes answer from. It reads the
 * store's layout itself (listings with times and etags, the tag summary cache, the last collection's
 * report), so lib/setup builds it with the store beside the registry (`RegistryStore`); manifests,
 * referrers and the usage report it reads through the registry.
 */
export class Browse {
  /** What the UI is told about this registry: the configuration's, with defaults for the rest. */
  readonly settings: BrowseSettings;
  private readonly summaries: TagSummaries;
  private readonly usage: UsageSizes;

  constructor(
    private readonly store: RegistryStore,
    settings: Partial<BrowseSettings> = {},
  ) {
    this.summaries = new TagSummaries(store.storage);
    this.usage = new UsageSizes(() => store.registry.usage.load());
    this.settings = {
      storage: store.storage.name,
      version: BERTH_VERSION,
      retention: [],
      immutable: [],
      ...settings,
    };
  }

  /** The last finished garbage collection, if any. */
  lastGc(): Promise<LastGcRun | undefined> {
    return lastGcRun(this.store.storage);
  }

  /** When the usage report the sizes come from was made, if there is one. */
  async usageAt(): Promise<string | undefined> {
    return (await this.usage.get())?.generatedAt;
  }

  /** A page of the catalog with tag counts, last pushes and sizes (`repositoryPage`). */
  repositories(options: {
    n: number;
    last?: string;
    query?: string;
    visible?: (name: string) => boolean;
  }): Promise<RepositoryPage> {
    return repositoryPage(this.store.storage, this.usage, options);
  }

  /** One repository's row, or undefined when the registry does not know it (no tags, no catalog entry). */
  async repository(repo: RepositoryName): Promise<RepositoryRow | undefined> {
    const { storage } = this.store;
    const row = await repositorySummary(storage, repo, await this.usage.get());
    if (row.tags === 0 && !(await storage.head(keys.catalog(repo)))) return undefined;
    return row;
  }

  /** A page of a repository's tags with their summaries. */
  tags(repo: RepositoryName, options: { n: number; last?: string }): Promise<TagPage> {
    return this.summaries.page(repo, options);
  }

  /** A manifest's layers, config, platforms, referrers and raw JSON. */
  manifest(repo: RepositoryName, ref: Reference): Promise<ManifestDetails> {
    return manifestDetails(this.store, repo, ref);
  }

  /** What deleting a manifest or tag would remove and untag. */
  impact(repo: RepositoryName, ref: Reference): Promise<DeleteImpact> {
    return deleteImpact(this.store, this.summaries, repo, ref);
  }
}
