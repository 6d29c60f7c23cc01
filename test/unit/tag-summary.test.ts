import { describe, expect, it } from 'vitest';
import {
  SUMMARY_MAX_BYTES,
  decodeSummary,
  encodeSummary,
  summarizeManifest,
} from '../../lib/registry/tag-summary.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DIGEST = `sha256:${'a'.repeat(64)}`;
const bytes = (value: object) => new TextEncoder().encode(JSON.stringify(value));
const descriptor = (mediaType: string, size = 10, extra: object = {}) => ({
  mediaType,
  digest: DIGEST,
  size,
  ...extra,
});
const image = (configType: string, layerTypes: string[], extra: object = {}) =>
  bytes({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: descriptor(configType, 100),
    layers: layerTypes.map((t) => descriptor(t, 1000)),
    ...extra,
  });

describe('what a tag names', () => {
  it('an image: config + layers as its size, created and platform from the config', () => {
    const config = bytes({
      created: '2024-01-01T00:00:00Z',
      os: 'linux',
      architecture: 'arm',
      variant: 'v7',
    });
    expect(
      summarizeManifest(
        image('application/vnd.oci.image.config.v1+json', ['application/vnd.oci.image.layer.v1.tar+gzip']),
        OCI_MANIFEST,
        config,
      ),
    ).toEqual({
      kind: 'image',
      mediaType: OCI_MANIFEST,
      size: 1100,
      created: '2024-01-01T00:00:00Z',
      platforms: ['linux/arm/v7'],
    });
  });

  it("cosign's tag-scheme signatures and attestations, by their layers", () => {
    const sig = image('application/vnd.oci.image.config.v1+json', [
      'application/vnd.dev.cosign.simplesigning.v1+json',
    ]);
    const att = image('application/vnd.oci.image.config.v1+json', ['application/vnd.dsse.envelope.v1+json']);
    expect(summarizeManifest(sig, OCI_MANIFEST).kind).toBe('signature');
    expect(summarizeManifest(att, OCI_MANIFEST).kind).toBe('attestation');
  });

  it('artifacts by their artifactType: notation signatures, SBOMs, Helm charts, anything else', () => {
    const empty = 'application/vnd.oci.empty.v1+json';
    const kind = (artifactType: string) =>
      summarizeManifest(image(empty, ['application/octet-stream'], { artifactType }), OCI_MANIFEST).kind;
    expect(kind('application/vnd.cncf.notary.signature')).toBe('signature');
    expect(kind('application/vnd.cyclonedx+json')).toBe('sbom');
    expect(kind('application/spdx+json')).toBe('sbom');
    expect(kind('application/vnd.in-toto+json')).toBe('attestation');
    expect(kind('application/vnd.example.thing')).toBe('artifact');
    const helm = summarizeManifest(
      image('application/vnd.cncf.helm.config.v1+json', [
        'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
      ]),
      OCI_MANIFEST,
    );
    expect(helm).toMatchObject({ kind: 'helm', artifactType: 'application/vnd.cncf.helm.config.v1+json' });
  });

  it("an index: its children's platforms, BuildKit's attestation manifests left out; a cache export is a cache", () => {
    const index = bytes({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        descriptor(OCI_MANIFEST, 10, { platform: { os: 'linux', architecture: 'amd64' } }),
        descriptor(OCI_MANIFEST, 10, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }),
        descriptor(OCI_MANIFEST, 10, {
          platform: { os: 'unknown', architecture: 'unknown' },
          annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
        }),
      ],
    });
    expect(summarizeManifest(index, OCI_INDEX)).toEqual({
      kind: 'index',
      mediaType: OCI_INDEX,
      platforms: ['linux/amd64', 'linux/arm64/v8'],
      children: 3,
    });
    const cache = bytes({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        descriptor('application/vnd.oci.image.layer.v1.tar+gzip'),
        descriptor('application/vnd.buildkit.cacheconfig.v0'),
      ],
    });
    expect(summarizeManifest(cache, OCI_INDEX).kind).toBe('cache');
  });
});

describe('the summary as tag metadata', () => {
  it('round-trips as ASCII JSON, and keeps within S3 metadata room by dropping platforms', () => {
    const summary = {
      kind: 'index' as const,
      mediaType: OCI_INDEX,
      platforms: Array.from({ length: 200 }, (_, i) => `linux/arch-${i}-ünïcode`),
      children: 200,
    };
    const encoded = encodeSummary(summary);
    expect(encoded.length).toBeLessThanOrEqual(SUMMARY_MAX_BYTES);
    expect(encoded).toMatch(/^[\x20-\x7e]+$/);
    const decoded = decodeSummary(encoded)!;
    expect(decoded.children).toBe(200);
    expect(decoded.platforms!.length).toBeGreaterThan(0);
    expect(decoded.platforms!.length).toBeLessThan(200);
    expect(decoded.platforms![0]).toBe('linux/arch-0-ünïcode');
  });

  it('ignores metadata that is not a summary of this version', () => {
    expect(decodeSummary(undefined)).toBeUndefined();
    expect(decodeSummary('not json')).toBeUndefined();
    expect(decodeSummary('{"v":2,"kind":"image","mediaType":"x"}')).toBeUndefined();
    expect(decodeSummary('{"v":1,"kind":"image","mediaType":"x"}')).toEqual({
      kind: 'image',
      mediaType: 'x',
    });
  });

  it('summarizes what cannot be parsed as an artifact instead of failing', () => {
    expect(summarizeManifest(new TextEncoder().encode('{'), OCI_MANIFEST)).toEqual({
      kind: 'artifact',
      mediaType: OCI_MANIFEST,
    });
  });
});
