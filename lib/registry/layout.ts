import type { StorageDriver } from '../storage/port.ts';
import { parse } from './keys.ts';

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
  /** Digests with a `_verifying` marker (a direct upload being verified). */
  readonly verifying: string[];
  /** The repository's last key: where a resumed listing continues. */
  lastKey: string;
}

/**
 * Lists `repos/` after `startAfter` and yields one repository at a time. Names cannot contain a
 * component starting with `_`, so the first `/_` ends the name, and all of a repository's keys
 * (`repos/<name>/_…`) are contiguous in byte order.
 */
export async function* scanRepos(storage: StorageDriver, startAfter?: string): AsyncIterable<RepoKeys> {
  let current: RepoKeys | undefined;
  for await (const page of listKeys(storage, 'repos/', startAfter)) {
    for (const key of page) {
      const parsed = parse.repoKey(key);
      if (!parsed) continue;
      const { repo, kind, rest } = parsed;
      if (current && current.name !== repo) {
        yield current;
        current = undefined;
      }
      current ??= {
        name: repo,
        tags: [],
        manifests: [],
        links: [],
        referrers: [],
        verifying: [],
        lastKey: key,
      };
      current.lastKey = key;
      if (kind === 'tags') current.tags.push(rest);
      else if (kind === 'referrers') {
        const entry = parse.referrerPath(rest);
        if (entry) current.referrers.push({ key, ...entry });
      } else {
        const digest = parse.digestPath(rest);
        if (!digest) continue;
        if (kind === 'layers') current.links.push(digest);
        else if (kind === 'manifests') current.manifests.push(digest);
        else current.verifying.push(digest);
      }
    }
  }
  if (current) yield current;
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
