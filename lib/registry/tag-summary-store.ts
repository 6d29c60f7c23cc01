import { tryParseDigest } from '../oci/digest.ts';
import type { ParsedManifest } from '../oci/manifest.ts';
import type { RepositoryName } from '../oci/names.ts';
import type { StorageDriver } from '../storage/port.ts';
import { keys, meta } from './keys.ts';
import {
  SUMMARY_CONFIG_LIMIT,
  SUMMARY_META,
  encodeSummary,
  summarizeManifest,
  type TagSummary,
} from './tag-summary.ts';

const IMAGE_CONFIGS = new Set([
  'application/vnd.oci.image.config.v1+json',
  'application/vnd.docker.container.image.v1+json',
]);

/**
 * The tag object's extra metadata for a manifest being tagged (the hook in `Manifests.put`): its
 * summary, with the image config read once (two storage reads: the link, then the config's bytes).
 * A summary is a convenience for the web UI, never a reason to fail a push: anything that goes
 * wrong gives no metadata, and readers fall back to the manifest.
 */
export async function tagSummaryMetadata(
  storage: StorageDriver,
  repo: RepositoryName,
  manifest: ParsedManifest,
): Promise<Record<string, string>> {
  try {
    const summary = await summarizeStored(storage, repo, manifest.bytes, manifest.mediaType);
    return { [SUMMARY_META]: encodeSummary(summary) };
  } catch {
    return {};
  }
}

/** A manifest's summary, reading the image config it names from the repository when it is one. */
export async function summarizeStored(
  storage: StorageDriver,
  repo: RepositoryName,
  bytes: Uint8Array,
  mediaType: string,
): Promise<TagSummary> {
  const config = await readImageConfig(storage, repo, bytes);
  return summarizeManifest(bytes, mediaType, config);
}

/** The image config blob's bytes, when the manifest is an image whose config is small and linked here. */
export async function readImageConfig(
  storage: StorageDriver,
  repo: RepositoryName,
  manifestBytes: Uint8Array,
  limit = SUMMARY_CONFIG_LIMIT,
): Promise<Uint8Array | undefined> {
  let manifest: { config?: { mediaType?: unknown; digest?: unknown; size?: unknown } };
  try {
    manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as typeof manifest;
  } catch {
    return undefined;
  }
  const config = manifest?.config;
  if (typeof config?.mediaType !== 'string' || !IMAGE_CONFIGS.has(config.mediaType)) return undefined;
  if (typeof config.size !== 'number' || config.size > limit) return undefined;
  const digest = typeof config.digest === 'string' ? tryParseDigest(config.digest) : undefined;
  if (!digest) return undefined;
  const link = await storage.head(keys.layerLink(repo, digest));
  const dataKey = link?.metadata[meta.dataKey];
  if (!dataKey) return undefined;
  const object = await storage.get(dataKey);
  return object && object.size <= limit ? object.body : undefined;
}
