import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';

/**
 * Which storage operations a function makes, and under which key prefixes (see
 * docs/architecture.md, "Storage layout"). The IAM statements are generated from this; keep it in
 * step with the storage calls in lib/registry (test/infra/stack.test.ts pins the resulting policies).
 */
export interface StorageAccess {
  /** GetObject, HeadObject, presigned GET/HEAD URLs (s3:GetObject). */
  readonly read: readonly string[];
  /** PutObject, CreateMultipartUpload, UploadPart (also presigned), CompleteMultipartUpload (s3:PutObject). */
  readonly write: readonly string[];
  /** DeleteObject (s3:DeleteObject). */
  readonly delete: readonly string[];
  /** ListObjectsV2 prefixes (s3:ListBucket with an s3:prefix condition); `all` lists anywhere. */
  readonly list: readonly string[] | 'all';
  /** AbortMultipartUpload and ListParts on the keys multipart uploads write (s3:AbortMultipartUpload, s3:ListMultipartUploadParts). */
  readonly multipart: readonly string[];
  /** ListMultipartUploads over the bucket (s3:ListBucketMultipartUploads). */
  readonly listUploads: boolean;
}

/** The web UI API's per-repository cache of tag summaries (lib/browse/tags.ts), written on reads. */
export const SUMMARIES_PREFIX = 'summaries/';

/** Every prefix the registry's layout uses. */
export const LAYOUT_PREFIXES = ['blobs/', 'data/', 'repos/', 'catalog/', 'uploads/'] as const;

/**
 * The registry function (and the verifier, which runs the same operations for direct uploads): it
 * reads and writes the whole layout, deletes what uploads, tags, manifests, links and referrers
 * leave behind, and never deletes a blob or a catalog marker (garbage collection does, in the
 * janitor). It reads the last usage report and GC run garbage collection saved (the usage API and
 * the web UI's operations page), and reads and writes the web UI's tag summary cache.
 *
 * Listing is granted on the whole bucket, not only the prefixes it lists (tags, referrers, the
 * catalog): S3 answers a GET or HEAD of a missing key with 404 only to a caller that may list the
 * bucket, and 403 to anyone else. Every push HEADs blobs that are not there yet; with a
 * prefix-conditioned ListBucket those would all be 403s, which the S3 driver rightly reports as a
 * storage failure rather than "not found".
 */
export const REGISTRY_ACCESS: StorageAccess = {
  // gc/upload-state.key: the key that signs the state carried in upload URLs, created by the first
  // container that needs it (lib/registry/upload-state.ts).
  read: [...LAYOUT_PREFIXES, SUMMARIES_PREFIX, 'gc/usage.json', 'gc/last-run.json', 'gc/upload-state.key'],
  write: [...LAYOUT_PREFIXES, SUMMARIES_PREFIX, 'gc/upload-state.key'],
  delete: ['data/', 'repos/', 'uploads/'],
  list: 'all',
  multipart: ['data/'],
  listUploads: false,
};

/** The verifier: the registry's operations on direct uploads, without the reports and the web UI's cache. */
export const VERIFIER_ACCESS: StorageAccess = {
  ...REGISTRY_ACCESS,
  read: LAYOUT_PREFIXES,
  write: LAYOUT_PREFIXES,
};

/**
 * The janitor: stale upload sessions and garbage collection, which reads the whole layout, deletes
 * unreferenced blobs, data, links, manifests and catalog markers, and keeps its progress under gc/.
 * It may read everything anyway, so listing is not narrowed by prefix.
 */
export const JANITOR_ACCESS: StorageAccess = {
  read: [...LAYOUT_PREFIXES, 'gc/'],
  write: [...LAYOUT_PREFIXES, 'gc/'],
  delete: [...LAYOUT_PREFIXES, 'gc/'],
  list: 'all',
  multipart: ['data/'],
  listUploads: true,
};

/** IAM statements granting exactly `access` on `bucket`. */
export function storageStatements(bucket: IBucket, access: StorageAccess): PolicyStatement[] {
  // A prefix ends with `/` and grants what is under it; anything else names one key.
  const objects = (prefixes: readonly string[]) =>
    prefixes.map((p) => bucket.arnForObjects(p.endsWith('/') ? `${p}*` : p));
  const statements: PolicyStatement[] = [];
  const byPrefixes = new Map<string, { prefixes: readonly string[]; actions: string[] }>();
  const add = (action: string, prefixes: readonly string[]) => {
    if (prefixes.length === 0) return;
    const key = [...prefixes].sort().join(',');
    const entry = byPrefixes.get(key) ?? { prefixes, actions: [] };
    entry.actions.push(action);
    byPrefixes.set(key, entry);
  };
  add('s3:GetObject', access.read);
  add('s3:PutObject', access.write);
  add('s3:DeleteObject', access.delete);
  add('s3:AbortMultipartUpload', access.multipart);
  add('s3:ListMultipartUploadParts', access.multipart);
  for (const { prefixes, actions } of byPrefixes.values()) {
    statements.push(new PolicyStatement({ actions, resources: objects(prefixes) }));
  }
  if (access.list === 'all') {
    statements.push(new PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));
  } else if (access.list.length > 0) {
    statements.push(
      new PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': access.list.map((p) => `${p}*`) } },
      }),
    );
  }
  if (access.listUploads) {
    statements.push(
      new PolicyStatement({ actions: ['s3:ListBucketMultipartUploads'], resources: [bucket.bucketArn] }),
    );
  }
  return statements;
}
