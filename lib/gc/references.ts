import { isForeignLayer } from '../oci/manifest.ts';
import { mayNameBlob } from '../registry/index-entries.ts';
import { parseStoredJson } from '../util/json.ts';

/** What a stored manifest points at, read leniently: GC must understand whatever was accepted. */
export interface ManifestRefs {
  /**
   * Config, layers (and an artifact manifest's blobs), and an index's entries that may name blobs
   * (BuildKit's registry cache: layers and its cacheconfig, lib/registry/index-entries.ts): blob
   * digests the manifest keeps.
   */
  readonly blobs: string[];
  /** An index's entries: the manifests among them are its children. */
  readonly children: string[];
  readonly subject?: string;
  /**
   * Layers among `blobs` that clients fetch from elsewhere (foreign and non-distributable layers,
   * with `urls`): kept when the repository holds them, never required of it (a manifest PUT does not
   * check them, and fsck does not report them missing).
   */
  readonly foreign: string[];
}

export function referencesOf(bytes: Uint8Array): ManifestRefs {
  const json = parseStoredJson(bytes) as Record<string, unknown> | undefined;
  const digestOf = (d: unknown) =>
    typeof d === 'object' && d !== null && typeof (d as { digest?: unknown }).digest === 'string'
      ? (d as { digest: string }).digest
      : undefined;
  const array = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
  const list = (value: unknown) =>
    array(value)
      .map(digestOf)
      .filter((d): d is string => d !== undefined);
  if (!json) return { blobs: [], children: [], foreign: [] };
  const config = digestOf(json.config);
  const subject = digestOf(json.subject);
  // An entry without a manifest media type may name a blob instead of a manifest; which one it is
  // only the store knows, so it counts as both (a blob digest is never in the manifest graph, and a
  // manifest digest is not a blob link).
  const blobEntries = list(array(json.manifests).filter((e) => mayNameBlob(mediaTypeOf(e))));
  return {
    blobs: [...(config ? [config] : []), ...list(json.layers), ...list(json.blobs), ...blobEntries],
    children: list(json.manifests),
    ...(subject ? { subject } : {}),
    foreign: list(array(json.layers).filter((l) => isForeignLayer(mediaTypeOf(l)))),
  };
}

function mediaTypeOf(entry: unknown): { mediaType: string } {
  const value =
    typeof entry === 'object' && entry !== null ? (entry as { mediaType?: unknown }).mediaType : '';
  return { mediaType: typeof value === 'string' ? value : '' };
}
