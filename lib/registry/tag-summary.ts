import { isIndexMediaType } from '../oci/media-types.ts';

/**
 * What a list of tags shows for each tag without reading its manifest again: the kind of thing it
 * names, its compressed size, when it was built and for which platforms. Computed once, when the
 * tag is written, and kept in the tag object's metadata (`summary`), so the web UI's tags page costs
 * a listing instead of a manifest and config read per tag (docs/web-ui.md). A pure function of the
 * manifest bytes and, for an image, its config blob.
 */
export interface TagSummary {
  readonly kind: ArtifactKind;
  readonly mediaType: string;
  readonly artifactType?: string;
  /** Compressed bytes: config plus layers of an image; of an index, what its children add up to (computed on read). */
  readonly size?: number;
  /** The image config's `created`. */
  readonly created?: string;
  /** `os/architecture[/variant]`: the config's of an image, the children's of an index. */
  readonly platforms?: readonly string[];
  /** Manifests an index lists. */
  readonly children?: number;
}

export type ArtifactKind =
  'image' | 'index' | 'helm' | 'signature' | 'attestation' | 'sbom' | 'cache' | 'artifact';

/** The user metadata name the summary is stored under (S3 user metadata: lowercase ASCII). */
export const SUMMARY_META = 'summary';

/** S3 allows 2 KB of user metadata per object; the digest and the summary must share it. */
export const SUMMARY_MAX_BYTES = 1500;

/** Configs larger than this are not read for a summary (an image config is a few KB). */
export const SUMMARY_CONFIG_LIMIT = 1024 * 1024;

const CONFIG_TYPES = new Set([
  'application/vnd.oci.image.config.v1+json',
  'application/vnd.docker.container.image.v1+json',
]);

const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json';
const BUILDKIT_CACHE = 'application/vnd.buildkit.cacheconfig.v0';

interface RawDescriptor {
  mediaType?: unknown;
  size?: unknown;
  digest?: unknown;
  artifactType?: unknown;
  platform?: { os?: unknown; architecture?: unknown; variant?: unknown };
  annotations?: Record<string, unknown>;
}

interface RawManifest {
  mediaType?: unknown;
  artifactType?: unknown;
  config?: RawDescriptor;
  layers?: RawDescriptor[];
  manifests?: RawDescriptor[];
}

/** Summarizes a manifest (already validated by the push) and, for an image, its config's bytes. */
export function summarizeManifest(
  manifestBytes: Uint8Array,
  mediaType: string,
  configBytes?: Uint8Array,
): TagSummary {
  const manifest = parseJson(manifestBytes) as RawManifest | undefined;
  if (!manifest) return { kind: 'artifact', mediaType };
  const artifactType = text(manifest.artifactType) ?? undefined;
  if (isIndexMediaType(mediaType) || Array.isArray(manifest.manifests)) {
    const children = (manifest.manifests ?? []).filter(isObject);
    const platforms = unique(children.filter((c) => !isAttestationManifest(c)).flatMap(platformOf));
    const cache = children.some((c) => c.mediaType === BUILDKIT_CACHE);
    const kind: ArtifactKind = cache ? 'cache' : artifactType ? kindOfArtifactType(artifactType) : 'index';
    return compact({
      kind,
      mediaType,
      artifactType,
      platforms: platforms.length > 0 ? platforms : undefined,
      children: children.length,
    });
  }
  const config = isObject(manifest.config) ? manifest.config : undefined;
  const layers = (manifest.layers ?? []).filter(isObject);
  const size = [config, ...layers].reduce(
    (total, d) => total + (d && isSize(d.size) ? (d.size as number) : 0),
    0,
  );
  const configType = text(config?.mediaType);
  const kind = kindOfImage(artifactType, configType, layers);
  const parsedConfig =
    kind === 'image' && configBytes
      ? (parseJson(configBytes) as
          { created?: unknown; os?: unknown; architecture?: unknown; variant?: unknown } | undefined)
      : undefined;
  const platform = parsedConfig ? platformOf({ platform: parsedConfig }) : [];
  return compact({
    kind,
    mediaType,
    artifactType: artifactType ?? (kind === 'image' || !configType ? undefined : configType),
    size,
    created: validTime(parsedConfig?.created),
    platforms: platform.length > 0 ? platform : undefined,
  });
}

/**
 * The kind of an image manifest: what its `artifactType`, or else its config's media type, says.
 * Cosign's tag-based signatures and attestations are images whose layers say what they are.
 */
function kindOfImage(
  artifactType: string | undefined,
  configType: string | undefined,
  layers: RawDescriptor[],
): ArtifactKind {
  if (artifactType) return kindOfArtifactType(artifactType);
  if (configType === HELM_CONFIG) return 'helm';
  if (configType === BUILDKIT_CACHE) return 'cache';
  const layerTypes = layers.map((l) => text(l.mediaType) ?? '');
  if (layerTypes.some((t) => t === 'application/vnd.dev.cosign.simplesigning.v1+json')) return 'signature';
  if (layerTypes.some((t) => t === 'application/vnd.dsse.envelope.v1+json')) return 'attestation';
  if (configType && CONFIG_TYPES.has(configType)) return 'image';
  if (configType) return kindOfArtifactType(configType);
  return 'artifact';
}

/** What an artifact type (or a non-image config type) says the artifact is. */
export function kindOfArtifactType(type: string): ArtifactKind {
  const t = type.toLowerCase();
  if (t === HELM_CONFIG) return 'helm';
  if (t === BUILDKIT_CACHE) return 'cache';
  if (t.includes('spdx') || t.includes('cyclonedx') || t.includes('syft') || t.includes('sbom'))
    return 'sbom';
  if (
    t.includes('signature') ||
    t.includes('.sig.') ||
    t.includes('notary') ||
    t.includes('cosign.artifact.sig')
  )
    return 'signature';
  if (
    t.includes('in-toto') ||
    t.includes('attestation') ||
    t.includes('dsse') ||
    t.includes('sigstore.bundle')
  )
    return 'attestation';
  if (CONFIG_TYPES.has(t)) return 'image';
  return 'artifact';
}

/** BuildKit puts provenance and SBOM attestations into an index as `unknown/unknown` manifests. */
export function isAttestationManifest(d: RawDescriptor): boolean {
  return (
    d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ||
    (d.platform?.os === 'unknown' && d.platform?.architecture === 'unknown')
  );
}

function platformOf(d: RawDescriptor): string[] {
  const os = text(d.platform?.os);
  const arch = text(d.platform?.architecture);
  if (!os || !arch) return [];
  const variant = text(d.platform?.variant);
  return [`${os}/${arch}${variant ? `/${variant}` : ''}`];
}

/**
 * The summary as a metadata value: JSON with every character outside printable ASCII escaped (S3
 * metadata is ASCII), at most SUMMARY_MAX_BYTES; a summary that would not fit drops platforms
 * beyond what fits, and says how many there were in `children`.
 */
export function encodeSummary(summary: TagSummary): string {
  let candidate: TagSummary = summary;
  for (;;) {
    const encoded = asciiJson({ v: 1, ...candidate });
    if (encoded.length <= SUMMARY_MAX_BYTES) return encoded;
    const platforms = candidate.platforms ?? [];
    if (platforms.length > 0) {
      candidate = { ...candidate, platforms: platforms.slice(0, Math.floor(platforms.length / 2)) };
      continue;
    }
    // Only an absurd artifactType or media type gets here: keep what is certain to be short.
    return asciiJson({
      v: 1,
      kind: summary.kind,
      mediaType: summary.mediaType.slice(0, 200),
      size: summary.size,
    });
  }
}

/** A stored summary, or undefined when the value is missing or not one this version wrote. */
export function decodeSummary(value: string | undefined): TagSummary | undefined {
  if (!value) return undefined;
  const parsed = parseJson(new TextEncoder().encode(value)) as (TagSummary & { v?: unknown }) | undefined;
  if (!parsed || parsed.v !== 1 || typeof parsed.kind !== 'string' || typeof parsed.mediaType !== 'string')
    return undefined;
  const { v: _version, ...summary } = parsed;
  return summary;
}

function asciiJson(value: object): string {
  return JSON.stringify(value).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is RawDescriptor {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSize(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value.slice(0, 255) : undefined;
}

function validTime(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 64) return undefined;
  return Number.isNaN(Date.parse(value)) ? undefined : value;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
