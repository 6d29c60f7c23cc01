import { createHash } from 'node:crypto';
import * as z from 'zod';
import { RegistryError } from './errors.ts';
import { digestFromHex, tryParseDigest, type DigestAlgorithm, type ParsedDigest } from './digest.ts';
import { MediaType, baseMediaType, isManifestMediaType, type ManifestMediaType } from './media-types.ts';

/** Manifests larger than this are refused with 413, as in CNCF Distribution and the spec's guidance. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * The manifest schemas, built on first use: constructing zod schemas takes measurable time at a
 * Lambda cold start, and most requests (pulls, blob uploads) never validate a manifest.
 */
function buildSchemas() {
  const digestString = z.string().refine((v) => tryParseDigest(v) !== undefined, {
    message: 'must be a sha256 or sha512 digest',
  });
  const annotations = z.record(z.string(), z.string());
  const descriptor = z.object({
    mediaType: z.string().min(1),
    digest: digestString,
    size: z.number().int().nonnegative(),
    urls: z.array(z.string()).optional(),
    annotations: annotations.optional(),
    artifactType: z.string().optional(),
    platform: z.record(z.string(), z.unknown()).optional(),
    data: z.string().optional(),
  });
  const imageManifest = z.object({
    schemaVersion: z.literal(2),
    mediaType: z.string().optional(),
    artifactType: z.string().optional(),
    config: descriptor,
    layers: z.array(descriptor),
    subject: descriptor.optional(),
    annotations: annotations.optional(),
  });
  const index = z.object({
    schemaVersion: z.literal(2),
    mediaType: z.string().optional(),
    artifactType: z.string().optional(),
    manifests: z.array(descriptor),
    subject: descriptor.optional(),
    annotations: annotations.optional(),
  });
  return { descriptor, imageManifest, index };
}

let built: ReturnType<typeof buildSchemas> | undefined;
const schemas = () => (built ??= buildSchemas());

export type Descriptor = z.infer<ReturnType<typeof buildSchemas>['descriptor']>;

export interface ParsedManifest {
  readonly mediaType: ManifestMediaType;
  readonly digest: ParsedDigest;
  readonly bytes: Uint8Array;
  /** Blobs the repository must hold for this manifest to be pullable (config and layers). */
  readonly blobs: readonly Descriptor[];
  /**
   * An index's entries: manifests the repository must hold, or, for entries whose media type is not a
   * manifest's, blobs linked in the repository (lib/registry/index-entries.ts).
   */
  readonly children: readonly Descriptor[];
  readonly subject?: Descriptor;
  /** What the referrers API reports: artifactType, else the config media type of an image manifest. */
  readonly artifactType?: string;
  readonly annotations?: Record<string, string>;
}

export function computeDigest(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): ParsedDigest {
  return digestFromHex(algorithm, createHash(algorithm).update(bytes).digest('hex'));
}

/**
 * Parses and validates manifest bytes as pushed. The media type comes from the body's `mediaType`
 * and must agree with the request's Content-Type when both are present.
 */
export function parseManifest(
  bytes: Uint8Array,
  contentType: string | null | undefined,
  algorithm: DigestAlgorithm = 'sha256',
): ParsedManifest {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new RegistryError(
      'SIZE_INVALID',
      `manifest is ${bytes.byteLength} bytes; the limit is ${MAX_MANIFEST_BYTES}`,
      {
        status: 413,
      },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new RegistryError('MANIFEST_INVALID', 'manifest is not valid UTF-8 JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new RegistryError('MANIFEST_INVALID', 'manifest must be a JSON object');
  }
  const declared = (json as { mediaType?: unknown }).mediaType;
  const header = baseMediaType(contentType);
  if (declared !== undefined && typeof declared !== 'string') {
    throw new RegistryError('MANIFEST_INVALID', 'manifest field "mediaType" must be a string');
  }
  const mediaType = resolveMediaType(declared, header, json);
  if (declared !== undefined && header !== undefined && declared !== header) {
    throw new RegistryError(
      'MANIFEST_INVALID',
      `Content-Type "${header}" does not match the manifest's mediaType "${declared}"`,
    );
  }
  const digest = computeDigest(bytes, algorithm);
  if (mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList) {
    const index = check(schemas().index, json, mediaType);
    return {
      mediaType,
      digest,
      bytes,
      blobs: [],
      children: index.manifests,
      subject: index.subject,
      artifactType: index.artifactType,
      annotations: index.annotations,
    };
  }
  const manifest = check(schemas().imageManifest, json, mediaType);
  if (mediaType === MediaType.DockerManifest && manifest.subject) {
    throw new RegistryError(
      'MANIFEST_INVALID',
      'Docker schema2 manifests cannot carry a subject; use an OCI manifest',
    );
  }
  return {
    mediaType,
    digest,
    bytes,
    blobs: [manifest.config, ...manifest.layers.filter((layer) => !isForeignLayer(layer))],
    children: [],
    subject: manifest.subject,
    artifactType: manifest.artifactType ?? manifest.config.mediaType,
    annotations: manifest.annotations,
  };
}

function resolveMediaType(
  declared: string | undefined,
  header: string | undefined,
  json: object,
): ManifestMediaType {
  const candidate = declared ?? header ?? guessOciType(json);
  if (candidate === MediaType.DockerSchema1 || candidate === MediaType.DockerSchema1Signed) {
    throw new RegistryError(
      'MANIFEST_INVALID',
      'Docker schema1 manifests are not supported; push with a current client (schema2 or OCI)',
    );
  }
  if (!candidate || !isManifestMediaType(candidate)) {
    throw new RegistryError(
      'MANIFEST_INVALID',
      `unsupported manifest media type "${candidate ?? ''}"; expected an OCI or Docker schema2 manifest or index`,
    );
  }
  return candidate;
}

// OCI allows mediaType to be omitted from the body; without a Content-Type either, the shape decides.
function guessOciType(json: object): string | undefined {
  if ('manifests' in json) return MediaType.OciIndex;
  if ('config' in json) return MediaType.OciManifest;
  return undefined;
}

function check<T>(schema: z.ZodType<T>, json: unknown, mediaType: string): T {
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'manifest';
    throw new RegistryError(
      'MANIFEST_INVALID',
      `invalid ${mediaType}: ${where}: ${issue?.message ?? 'malformed'}`,
    );
  }
  return result.data;
}

/** A layer the client fetches from elsewhere (its `urls`): the repository need not hold it. */
export function isForeignLayer(layer: Pick<Descriptor, 'mediaType'>): boolean {
  return (
    layer.mediaType === MediaType.DockerForeignLayer ||
    (MediaType.OciNondistributableLayers as readonly string[]).includes(layer.mediaType)
  );
}
