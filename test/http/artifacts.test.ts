// What CI pipelines push besides gzip images, on every store (memory, filesystem, S3 on MinIO):
// zstd-compressed layers (BuildKit `compression=zstd`, podman `--compression-format zstd`), and OCI
// 1.1 artifacts with `artifactType` and the empty config (oras, Helm-like tools, SBOM attachments).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gcDrivers } from '../gc/harness.ts';
import { pushBlob, pushImage, randomBytes, sha256, testRegistry, type TestRegistry } from './harness.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const ZSTD_LAYER = 'application/vnd.oci.image.layer.v1.tar+zstd';
const EMPTY = 'application/vnd.oci.empty.v1+json';
const EMPTY_BYTES = new TextEncoder().encode('{}');
const MiB = 1024 * 1024;

/** Bytes that start like a zstd frame (magic 28 b5 2f fd); the registry stores them as they are. */
function zstdLike(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const bytes = randomBytes(size, seed);
  bytes.set([0x28, 0xb5, 0x2f, 0xfd], 0);
  return bytes;
}

/** Pushes `bytes` in PATCH chunks of `chunk` bytes (what containerd and the relay do for big layers). */
async function pushChunked(r: TestRegistry, repo: string, bytes: Uint8Array<ArrayBuffer>, chunk: number) {
  const start = await r.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  let location = start.headers.get('Location')!;
  for (let at = 0; at < bytes.byteLength; at += chunk) {
    const part = bytes.subarray(at, Math.min(at + chunk, bytes.byteLength));
    const res = await r.request(location, {
      method: 'PATCH',
      headers: {
        'Content-Range': `${at}-${at + part.byteLength - 1}`,
        'Content-Type': 'application/octet-stream',
      },
      body: part,
    });
    expect(res.status).toBe(202);
    location = res.headers.get('Location')!;
  }
  const put = await r.request(`${location}?digest=${sha256(bytes)}`, { method: 'PUT' });
  expect(put.status).toBe(201);
  return sha256(bytes);
}

function putJson(r: TestRegistry, repo: string, ref: string, body: unknown, contentType: string) {
  return r.request(`/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    headers: { 'Content-Type': contentType },
    body: JSON.stringify(body),
  });
}

for (const driver of gcDrivers()) {
  describe.skipIf(!driver.available)(`zstd layers and artifacts on ${driver.name}`, () => {
    beforeAll(() => driver.setup(), 30_000);
    afterAll(() => driver.teardown());
    const fresh = async () => testRegistry({ storage: await driver.make(), partSize: 5 * MiB });

    it('an image with zstd layers (one in chunks past a part) pushes, pulls whole and by range', async () => {
      const r = await fresh();
      const small = zstdLike(3000, 1);
      const big = zstdLike(6 * MiB + 123, 2);
      const config = new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
      const configDigest = await pushBlob(r, 'ci/zstd', config);
      const smallDigest = await pushBlob(r, 'ci/zstd', small);
      const bigDigest = await pushChunked(r, 'ci/zstd', big, 2 * MiB);
      const manifest = {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: configDigest,
          size: config.length,
        },
        layers: [
          { mediaType: ZSTD_LAYER, digest: smallDigest, size: small.length },
          { mediaType: ZSTD_LAYER, digest: bigDigest, size: big.length },
        ],
      };
      expect((await putJson(r, 'ci/zstd', 'v1', manifest, OCI_MANIFEST)).status).toBe(201);
      const got = await r.request('/v2/ci/zstd/manifests/v1', { headers: { Accept: OCI_MANIFEST } });
      expect(JSON.parse(await got.text())).toEqual(manifest);
      for (const [digest, bytes] of [
        [smallDigest, small],
        [bigDigest, big],
      ] as const) {
        const head = await r.request(`/v2/ci/zstd/blobs/${digest}`, { method: 'HEAD' });
        expect(head.status).toBe(200);
        expect(head.headers.get('Content-Length')).toBe(String(bytes.length));
        const blob = new Uint8Array(await (await r.request(`/v2/ci/zstd/blobs/${digest}`)).arrayBuffer());
        expect(sha256(blob)).toBe(digest);
      }
      const ranged = await r.request(`/v2/ci/zstd/blobs/${bigDigest}`, {
        headers: { Range: `bytes=${5 * MiB - 2}-${5 * MiB + 1}` },
      });
      expect(ranged.status).toBe(206);
      expect(new Uint8Array(await ranged.arrayBuffer())).toEqual(big.subarray(5 * MiB - 2, 5 * MiB + 2));
    });

    it('an artifact with artifactType and the empty config (data inlined) attaches to an image; referrers filter by type', async () => {
      const r = await fresh();
      const image = await pushImage(r, 'ci/app', 'v1');
      const emptyDigest = await pushBlob(r, 'ci/app', EMPTY_BYTES);
      expect(emptyDigest).toBe('sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a');
      const sbom = new TextEncoder().encode(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'app' }));
      const sbomDigest = await pushBlob(r, 'ci/app', sbom);
      const artifact = {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/spdx+json',
        config: { mediaType: EMPTY, digest: emptyDigest, size: 2, data: 'e30=' },
        layers: [{ mediaType: 'application/spdx+json', digest: sbomDigest, size: sbom.length }],
        subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.bytes.length },
        annotations: { 'org.opencontainers.image.created': '2026-11-01T00:00:00Z' },
      };
      const put = await putJson(r, 'ci/app', sha256(JSON.stringify(artifact)), artifact, OCI_MANIFEST);
      expect(put.status).toBe(201);
      expect(put.headers.get('OCI-Subject')).toBe(image.digest);
      // An artifact index too (artifactType on an index, e.g. a signature bundle).
      const bundle = {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        artifactType: 'application/vnd.example.bundle',
        manifests: [
          {
            mediaType: OCI_MANIFEST,
            digest: sha256(JSON.stringify(artifact)),
            size: JSON.stringify(artifact).length,
          },
        ],
        subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.bytes.length },
      };
      expect((await putJson(r, 'ci/app', 'bundle', bundle, OCI_INDEX)).status).toBe(201);

      const all = (await (await r.request(`/v2/ci/app/referrers/${image.digest}`)).json()) as {
        manifests: { digest: string; artifactType: string; annotations?: Record<string, string> }[];
      };
      expect(all.manifests.map((m) => m.artifactType).sort()).toEqual([
        'application/spdx+json',
        'application/vnd.example.bundle',
      ]);
      expect(all.manifests.find((m) => m.artifactType === 'application/spdx+json')?.annotations).toEqual(
        artifact.annotations,
      );
      const filtered = await r.request(
        `/v2/ci/app/referrers/${image.digest}?artifactType=application/spdx%2Bjson`,
      );
      expect(filtered.headers.get('OCI-Filters-Applied')).toBe('artifactType');
      expect(((await filtered.json()) as { manifests: unknown[] }).manifests).toEqual([
        expect.objectContaining({
          digest: sha256(JSON.stringify(artifact)),
          artifactType: 'application/spdx+json',
        }),
      ]);
      const empty = await r.request(`/v2/ci/app/blobs/${emptyDigest}`);
      expect(await empty.text()).toBe('{}');
    });
  });
}
