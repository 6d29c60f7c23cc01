import { tryParseDigest, type ParsedDigest } from '../oci/digest.ts';
import { isIndexMediaType } from '../oci/media-types.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';
import { mapLimit } from '../util/concurrency.ts';
import { parseStoredJson } from '../util/json.ts';
import { keys, meta } from '../registry/keys.ts';
import type { RegistryStore } from '../registry/registry.ts';
import {
  SUMMARY_META,
  decodeSummary,
  isAttestationManifest,
  kindOfArtifactType,
  summarizeManifest,
  type ArtifactKind,
  type TagSummary,
} from '../registry/tag-summary.ts';
import { readImageConfig } from '../registry/tag-summary-store.ts';

/** Configs up to this size are shown; larger ones (a history of thousands of steps) are not read. */
export const CONFIG_DISPLAY_LIMIT = 1024 * 1024;
/** Children of an index whose images are sized (one manifest read each). */
export const INDEX_CHILDREN_LIMIT = 64;
/** Referrers listed on a manifest's page. */
export const REFERRERS_SHOWN = 100;

export interface LayerRow {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** `org.opencontainers.image.title`, when an artifact names its files. */
  readonly title?: string;
}

export interface ImageConfigView {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  readonly created?: string;
  readonly author?: string;
  readonly platform?: string;
  readonly user?: string;
  readonly workingDir?: string;
  readonly env?: string[];
  readonly entrypoint?: string[];
  readonly cmd?: string[];
  readonly exposedPorts?: string[];
  readonly volumes?: string[];
  readonly stopSignal?: string;
  readonly labels?: Record<string, string>;
  readonly history?: { created?: string; createdBy?: string; comment?: string; emptyLayer?: boolean }[];
  /** The config was not read: larger than CONFIG_DISPLAY_LIMIT or not an image config. */
  readonly omitted?: string;
}

export interface PlatformRow {
  readonly digest: string;
  readonly mediaType: string;
  readonly platform?: string;
  /** BuildKit's provenance/SBOM manifests inside an index. */
  readonly attestation: boolean;
  /** The image's compressed size (config and layers), when read. */
  readonly size?: number;
}

export interface ReferrerRow {
  readonly digest: string;
  readonly mediaType: string;
  readonly artifactType?: string;
  readonly kind: ArtifactKind;
  readonly size: number;
  readonly created?: string;
  /** Cosign's tag scheme (`sha256-<hex>.sig`) rather than the referrers API. */
  readonly tag?: string;
}

export interface ManifestDetails {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  readonly summary: TagSummary;
  /** The manifest exactly as stored. */
  readonly manifest: string;
  readonly subject?: string;
  readonly annotations?: Record<string, string>;
  readonly layers?: LayerRow[];
  readonly config?: ImageConfigView;
  readonly platforms?: PlatformRow[];
  readonly referrers: ReferrerRow[];
  readonly referrersMore: boolean;
}

/**
 * Everything the manifest page shows, read server-side: a browser cannot fetch the config blob
 * itself on S3 (blob GETs redirect to presigned S3 URLs, which answer no CORS).
 */
export async function manifestDetails(
  store: RegistryStore,
  repo: RepositoryName,
  ref: Reference,
): Promise<ManifestDetails> {
  const stored = await store.registry.manifests.get(repo, ref);
  const json = (parseStoredJson(stored.bytes) ?? {}) as RawManifest;
  const digest = stored.digest;
  const [config, platforms, referrers] = await Promise.all([
    isIndexMediaType(stored.mediaType) ? undefined : configView(store, repo, stored.bytes, json),
    isIndexMediaType(stored.mediaType) ? platformRows(store, repo, json) : undefined,
    referrerRows(store, repo, digest),
  ]);
  // The config was read once for the view; the summary takes its time and platform from there.
  const summary = summarizeManifest(stored.bytes, stored.mediaType);
  const withConfig: TagSummary =
    config?.created || config?.platform
      ? {
          ...summary,
          ...(config.created && { created: config.created }),
          ...(config.platform && { platforms: [config.platform] }),
        }
      : summary;
  const withSize: TagSummary =
    platforms && withConfig.size === undefined
      ? { ...withConfig, size: platforms.reduce((t, p) => t + (p.size ?? 0), 0) }
      : withConfig;
  const subject = typeof json.subject?.digest === 'string' ? json.subject.digest : undefined;
  return {
    digest: digest.digest,
    mediaType: stored.mediaType,
    size: stored.size,
    summary: withSize,
    manifest: new TextDecoder().decode(stored.bytes),
    ...(subject && { subject }),
    ...(isStringRecord(json.annotations) && { annotations: json.annotations }),
    ...(Array.isArray(json.layers) && { layers: json.layers.filter(isObject).map(layerRow) }),
    ...(config && { config }),
    ...(platforms && { platforms }),
    referrers: referrers.rows,
    referrersMore: referrers.more,
  };
}

interface RawDescriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
  artifactType?: unknown;
  platform?: { os?: unknown; architecture?: unknown; variant?: unknown };
  annotations?: Record<string, unknown>;
}

interface RawManifest {
  config?: RawDescriptor;
  layers?: unknown[];
  manifests?: unknown[];
  subject?: RawDescriptor;
  annotations?: unknown;
}

function layerRow(d: RawDescriptor): LayerRow {
  const title = d.annotations?.['org.opencontainers.image.title'];
  return {
    digest: String(d.digest),
    mediaType: String(d.mediaType),
    size: typeof d.size === 'number' ? d.size : 0,
    ...(typeof title === 'string' && { title }),
  };
}

async function configView(
  store: RegistryStore,
  repo: RepositoryName,
  bytes: Uint8Array,
  manifest: RawManifest,
): Promise<ImageConfigView | undefined> {
  const descriptor = manifest.config;
  if (!isObject(descriptor)) return undefined;
  const base = {
    digest: String(descriptor.digest),
    mediaType: String(descriptor.mediaType),
    size: typeof descriptor.size === 'number' ? descriptor.size : 0,
  };
  const raw = await readImageConfig(store.storage, repo, bytes, CONFIG_DISPLAY_LIMIT);
  if (!raw) {
    return {
      ...base,
      omitted:
        base.size > CONFIG_DISPLAY_LIMIT
          ? `the config is ${base.size} bytes, more than is shown`
          : 'not an image config',
    };
  }
  const c = (parseStoredJson(raw) ?? {}) as Record<string, unknown>;
  const inner = (isObject(c.config) ? c.config : {}) as Record<string, unknown>;
  const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x) => typeof x === 'string') : undefined);
  const keysOf = (v: unknown) => (isObject(v) ? Object.keys(v) : undefined);
  const os = typeof c.os === 'string' ? c.os : undefined;
  const arch = typeof c.architecture === 'string' ? c.architecture : undefined;
  const variant = typeof c.variant === 'string' ? c.variant : undefined;
  const history = Array.isArray(c.history)
    ? c.history.filter(isObject).map((h) => {
        const e = h as Record<string, unknown>;
        return {
          ...(typeof e.created === 'string' && { created: e.created }),
          ...(typeof e.created_by === 'string' && { createdBy: e.created_by }),
          ...(typeof e.comment === 'string' && { comment: e.comment }),
          ...(e.empty_layer === true && { emptyLayer: true }),
        };
      })
    : undefined;
  const view: ImageConfigView = {
    ...base,
    ...(typeof c.created === 'string' && { created: c.created }),
    ...(typeof c.author === 'string' && { author: c.author }),
    ...(os && arch && { platform: `${os}/${arch}${variant ? `/${variant}` : ''}` }),
    ...(typeof inner.User === 'string' && inner.User !== '' && { user: inner.User }),
    ...(typeof inner.WorkingDir === 'string' && inner.WorkingDir !== '' && { workingDir: inner.WorkingDir }),
    ...(strings(inner.Env) && { env: strings(inner.Env) }),
    ...(strings(inner.Entrypoint) && { entrypoint: strings(inner.Entrypoint) }),
    ...(strings(inner.Cmd) && { cmd: strings(inner.Cmd) }),
    ...(keysOf(inner.ExposedPorts) && { exposedPorts: keysOf(inner.ExposedPorts) }),
    ...(keysOf(inner.Volumes) && { volumes: keysOf(inner.Volumes) }),
    ...(typeof inner.StopSignal === 'string' && { stopSignal: inner.StopSignal }),
    ...(isStringRecord(inner.Labels) && { labels: inner.Labels }),
    ...(history && { history }),
  };
  return view;
}

async function platformRows(
  store: RegistryStore,
  repo: RepositoryName,
  index: RawManifest,
): Promise<PlatformRow[]> {
  const children = (index.manifests ?? []).filter(isObject).map((child, position) => ({ child, position }));
  return mapLimit(children, 8, async ({ child, position }) => {
    const platform = child.platform;
    const os = typeof platform?.os === 'string' ? platform.os : undefined;
    const arch = typeof platform?.architecture === 'string' ? platform.architecture : undefined;
    const variant = typeof platform?.variant === 'string' ? platform.variant : undefined;
    const attestation = isAttestationManifest(child);
    const digest = typeof child.digest === 'string' ? tryParseDigest(child.digest) : undefined;
    const stored =
      digest && !attestation && position < INDEX_CHILDREN_LIMIT
        ? await store.storage.get(keys.manifest(repo, digest))
        : undefined;
    const size = stored ? summarizeManifest(stored.body, stored.contentType ?? '').size : undefined;
    return {
      digest: String(child.digest),
      mediaType: String(child.mediaType),
      ...(os && arch && { platform: `${os}/${arch}${variant ? `/${variant}` : ''}` }),
      attestation,
      ...(size !== undefined && { size }),
    };
  });
}

async function referrerRows(
  store: RegistryStore,
  repo: RepositoryName,
  digest: ParsedDigest,
): Promise<{ rows: ReferrerRow[]; more: boolean }> {
  const [page, tagged] = await Promise.all([
    store.registry.referrers.list(repo, digest, {}),
    tagSchemeReferrers(store, repo, digest),
  ]);
  const rows: ReferrerRow[] = page.descriptors.slice(0, REFERRERS_SHOWN).map((d) => ({
    digest: d.digest,
    mediaType: d.mediaType,
    ...(d.artifactType && { artifactType: d.artifactType }),
    kind: kindOfArtifactType(d.artifactType ?? d.mediaType),
    size: d.size,
    ...(d.annotations?.['org.opencontainers.image.created'] && {
      created: d.annotations['org.opencontainers.image.created'],
    }),
  }));
  return {
    rows: [...rows, ...tagged],
    more: page.next !== undefined || page.descriptors.length > REFERRERS_SHOWN,
  };
}

/** Cosign's (and others') tag scheme for registries without a referrers API: `sha256-<hex>.sig`. */
async function tagSchemeReferrers(
  store: RegistryStore,
  repo: RepositoryName,
  digest: ParsedDigest,
): Promise<ReferrerRow[]> {
  const suffixes = ['sig', 'att', 'sbom'] as const;
  const found = await Promise.all(
    suffixes.map(async (suffix) => {
      const tag = `${digest.algorithm}-${digest.hex}.${suffix}` as Tag;
      const head = await store.storage.head(keys.tag(repo, tag));
      if (!head) return undefined;
      const summary = decodeSummary(head.metadata[SUMMARY_META]);
      const kind: ArtifactKind =
        summary?.kind ?? (suffix === 'sig' ? 'signature' : suffix === 'att' ? 'attestation' : 'sbom');
      return {
        digest: head.metadata[meta.digest] ?? '',
        mediaType: head.contentType ?? '',
        kind,
        size: head.size,
        tag,
      } satisfies ReferrerRow;
    }),
  );
  return found.filter((r) => r !== undefined);
}

function isObject(value: unknown): value is RawDescriptor {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return isObject(value) && Object.values(value).every((v) => typeof v === 'string');
}
