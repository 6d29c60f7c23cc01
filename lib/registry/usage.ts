import { mapLimit } from '../util/concurrency.ts';
import { keys, meta } from './keys.ts';
import type { StorageDriver } from '../storage/port.ts';
import { listKeys, scanRepos } from './layout.ts';
import { formatBytes } from '../logging/format.ts';

export interface RepositoryUsage {
  readonly name: string;
  /** Blobs the repository links (may serve), and their bytes: a shared blob counts in full here. */
  readonly blobs: number;
  readonly bytes: number;
  /** Of those, the blobs no other repository links, and their bytes: what deleting the repository frees. */
  readonly exclusiveBlobs: number;
  readonly exclusiveBytes: number;
  readonly manifests: number;
  readonly tags: number;
}

export interface UsageReport {
  readonly generatedAt: string;
  /** Every stored blob once, shared or not, linked or not. */
  readonly totalBlobs: number;
  readonly totalBytes: number;
  readonly repositories: RepositoryUsage[];
}

const CONCURRENCY = 32;

/**
 * The usage report (docs/gc.md): bytes and blob counts per repository. Computing it lists the whole
 * store, too slow for a request on a large registry, so each garbage collection (the janitor on AWS,
 * `berth gc`) and `berth usage --save` compute and save it, and the admin API and the web UI read
 * the saved one (`gc/usage.json`).
 */
export class Usage {
  constructor(private readonly storage: StorageDriver) {}

  /** One listing of `repos/` and `blobs/`, and one HEAD per stored blob (a pointer's size is in its metadata). */
  async compute(now = new Date()): Promise<UsageReport> {
    const storage = this.storage;
    const sizes = new Map<string, number>();
    let totalBytes = 0;
    for await (const page of listKeys(storage, 'blobs/')) {
      await mapLimit(page, CONCURRENCY, async (key) => {
        const match = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(key);
        const info = match ? await storage.head(key) : undefined;
        if (!match || !info) return;
        const size = info.metadata[meta.dataKey] ? Number(info.metadata[meta.size] ?? 0) : info.size;
        sizes.set(`${match[1]}:${match[2]}`, size);
        totalBytes += size;
      });
    }
    const repos: { name: string; links: string[]; manifests: number; tags: number }[] = [];
    const users = new Map<string, number>();
    for await (const repo of scanRepos(storage)) {
      const links = repo.links.filter((d) => sizes.has(d));
      for (const d of links) users.set(d, (users.get(d) ?? 0) + 1);
      repos.push({ name: repo.name, links, manifests: repo.manifests.length, tags: repo.tags.length });
    }
    const repositories = repos
      .map((r) => {
        const exclusive = r.links.filter((d) => users.get(d) === 1);
        const bytesOf = (ds: string[]) => ds.reduce((t, d) => t + (sizes.get(d) ?? 0), 0);
        return {
          name: r.name,
          blobs: r.links.length,
          bytes: bytesOf(r.links),
          exclusiveBlobs: exclusive.length,
          exclusiveBytes: bytesOf(exclusive),
          manifests: r.manifests,
          tags: r.tags,
        };
      })
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    return { generatedAt: now.toISOString(), totalBlobs: sizes.size, totalBytes, repositories };
  }

  /** Saves the report where the admin API and the web UI read it from (`gc/usage.json`). */
  async save(report: UsageReport): Promise<void> {
    await this.storage.put(keys.usage, new TextEncoder().encode(JSON.stringify(report)), {
      contentType: 'application/json',
    });
  }

  /** The last saved report as stored (JSON bytes), if any. */
  async load(): Promise<Uint8Array | undefined> {
    return (await this.storage.get(keys.usage))?.body;
  }
}

/** A human table of the report. */
export function formatUsage(report: UsageReport): string {
  const rows = report.repositories.map((r) => [
    r.name,
    String(r.blobs),
    formatBytes(r.bytes),
    String(r.exclusiveBlobs),
    formatBytes(r.exclusiveBytes),
    String(r.manifests),
    String(r.tags),
  ]);
  const header = ['REPOSITORY', 'BLOBS', 'BYTES', 'EXCLUSIVE', 'EXCL. BYTES', 'MANIFESTS', 'TAGS'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [
    line(header),
    ...rows.map(line),
    '',
    `total: ${report.totalBlobs} blobs, ${formatBytes(report.totalBytes)} (shared blobs counted once)`,
    '',
  ].join('\n');
}
