export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  OciNondistributableLayers: [
    'application/vnd.oci.image.layer.nondistributable.v1.tar',
    'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
    'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  ],
} as const;

export const MANIFEST_MEDIA_TYPES = [
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
] as const;

export type ManifestMediaType = (typeof MANIFEST_MEDIA_TYPES)[number];

export function isManifestMediaType(value: string): value is ManifestMediaType {
  return (MANIFEST_MEDIA_TYPES as readonly string[]).includes(value);
}

export function isIndexMediaType(value: string): boolean {
  return value === MediaType.OciIndex || value === MediaType.DockerManifestList;
}

/** Strips parameters (`; charset=utf-8`) and case from a Content-Type header value. */
export function baseMediaType(contentType: string | null | undefined): string | undefined {
  if (!contentType) return undefined;
  const base = contentType.split(';')[0]?.trim().toLowerCase();
  return base ? base : undefined;
}
