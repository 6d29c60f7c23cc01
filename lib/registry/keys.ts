import type { ParsedDigest } from '../oci/digest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';

/**
 * The storage layout, in one place. Every key is built from parsed names, tags and digests, so a
 * key can never escape its prefix. See docs/architecture.md for what each object holds.
 */
export const keys = {
  blob: (d: ParsedDigest) => `blobs/${d.algorithm}/${d.hex}`,
  data: (uploadId: string) => `data/${uploadId}`,
  layerLink: (repo: RepositoryName, d: ParsedDigest) => `repos/${repo}/_layers/${d.algorithm}/${d.hex}`,
  /** Marker: a direct upload of this blob into the repository is being verified (not yet linked). */
  verifying: (repo: RepositoryName, d: ParsedDigest) => `repos/${repo}/_verifying/${d.algorithm}/${d.hex}`,
  manifest: (repo: RepositoryName, d: ParsedDigest) => `repos/${repo}/_manifests/${d.algorithm}/${d.hex}`,
  tag: (repo: RepositoryName, tag: Tag) => `repos/${repo}/_tags/${tag}`,
  tagsPrefix: (repo: RepositoryName) => `repos/${repo}/_tags/`,
  manifestsPrefix: (repo: RepositoryName) => `repos/${repo}/_manifests/`,
  referrersPrefix: (repo: RepositoryName, subject: ParsedDigest) =>
    `repos/${repo}/_referrers/${subject.algorithm}/${subject.hex}/`,
  referrer: (repo: RepositoryName, subject: ParsedDigest, d: ParsedDigest) =>
    `repos/${repo}/_referrers/${subject.algorithm}/${subject.hex}/${d.algorithm}-${d.hex}`,
  catalogPrefix: 'catalog/',
  catalog: (repo: RepositoryName) => `catalog/${repo}`,
  uploadsPrefix: 'uploads/',
  session: (id: string) => `uploads/${id}.json`,
  /** Written to read the store's clock (store-clock.ts); holds nothing. Under gc/, which the janitor may write. */
  clock: 'gc/clock',
  /** The last usage report (usage.ts): written by garbage collection and `berth usage --save`. */
  usage: 'gc/usage.json',
  /** The key that signs upload state carried in upload URLs (upload-state.ts): 32 random bytes. */
  uploadStateKey: 'gc/upload-state.key',
  /**
   * Where a collection sets items aside: `gc/quarantine/<run>/<original key>` (lib/gc/state.ts writes
   * them; the upload path only looks, before deleting data a set-aside blob may name).
   */
  quarantinePrefix: 'gc/quarantine/',
  /** Under `data/`, like a multipart upload's object: a small blob's tail becomes its data as it is. */
  tail: (id: string, seq: number, nonce?: string) =>
    `data/${id}.tail-${seq}${nonce ? `-${nonce.replace(/[^0-9a-f]/g, '').slice(0, 8)}` : ''}`,
} as const;

/**
 * Reading keys back: what a listing of the layout found. The inverse of `keys`, kept next to it so
 * that the layout has one owner (garbage collection, fsck and usage list the store and parse here).
 */
export const parse = {
  /** `repos/<name>/_<kind>/<rest>`: names cannot contain a component starting with `_`. */
  repoKey(key: string): { repo: string; kind: RepoKeyKind; rest: string } | undefined {
    const match = /^repos\/(.+?)\/_(layers|manifests|tags|referrers|verifying)\/(.+)$/.exec(key);
    return match ? { repo: match[1]!, kind: match[2] as RepoKeyKind, rest: match[3]! } : undefined;
  },
  /** `blobs/<alg>/<hex>` -> `<alg>:<hex>`. */
  blobKey(key: string): string | undefined {
    const match = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(key);
    return match ? `${match[1]}:${match[2]}` : undefined;
  },
  /** `<alg>/<hex>` (the tail of link, manifest and verifying keys) -> `<alg>:<hex>`. */
  digestPath(path: string): string | undefined {
    const match = /^([a-z0-9]+)\/([a-f0-9]+)$/.exec(path);
    return match ? `${match[1]}:${match[2]}` : undefined;
  },
  /** A referrer entry's `<alg>/<subject-hex>/<alg>-<hex>` -> subject and referrer digests. */
  referrerPath(path: string): { subject: string; digest: string } | undefined {
    const match = /^([a-z0-9]+)\/([a-f0-9]+)\/([a-z0-9]+)-([a-f0-9]+)$/.exec(path);
    return match ? { subject: `${match[1]}:${match[2]}`, digest: `${match[3]}:${match[4]}` } : undefined;
  },
  /** The upload session a key under `data/` or `uploads/` belongs to: its data, tails or state. */
  uploadKey(key: string): { id: string; kind: 'data' | 'tail' | 'session' } | undefined {
    const match = /^(data|uploads)\/([0-9a-f-]{36})(\.tail-\d+(?:-[0-9a-f]+)?|\.json)?$/.exec(key);
    if (!match) return undefined;
    const [, prefix, id, suffix] = match as unknown as [string, string, string, string | undefined];
    if (suffix === '.json') return prefix === 'uploads' ? { id, kind: 'session' } : undefined;
    if (suffix) return { id, kind: 'tail' };
    return prefix === 'data' ? { id, kind: 'data' } : undefined;
  },
  /** The catalog marker's repository. */
  catalogKey(key: string): string | undefined {
    return key.startsWith('catalog/') && key.length > 'catalog/'.length
      ? key.slice('catalog/'.length)
      : undefined;
  },
} as const;

export type RepoKeyKind = 'layers' | 'manifests' | 'tags' | 'referrers' | 'verifying';

/** `sha256:<hex>` -> `sha256/<hex>`, the form keys use. */
export function pathOfDigest(digest: string): string {
  return digest.replace(':', '/');
}

/** Object metadata names (S3 user metadata: lowercase, ASCII). */
export const meta = {
  digest: 'digest',
  dataKey: 'data-key',
  size: 'blob-size',
  /** On a tag of a mirrored repository: when the upstream last confirmed it (ms since the epoch). */
  checked: 'mirror-checked',
  /** On an upload session object: the session is over, this is its `ended` marker (upload-session.ts). */
  ended: 'upload-ended',
} as const;
