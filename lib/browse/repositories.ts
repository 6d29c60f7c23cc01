import * as z from 'zod';
import type { RepositoryName } from '../oci/names.ts';
import { mapLimit } from '../util/concurrency.ts';
import { parseStoredJson } from '../util/json.ts';
import { keys } from '../registry/keys.ts';
import type { StorageDriver } from '../storage/port.ts';
import { listAllObjects } from './listing.ts';

/** One repository as the web UI lists it. */
export interface RepositoryRow {
  readonly name: string;
  /** Tags, counted up to TAG_COUNT_LIMIT (`tagsComplete` false beyond). */
  readonly tags: number;
  readonly tagsComplete: boolean;
  /** The newest tag write. */
  readonly lastPush?: string;
  /** Bytes of the blobs it links, from the last usage report (absent without one). */
  readonly size?: number;
}

export interface RepositoryPage {
  readonly repositories: RepositoryRow[];
  /** Where the next page starts (a name to pass as `last`), when the catalog goes on. */
  readonly next?: string;
  /** When the sizes were measured: the usage report's time. */
  readonly sizesAt?: string;
}

/** Catalog names one request looks at while filtering, at most: ten S3 listings. */
export const SCAN_LIMIT = 10_000;
/** Tags counted per repository, at most (ten listings). */
export const TAG_COUNT_LIMIT = 10_000;

const CONCURRENCY = 8;

/**
 * A page of the catalog, filtered by a name substring and by what the caller may see, each
 * repository with its tag count and last push (one tag listing each, which S3 answers with every
 * object's time) and its size from the last usage report. Filtering reads at most SCAN_LIMIT
 * catalog names per request; when that is reached before the page is full, `next` says where to go
 * on, so a search through tens of thousands of repositories is a few requests, never an unbounded one.
 */
export async function repositoryPage(
  storage: StorageDriver,
  usage: UsageSizes,
  options: { n: number; last?: string; query?: string; visible?: (name: string) => boolean },
): Promise<RepositoryPage> {
  const query = options.query?.toLowerCase();
  const names: string[] = [];
  let cursor = options.last;
  let scanned = 0;
  let next: string | undefined;
  for (;;) {
    const page = await storage.list(keys.catalogPrefix, {
      startAfter: cursor !== undefined ? keys.catalogPrefix + cursor : undefined,
      limit: Math.min(1000, SCAN_LIMIT - scanned),
    });
    const batch = page.keys.map((k) => k.slice(keys.catalogPrefix.length));
    let stopped = false;
    for (const name of batch) {
      scanned++;
      cursor = name;
      if (query && !name.includes(query)) continue;
      if (options.visible && !options.visible(name)) continue;
      names.push(name);
      if (names.length === options.n) {
        stopped = true;
        break;
      }
    }
    const more = page.truncated || batch.at(-1) !== cursor;
    if (stopped) {
      if (more) next = cursor;
      break;
    }
    if (!page.truncated || batch.length === 0) break;
    if (scanned >= SCAN_LIMIT) {
      next = cursor;
      break;
    }
  }
  const sizes = await usage.get();
  const repositories = await mapLimit(names, CONCURRENCY, (name) =>
    repositorySummary(storage, name as RepositoryName, sizes),
  );
  return { repositories, ...(next !== undefined && { next }), ...(sizes && { sizesAt: sizes.generatedAt }) };
}

/** One repository's tag count, last push and size. */
export async function repositorySummary(
  storage: StorageDriver,
  name: RepositoryName,
  sizes: UsageIndex | undefined,
): Promise<RepositoryRow> {
  const listing = await listAllObjects(storage, keys.tagsPrefix(name), TAG_COUNT_LIMIT);
  let newest: Date | undefined;
  for (const o of listing.objects) if (!newest || o.lastModified > newest) newest = o.lastModified;
  const size = sizes?.bytes.get(name);
  return {
    name,
    tags: listing.objects.length,
    tagsComplete: listing.complete,
    ...(newest && { lastPush: newest.toISOString() }),
    ...(size !== undefined && { size }),
  };
}

export interface UsageIndex {
  readonly generatedAt: string;
  readonly bytes: ReadonlyMap<string, number>;
}

const usageSchema = z.object({
  generatedAt: z.string(),
  repositories: z.array(z.object({ name: z.string(), bytes: z.number() })),
});

/**
 * The last usage report's bytes per repository (gc/usage.json, written by each garbage collection
 * and `berth usage --save`), read at most once a minute per process: it names every repository, so
 * it can be large, and it changes at most once per collection.
 */
export class UsageSizes {
  private cached?: { at: number; value: UsageIndex | undefined };

  constructor(
    /** The saved report's bytes (`Registry.usage.load`). */
    private readonly load: () => Promise<Uint8Array | undefined>,
    private readonly ttlMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  async get(): Promise<UsageIndex | undefined> {
    if (this.cached && this.now() - this.cached.at < this.ttlMs) return this.cached.value;
    const stored = await this.load();
    const parsed = stored ? usageSchema.safeParse(parseStoredJson(stored)) : undefined;
    const value = parsed?.success
      ? {
          generatedAt: parsed.data.generatedAt,
          bytes: new Map(parsed.data.repositories.map((r) => [r.name, r.bytes])),
        }
      : undefined;
    this.cached = { at: this.now(), value };
    return value;
  }
}
