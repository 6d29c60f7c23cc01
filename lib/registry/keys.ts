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
  /** Under `data/`, like a multipart upload's object: a small blob's tail becomes its data as it is. */
  tail: (id: string, seq: number, nonce?: string) =>
    `data/${id}.tail-${seq}${nonce ? `-${nonce.replace(/[^0-9a-f]/g, '').slice(0, 8)}` : ''}`,
} as const;

/** Object metadata names (S3 user metadata: lowercase, ASCII). */
export const meta = {
  digest: 'digest',
  dataKey: 'data-key',
  size: 'blob-size',
} as const;
