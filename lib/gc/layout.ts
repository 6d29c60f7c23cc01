import type { StorageDriver } from '../storage/port.ts';

/** The keys of one repository, as one listing of `repos/` finds them (docs/architecture.md). */
export interface RepoKeys {
  readonly name: string;
  /** Tag names. */
  readonly tags: string[];
  /** Manifest digests (`sha256:<hex>`). */
  readonly manifests: string[];
  /** Digests of the blobs linked into the repository. */
  readonly links: string[];
  /** Referrer entries: the entry's key, its subject and the referring manifest's digest. */
  readonly referrers: { key: string; subject: string; digest: string }[];
  /** The repository's last key: where a resumed listing continues. */
  lastKey: string;
}

const REPO_KEY = /^repos\/(.+?)\/_(layers|manifests|tags|referrers|verifying)\/(.+)$/;

/**
 * Lists `repos/` after `startAfter` and yields one repository at a time. Names cannot contain a
 * component starting with `_`, so the first `/_` ends the name, and all of a repository's keys
 * (`repos/<name>/_…`) are contiguous in byte order.
 */
export async function* scanRepos(storage: StorageDriver, startAfter?: string): AsyncIterable<RepoKeys> {
  let current: RepoKeys | undefined;
  let cursor = startAfter;
  for (;;) {
    const page = await storage.list('repos/', { startAfter: cursor, limit: 1000 });
    for (const key of page.keys) {
      const match = REPO_KEY.exec(key);
      if (!match) continue;
      const [, name, kind, rest] = match as unknown as [string, string, string, string];
      if (current && current.name !== name) {
        yield current;
        current = undefined;
      }
      current ??= { name, tags: [], manifests: [], links: [], referrers: [], lastKey: key };
      current.lastKey = key;
      if (kind === 'tags') current.tags.push(rest);
      else if (kind === 'manifests' || kind === 'layers') {
        const digest = digestOfPath(rest);
        if (digest) (kind === 'layers' ? current.links : current.manifests).push(digest);
      } else if (kind === 'referrers') {
        const parts = /^([a-z0-9]+)\/([a-f0-9]+)\/([a-z0-9]+)-([a-f0-9]+)$/.exec(rest);
        if (parts) {
          current.referrers.push({
            key,
            subject: `${parts[1]}:${parts[2]}`,
            digest: `${parts[3]}:${parts[4]}`,
          });
        }
      }
    }
    const last = page.keys[page.keys.length - 1];
    if (!page.truncated || last === undefined) break;
    cursor = last;
  }
  if (current) yield current;
}

/** `sha256/<hex>` -> `sha256:<hex>`. */
export function digestOfPath(path: string): string | undefined {
  const match = /^([a-z0-9]+)\/([a-f0-9]+)$/.exec(path);
  return match ? `${match[1]}:${match[2]}` : undefined;
}

/** `sha256:<hex>` -> `sha256/<hex>`, the form keys use. */
export function pathOfDigest(digest: string): string {
  return digest.replace(':', '/');
}

/** Every key under `prefix` after `startAfter`, a page at a time. */
export async function* listKeys(
  storage: StorageDriver,
  prefix: string,
  startAfter?: string,
): AsyncIterable<string[]> {
  let cursor = startAfter;
  for (;;) {
    const page = await storage.list(prefix, { startAfter: cursor, limit: 1000 });
    if (page.keys.length > 0) yield page.keys;
    const last = page.keys[page.keys.length - 1];
    if (!page.truncated || last === undefined) return;
    cursor = last;
  }
}
