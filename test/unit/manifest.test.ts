import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MAX_MANIFEST_BYTES, computeDigest, parseManifest } from '../../lib/oci/manifest.ts';
import { MediaType } from '../../lib/oci/media-types.ts';
import { expectRegistryError } from './registry-error.ts';

const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const digestOf = (seed: string) => computeDigest(new TextEncoder().encode(seed)).digest;

const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

const config = { mediaType: OCI_CONFIG, digest: digestOf('config'), size: 123 };
const layer = { mediaType: OCI_LAYER, digest: digestOf('layer'), size: 4567 };
const child = {
  mediaType: MediaType.OciManifest,
  digest: digestOf('child'),
  size: 890,
  platform: { architecture: 'amd64', os: 'linux' },
};
const subject = { mediaType: MediaType.OciManifest, digest: digestOf('subject'), size: 321 };

function ociManifest(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer], ...extra };
}

function ociIndex(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [child], ...extra };
}

function withoutMediaType(manifest: Record<string, unknown>): Record<string, unknown> {
  const { mediaType: _mediaType, ...rest } = manifest;
  return rest;
}

const dockerManifest = {
  schemaVersion: 2,
  mediaType: MediaType.DockerManifest,
  config: { ...config, mediaType: DOCKER_CONFIG },
  layers: [{ ...layer, mediaType: DOCKER_LAYER }],
};
const dockerList = {
  schemaVersion: 2,
  mediaType: MediaType.DockerManifestList,
  manifests: [{ ...child, mediaType: MediaType.DockerManifest }],
};

describe('parseManifest', () => {
  describe('media types', () => {
    it.each([
      ['an OCI image manifest', ociManifest(), 'image'],
      ['a Docker schema2 manifest', dockerManifest, 'image'],
      ['an OCI index', ociIndex(), 'index'],
      ['a Docker manifest list', dockerList, 'index'],
    ] as const)('accepts %s, keeping its bytes and digest', (_label, manifest, kind) => {
      const bytes = encode(manifest);
      const mediaType = manifest.mediaType as string;
      const parsed = parseManifest(bytes, mediaType);
      expect(parsed.mediaType).toBe(mediaType);
      expect(parsed.bytes).toBe(bytes);
      expect(parsed.digest.digest).toBe(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
      if (kind === 'image') {
        const m = manifest as typeof dockerManifest;
        expect(parsed.blobs.map((b) => b.digest)).toEqual([m.config.digest, m.layers[0]!.digest]);
        expect(parsed.children).toEqual([]);
      } else {
        const m = manifest as typeof dockerList;
        expect(parsed.blobs).toEqual([]);
        expect(parsed.children.map((c) => c.digest)).toEqual([m.manifests[0]!.digest]);
      }
    });

    it('takes the media type from Content-Type when the body has no mediaType', () => {
      const image = parseManifest(encode(withoutMediaType(ociManifest())), MediaType.OciManifest);
      expect(image.mediaType).toBe(MediaType.OciManifest);
      expect(image.blobs).toHaveLength(2);
      const index = parseManifest(encode(withoutMediaType(ociIndex())), MediaType.OciIndex);
      expect(index.mediaType).toBe(MediaType.OciIndex);
      expect(index.children).toHaveLength(1);
    });

    it('takes the media type from the body when there is no Content-Type', () => {
      for (const contentType of [undefined, null, '']) {
        expect(parseManifest(encode(dockerManifest), contentType).mediaType).toBe(MediaType.DockerManifest);
      }
    });

    it('guesses OCI manifest or index from the shape when neither body nor header names a type', () => {
      expect(parseManifest(encode(withoutMediaType(ociManifest())), undefined).mediaType).toBe(
        MediaType.OciManifest,
      );
      expect(parseManifest(encode(withoutMediaType(ociIndex())), undefined).mediaType).toBe(
        MediaType.OciIndex,
      );
      expectRegistryError(
        () => parseManifest(encode({ schemaVersion: 2, layers: [] }), undefined),
        'MANIFEST_INVALID',
        400,
      );
    });

    it.each([
      `${MediaType.OciManifest}; charset=utf-8`,
      `${MediaType.OciManifest};charset=UTF-8`,
      `  ${MediaType.OciManifest.toUpperCase()} ; q=1`,
    ])('ignores parameters and case in Content-Type %j', (contentType) => {
      expect(parseManifest(encode(ociManifest()), contentType).mediaType).toBe(MediaType.OciManifest);
      expect(parseManifest(encode(withoutMediaType(ociManifest())), contentType).mediaType).toBe(
        MediaType.OciManifest,
      );
    });

    it('refuses a Content-Type that contradicts the body mediaType, naming both', () => {
      const err = expectRegistryError(
        () => parseManifest(encode(ociManifest()), MediaType.DockerManifest),
        'MANIFEST_INVALID',
        400,
      );
      expect(err.message).toContain(MediaType.DockerManifest);
      expect(err.message).toContain(MediaType.OciManifest);
      expectRegistryError(
        () => parseManifest(encode(ociIndex()), `${MediaType.OciManifest}; charset=utf-8`),
        'MANIFEST_INVALID',
      );
    });

    it('refuses an image manifest pushed as an index (and the reverse) when the body has no mediaType', () => {
      expectRegistryError(
        () => parseManifest(encode(withoutMediaType(ociManifest())), MediaType.OciIndex),
        'MANIFEST_INVALID',
        400,
      );
      expectRegistryError(
        () => parseManifest(encode(withoutMediaType(ociIndex())), MediaType.OciManifest),
        'MANIFEST_INVALID',
        400,
      );
    });

    it.each([MediaType.DockerSchema1, MediaType.DockerSchema1Signed])(
      'refuses Docker schema1 (%s) with a message that says so',
      (schema1) => {
        const body = { schemaVersion: 1, name: 'foo', tag: 'latest', fsLayers: [], history: [] };
        const fromHeader = expectRegistryError(
          () => parseManifest(encode(body), schema1),
          'MANIFEST_INVALID',
          400,
        );
        expect(fromHeader.message).toMatch(/schema1/);
        const fromBody = expectRegistryError(
          () => parseManifest(encode({ ...body, mediaType: schema1 }), undefined),
          'MANIFEST_INVALID',
        );
        expect(fromBody.message).toMatch(/schema1/);
      },
    );

    it.each(['application/json', 'application/octet-stream', 'application/vnd.oci.image.config.v1+json'])(
      'refuses the non-manifest media type %s',
      (mediaType) => {
        expectRegistryError(
          () => parseManifest(encode({ ...ociManifest(), mediaType }), mediaType),
          'MANIFEST_INVALID',
          400,
        );
      },
    );

    it('refuses a mediaType that is not a string', () => {
      expectRegistryError(
        () => parseManifest(encode({ ...ociManifest(), mediaType: 2 }), undefined),
        'MANIFEST_INVALID',
      );
    });
  });

  describe('bytes', () => {
    it('refuses bytes that are not valid UTF-8', () => {
      const json = new TextEncoder().encode(JSON.stringify(ociManifest({ annotations: { a: 'XX' } })));
      const at = new TextDecoder().decode(json).indexOf('XX');
      json[at] = 0xc3; // a lead byte
      json[at + 1] = 0x28; // not a continuation byte
      expectRegistryError(() => parseManifest(json, MediaType.OciManifest), 'MANIFEST_INVALID', 400);
    });

    it.each(['', 'not json', '[]', 'null', '"manifest"', '{"schemaVersion":2,'])('refuses %j', (text) => {
      expectRegistryError(
        () => parseManifest(new TextEncoder().encode(text), MediaType.OciManifest),
        'MANIFEST_INVALID',
        400,
      );
    });

    it('refuses a manifest over 4 MiB with 413 SIZE_INVALID, and accepts one of exactly 4 MiB', () => {
      const compact = JSON.stringify(ociManifest());
      const exact = new TextEncoder().encode(compact + ' '.repeat(MAX_MANIFEST_BYTES - compact.length));
      expect(exact.byteLength).toBe(4 * 1024 * 1024);
      expect(parseManifest(exact, MediaType.OciManifest).digest.digest).toBe(computeDigest(exact).digest);

      const over = new TextEncoder().encode(compact + ' '.repeat(MAX_MANIFEST_BYTES - compact.length + 1));
      expectRegistryError(() => parseManifest(over, MediaType.OciManifest), 'SIZE_INVALID', 413);
    });

    it('digests the bytes as pushed, not a canonical form', () => {
      const compact = encode(ociManifest());
      const pretty = new TextEncoder().encode(JSON.stringify(ociManifest(), null, 2));
      const a = parseManifest(compact, MediaType.OciManifest);
      const b = parseManifest(pretty, MediaType.OciManifest);
      expect(a.digest.digest).not.toBe(b.digest.digest);
      expect(b.digest.digest).toBe(computeDigest(pretty).digest);
    });

    it('computes a sha512 digest when asked', () => {
      const bytes = encode(ociManifest());
      const parsed = parseManifest(bytes, MediaType.OciManifest, 'sha512');
      expect(parsed.digest.algorithm).toBe('sha512');
      expect(parsed.digest.digest).toBe(`sha512:${createHash('sha512').update(bytes).digest('hex')}`);
    });
  });

  describe('content', () => {
    it.each([MediaType.DockerForeignLayer, ...MediaType.OciNondistributableLayers])(
      'leaves the %s layer out of the blobs the repository must hold',
      (foreign) => {
        const foreignLayer = {
          mediaType: foreign,
          digest: digestOf(foreign),
          size: 10,
          urls: ['https://example.com/layer'],
        };
        const parsed = parseManifest(encode(ociManifest({ layers: [foreignLayer, layer] })), undefined);
        expect(parsed.blobs.map((b) => b.digest)).toEqual([config.digest, layer.digest]);
      },
    );

    it('reports artifactType when the image manifest has one, else its config media type', () => {
      expect(parseManifest(encode(ociManifest()), undefined).artifactType).toBe(OCI_CONFIG);
      const artifact = ociManifest({
        artifactType: 'application/vnd.example.sbom',
        config: { mediaType: MediaType.OciEmpty, digest: digestOf('{}'), size: 2, data: 'e30=' },
      });
      expect(parseManifest(encode(artifact), undefined).artifactType).toBe('application/vnd.example.sbom');
      const emptyConfig = ociManifest({
        config: { mediaType: MediaType.OciEmpty, digest: digestOf('{}'), size: 2 },
      });
      expect(parseManifest(encode(emptyConfig), undefined).artifactType).toBe(MediaType.OciEmpty);
    });

    it('reports an index artifactType only when the index has one', () => {
      expect(parseManifest(encode(ociIndex()), undefined).artifactType).toBeUndefined();
      expect(
        parseManifest(encode(ociIndex({ artifactType: 'application/vnd.example.bundle' })), undefined)
          .artifactType,
      ).toBe('application/vnd.example.bundle');
    });

    it('carries the subject and annotations of manifests and indexes', () => {
      const annotations = { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' };
      const image = parseManifest(encode(ociManifest({ subject, annotations })), undefined);
      expect(image.subject).toEqual(subject);
      expect(image.annotations).toEqual(annotations);
      const index = parseManifest(encode(ociIndex({ subject, annotations })), undefined);
      expect(index.subject).toEqual(subject);
      expect(index.annotations).toEqual(annotations);
      expect(parseManifest(encode(ociManifest()), undefined).subject).toBeUndefined();
    });

    it('refuses a subject on a Docker schema2 manifest', () => {
      expectRegistryError(
        () => parseManifest(encode({ ...dockerManifest, subject }), undefined),
        'MANIFEST_INVALID',
        400,
      );
    });

    it('tolerates unknown fields and data fields, and keeps the bytes that carry them', () => {
      const manifest = ociManifest({
        futureField: { nested: [1, 2, 3] },
        'x-vendor': true,
        config: { ...config, data: 'e30=', unknownDescriptorField: 'kept', annotations: { a: 'b' } },
        layers: [{ ...layer, data: 'AAAA', somethingNew: 42, urls: [] }],
      });
      const bytes = encode(manifest);
      const parsed = parseManifest(bytes, MediaType.OciManifest);
      expect(parsed.bytes).toBe(bytes);
      expect(parsed.digest.digest).toBe(computeDigest(bytes).digest);
      expect(parsed.blobs.map((b) => b.digest)).toEqual([config.digest, layer.digest]);
      const index = parseManifest(
        encode(ociIndex({ whatever: 'x', manifests: [{ ...child, extra: {} }] })),
        MediaType.OciIndex,
      );
      expect(index.children).toHaveLength(1);
    });

    it('accepts an image manifest without layers and an index without manifests', () => {
      expect(parseManifest(encode(ociManifest({ layers: [] })), undefined).blobs).toHaveLength(1);
      expect(parseManifest(encode(ociIndex({ manifests: [] })), undefined).children).toEqual([]);
    });

    it.each([
      ['schemaVersion 1', ociManifest({ schemaVersion: 1 }), /schemaVersion/],
      ['no schemaVersion', withoutMediaType({ ...ociManifest(), schemaVersion: undefined }), /schemaVersion/],
      ['no config', { schemaVersion: 2, mediaType: MediaType.OciManifest, layers: [] }, /config/],
      ['no layers', { schemaVersion: 2, mediaType: MediaType.OciManifest, config }, /layers/],
      [
        'a layer with a bad digest',
        ociManifest({ layers: [{ ...layer, digest: 'sha256:abc' }] }),
        /layers\.0\.digest/,
      ],
      ['a layer with a negative size', ociManifest({ layers: [{ ...layer, size: -1 }] }), /layers\.0\.size/],
      [
        'a layer with a fractional size',
        ociManifest({ layers: [{ ...layer, size: 1.5 }] }),
        /layers\.0\.size/,
      ],
      [
        'a config without mediaType',
        ociManifest({ config: { digest: config.digest, size: 1 } }),
        /config\.mediaType/,
      ],
      ['annotations that are not strings', ociManifest({ annotations: { a: 1 } }), /annotations/],
      [
        'an index entry with an md5 digest',
        ociIndex({ manifests: [{ ...child, digest: `md5:${'0'.repeat(32)}` }] }),
        /manifests\.0\.digest/,
      ],
      ['an index whose manifests is not an array', ociIndex({ manifests: {} }), /manifests/],
    ])('refuses a manifest with %s, saying where', (_label, manifest, where) => {
      const err = expectRegistryError(
        () => parseManifest(encode(manifest), undefined),
        'MANIFEST_INVALID',
        400,
      );
      expect(err.message).toMatch(where);
    });
  });
});
