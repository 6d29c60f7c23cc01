import { tryParseDigest, type ParsedDigest } from '../oci/digest.ts';
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
 * summary, from the manifest and, for an image, its config's bytes when the caller has them. A
 * pure function: the push reads the config itself, in parallel with its other storage calls. A
 * summary is a convenience for the web UI, never a reason to fail a push: anything that goes wrong
 * gives no metadata, and readers fall back to the manifest.
 */
export function tagSummaryMetadata(
  manifest: ParsedManifest,
  configBytes: Uint8Array | undefined,
): Record<string, string> {
  try {
    const summary = summarizeManifest(manifest.bytes, manifest.mediaType, configBytes);
    return { [SUMMARY_META]: encodeSummary(summary) };
  } catch {
    return {};
  }
}

/** An image manifest's config descriptor, when its summary would read it (a small image config). */
export function summaryConfigOf(
  manifestBytes: Uint8Array,
  limit = SUMMARY_CONFIG_LIMIT,
): { readonly digest: ParsedDigest; readonly size: number } | undefined {
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
  return digest ? { digest, size: config.size } : undefined;
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
  const config = summaryConfigOf(manifestBytes, limit);
  if (!config) return undefined;
  const digest = config.digest;
  const link = await storage.head(keys.layerLink(repo, digest));
  const dataKey = link?.metadata[meta.dataKey];
  if (!dataKey) return undefined;
  const object = await storage.get(dataKey);
  return object && object.size <= limit ? object.body : undefined;
}
