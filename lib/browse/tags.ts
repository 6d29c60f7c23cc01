import * as z from 'zod';
import { RegistryError } from '../oci/errors.ts';
import { tryParseDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { mapLimit } from '../util/concurrency.ts';
import { parseStoredJson } from '../util/json.ts';
import { keys, meta } from '../registry/keys.ts';
import {
  SUMMARY_META,
  decodeSummary,
  isAttestationManifest,
  summarizeManifest,
  type TagSummary,
} from '../registry/tag-summary.ts';
import { readImageConfig, summarizeStored } from '../registry/tag-summary-store.ts';
import type { ListedObject, StorageDriver } from '../storage/port.ts';
import { listAllObjects, listObjects } from './listing.ts';

/** One tag as the web UI lists it. */
export interface TagRow {
  readonly name: string;
  readonly digest?: string;
  /** When the tag was last written (the store's time). */
  readonly pushedAt: string;
  /** Absent when this request ran out of reads for tags written before summaries existed. */
  readonly summary?: TagSummary;
}

export interface TagPage {
  readonly tags: TagRow[];
  readonly more: boolean;
  /** Tags on this page whose summary could not be made within this request (ask again). */
  readonly pending: number;
}

/** The cache of one repository's tag summaries: `summaries/<name>/_tags.json`. */
export function summaryCacheKey(repo: RepositoryName): string {
  // `_tags.json` cannot be a repository name component, so no key is another key followed by `/`.
  return `summaries/${repo}/_tags.json`;
}

/** Summaries kept per repository at most; a repository with more tags re-reads the rest by head. */
export const CACHE_ENTRIES = 5000;

/**
 * Storage reads one request may spend on tags that carry no summary (written before tag summaries
 * existed, or by the pull-through cache): their manifest, config, and an index's children.
 */
export const FALLBACK_READS = 64;

const CONCURRENCY = 8;

const entrySchema = z.object({
  e: z.string(),
  d: z.string().optional(),
  s: z.record(z.string(), z.unknown()).optional(),
});
const cacheSchema = z.object({ v: z.literal(1), tags: z.record(z.string(), entrySchema) });
type CacheEntry = z.infer<typeof entrySchema>;

/**
 * Tags with their digests and summaries, for the web UI and its JSON API (docs/web-ui.md).
 *
 * A page costs one listing (S3: ListObjectsV2 carries each tag object's etag and time) and one read
 * of the repository's summary cache, whose entries are keyed by tag and the tag object's etag: an
 * entry is valid exactly as long as the tag object is unchanged. Only tags written or moved since
 * the last view are headed (their summary is in the tag object's metadata); tags written before
 * summaries existed are summarized from their manifest, at most FALLBACK_READS reads per request.
 */
export class TagSummaries {
  constructor(private readonly storage: StorageDriver) {}

  async page(repo: RepositoryName, options: { n: number; last?: string }): Promise<TagPage> {
    const prefix = keys.tagsPrefix(repo);
    const listing = await listObjects(this.storage, prefix, {
      startAfter: options.last !== undefined ? prefix + options.last : undefined,
      limit: options.n,
    });
    if (listing.objects.length === 0 && options.last === undefined) {
      if (!(await this.storage.head(keys.catalog(repo)))) {
        throw new RegistryError('NAME_UNKNOWN', `repository ${repo} is not known to this registry`);
      }
    }
    const rows = await this.resolve(repo, listing.objects, true);
    return {
      tags: rows,
      more: listing.truncated,
      pending: rows.filter((r) => r.summary === undefined).length,
    };
  }

  /** Every tag with its digest (no summaries needed), up to `limit`: what a delete would affect. */
  async all(repo: RepositoryName, limit: number): Promise<{ tags: TagRow[]; complete: boolean }> {
    const listing = await listAllObjects(this.storage, keys.tagsPrefix(repo), limit);
    return { tags: await this.resolve(repo, listing.objects, false), complete: listing.complete };
  }

  private async resolve(
    repo: RepositoryName,
    objects: readonly ListedObject[],
    wantSummaries: boolean,
  ): Promise<TagRow[]> {
    const prefix = keys.tagsPrefix(repo);
    const cache = await this.load(repo);
    let budget = FALLBACK_READS;
    const take = (reads: number) => {
      if (budget < reads) return false;
      budget -= reads;
      return true;
    };
    let changed = false;
    const rows = await mapLimit(objects, CONCURRENCY, async (object): Promise<TagRow | undefined> => {
      const name = object.key.slice(prefix.length);
      const row = (entry: CacheEntry, pushedAt: Date): TagRow => ({
        name,
        ...(entry.d !== undefined && { digest: entry.d }),
        pushedAt: pushedAt.toISOString(),
        ...(entry.s !== undefined && { summary: entry.s as unknown as TagSummary }),
      });
      const cached = cache.get(name);
      if (cached && cached.e === object.etag && (cached.s !== undefined || !wantSummaries)) {
        return row(cached, object.lastModified);
      }
      const head = await this.storage.head(object.key);
      if (!head) return undefined; // deleted since the listing
      const digest = head.metadata[meta.digest];
      let summary = decodeSummary(head.metadata[SUMMARY_META]);
      if (!summary && wantSummaries && take(3)) {
        const stored = await this.storage.get(object.key);
        if (stored) {
          summary = await summarizeStored(
            this.storage,
            repo,
            stored.body,
            stored.contentType ?? 'application/octet-stream',
          );
        }
      }
      if (summary && summary.size === undefined && summary.children !== undefined && wantSummaries) {
        summary = await this.withIndexSize(repo, object.key, summary, take);
      }
      const entry: CacheEntry = {
        e: head.etag,
        ...(digest !== undefined && { d: digest }),
        ...(summary !== undefined && { s: summary as unknown as Record<string, unknown> }),
      };
      // A summary still missing for want of reads is not cached: the next view tries again.
      if (summary || !wantSummaries) {
        cache.delete(name); // re-inserted last: the newest entries are the ones kept
        cache.set(name, entry);
        changed = true;
      }
      return row(entry, head.lastModified);
    });
    if (changed) await this.save(repo, cache);
    return rows.filter((r): r is TagRow => r !== undefined);
  }

  /** An index's size: what its platform images (not attestations) add up to, one read per child. */
  private async withIndexSize(
    repo: RepositoryName,
    key: string,
    summary: TagSummary,
    take: (reads: number) => boolean,
  ): Promise<TagSummary> {
    const index = await this.storage.get(key);
    const children = (
      (parseStoredJson(index?.body ?? new Uint8Array()) as { manifests?: unknown[] } | undefined)
        ?.manifests ?? []
    ).filter((c): c is { digest: string } => typeof c === 'object' && c !== null && 'digest' in c);
    const images = children.filter((c) => !isAttestationManifest(c));
    // Each child's manifest, and the first image's config for when the index was built.
    if (!take(images.length + 3)) return summary;
    const read = await mapLimit(images, CONCURRENCY, async (child) => {
      const digest = tryParseDigest(String(child.digest));
      return digest ? await this.storage.get(keys.manifest(repo, digest)) : undefined;
    });
    const sizes = read.map((m) => (m ? (summarizeManifest(m.body, m.contentType ?? '').size ?? 0) : 0));
    const first = read.find((m) => m !== undefined);
    const created = first
      ? summarizeManifest(
          first.body,
          first.contentType ?? '',
          await readImageConfig(this.storage, repo, first.body),
        ).created
      : undefined;
    return { ...summary, size: sizes.reduce((a, b) => a + b, 0), ...(created && { created }) };
  }

  private async load(repo: RepositoryName): Promise<Map<string, CacheEntry>> {
    const stored = await this.storage.get(summaryCacheKey(repo));
    const parsed = stored ? cacheSchema.safeParse(parseStoredJson(stored.body)) : undefined;
    return new Map(parsed?.success ? Object.entries(parsed.data.tags) : []);
  }

  /**
   * Best effort: a cache write that fails, or races another, loses entries the next view re-reads.
   * The newest entries are kept when there are too many.
   */
  private async save(repo: RepositoryName, cache: Map<string, CacheEntry>): Promise<void> {
    const entries = [...cache.entries()].slice(-CACHE_ENTRIES);
    const body = JSON.stringify({ v: 1, tags: Object.fromEntries(entries) });
    await this.storage
      .put(summaryCacheKey(repo), new TextEncoder().encode(body), { contentType: 'application/json' })
      // Silent on purpose: the cache is never needed for correctness, and a store that cannot take
      // this write fails the reads and pushes that matter, which are logged.
      .catch(() => undefined);
  }
}
