import { parseDigest, type ParsedDigest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import { isManifestMediaType } from '../oci/media-types.ts';
import type { RepositoryName } from '../oci/names.ts';
import { mapLimit } from '../util/concurrency.ts';
import { BlobBeingVerified, IndexEntryUnknown, IndexManifestUnknown } from './errors.ts';

/**
 * Whether an index entry may name a blob instead of a manifest. BuildKit's registry cache (the
 * default of `buildctl --export-cache type=registry`, `docker buildx --cache-to type=registry`) is an
 * index whose entries are its layer blobs and a `application/vnd.buildkit.cacheconfig.v0` blob;
 * Distribution accepts such an entry when the blob is linked in the repository, and so does Berth.
 * An entry that says it is a manifest or an index must be one: a client following it asks
 * `/manifests/<digest>`, which a blob cannot answer.
 */
export function mayNameBlob(entry: Pick<Descriptor, 'mediaType'>): boolean {
  return !isManifestMediaType(entry.mediaType);
}

/** How the index check asks the repository (Manifests.put's lookups, which may answer from its cache). */
export interface EntryLookups {
  /** Whether the blob is linked in the repository. */
  blob(digest: ParsedDigest): Promise<boolean>;
  /** Whether the manifest is in the repository. */
  manifest(digest: ParsedDigest): Promise<boolean>;
  /** Whether a direct upload of the blob is still being verified. */
  verifying(digest: ParsedDigest): Promise<boolean>;
}

/**
 * Checks that every entry of an index names something the repository holds: a manifest, or, for an
 * entry whose media type is not a manifest's, a blob linked in the repository (checked like an
 * image's layers, so garbage collection's settle window covers it the same way). Refuses
 * (IndexManifestUnknown, IndexEntryUnknown, BlobBeingVerified), naming the first entry that names
 * nothing. Entries are looked up all at once (up to `concurrency`): one storage round trip for an
 * index of that many entries.
 */
export async function checkIndexEntries(
  lookups: EntryLookups,
  repo: RepositoryName,
  entries: readonly Descriptor[],
  concurrency: number,
): Promise<void> {
  const missing = await mapLimit(entries, concurrency, async (entry) => {
    const digest = parseDigest(entry.digest);
    // Blob entries (a cache's layers) are the common case where they are allowed: look there first.
    if (mayNameBlob(entry) && (await lookups.blob(digest))) return undefined;
    if (await lookups.manifest(digest)) return undefined;
    return entry;
  });
  const entry = missing.find((d) => d !== undefined);
  if (!entry) return;
  if (!mayNameBlob(entry)) throw new IndexManifestUnknown(repo, entry.digest);
  if (await lookups.verifying(parseDigest(entry.digest))) {
    throw new BlobBeingVerified(repo, entry.digest, 'index');
  }
  throw new IndexEntryUnknown(repo, entry.digest, entry.mediaType);
}
