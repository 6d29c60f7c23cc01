import { parseStoredJson } from '../registry/json.ts';

/** What a stored manifest points at, read leniently: GC must understand whatever was accepted. */
export interface ManifestRefs {
  /** Config, layers (and an artifact manifest's blobs): blob digests. */
  readonly blobs: string[];
  /** An index's manifests. */
  readonly children: string[];
  readonly subject?: string;
}

export function referencesOf(bytes: Uint8Array): ManifestRefs {
  const json = parseStoredJson(bytes) as Record<string, unknown> | undefined;
  const digestOf = (d: unknown) =>
    typeof d === 'object' && d !== null && typeof (d as { digest?: unknown }).digest === 'string'
      ? (d as { digest: string }).digest
      : undefined;
  const list = (value: unknown) =>
    (Array.isArray(value) ? value : []).map(digestOf).filter((d): d is string => d !== undefined);
  if (!json) return { blobs: [], children: [] };
  const config = digestOf(json.config);
  const subject = digestOf(json.subject);
  return {
    blobs: [...(config ? [config] : []), ...list(json.layers), ...list(json.blobs)],
    children: list(json.manifests),
    ...(subject ? { subject } : {}),
  };
}
