import { describe, expect, it } from 'vitest';
import {
  errorCode,
  pushBlob,
  pushImage,
  randomBytes,
  sha256,
  testRegistry,
  type TestRegistry,
} from './harness.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

function putManifest(r: TestRegistry, repo: string, ref: string, body: unknown, contentType: string) {
  const bytes = typeof body === 'string' ? body : JSON.stringify(body);
  return r.request(`/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    headers: { 'Content-Type': contentType },
    body: bytes,
  });
}

describe('manifests', () => {
  it('GET by tag and by digest return the exact bytes, media type and digest', async () => {
    const r = testRegistry();
    const image = await pushImage(r, 'foo', 'v1');
    for (const ref of ['v1', image.digest]) {
      const res = await r.request(`/v2/foo/manifests/${ref}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('Content-Type')).toBe(OCI_MANIFEST);
      expect(res.headers.get('Docker-Content-Digest')).toBe(image.digest);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(image.bytes);
      const head = await r.request(`/v2/foo/manifests/${ref}`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('Content-Length')).toBe(String(image.bytes.byteLength));
      expect(head.headers.get('Docker-Content-Digest')).toBe(image.digest);
      expect(await head.text()).toBe('');
    }
  });

  it('PUT answers 201 with Location and Docker-Content-Digest', async () => {
    const r = testRegistry();
    const config = await pushBlob(r, 'foo', randomBytes(10));
    const manifest = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: config, size: 10 },
      layers: [],
    };
    const res = await putManifest(r, 'foo', 'latest', manifest, DOCKER_MANIFEST);
    expect(res.status).toBe(201);
    const digest = sha256(JSON.stringify(manifest));
    expect(res.headers.get('Docker-Content-Digest')).toBe(digest);
    expect(res.headers.get('Location')).toBe(`/v2/foo/manifests/${digest}`);
  });

  it('accepts indexes and manifest lists whose children exist, and refuses missing children', async () => {
    const r = testRegistry();
    const amd = await pushImage(r, 'foo', 'amd64');
    const arm = await pushImage(r, 'foo', 'arm64');
    const index = (mediaType: string, children: string[]) => ({
      schemaVersion: 2,
      mediaType,
      manifests: children.map((digest, i) => ({
        mediaType: OCI_MANIFEST,
        digest,
        size: (i === 0 ? amd : arm).bytes.byteLength,
        platform: { architecture: i === 0 ? 'amd64' : 'arm64', os: 'linux' },
      })),
    });
    expect(
      (await putManifest(r, 'foo', 'multi', index(OCI_INDEX, [amd.digest, arm.digest]), OCI_INDEX)).status,
    ).toBe(201);
    expect(
      (await putManifest(r, 'foo', 'list', index(DOCKER_LIST, [amd.digest, arm.digest]), DOCKER_LIST)).status,
    ).toBe(201);
    const missing = await putManifest(
      r,
      'foo',
      'broken',
      index(OCI_INDEX, [amd.digest, sha256('nope')]),
      OCI_INDEX,
    );
    expect(missing.status).toBe(400);
    expect(await errorCode(missing)).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('accepts artifacts with an empty config and artifactType', async () => {
    const r = testRegistry();
    const empty = await pushBlob(r, 'foo', new TextEncoder().encode('{}'));
    const layer = await pushBlob(r, 'foo', randomBytes(20));
    const res = await putManifest(
      r,
      'foo',
      'artifact',
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.sbom',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 },
        layers: [{ mediaType: 'application/json', digest: layer, size: 20 }],
      },
      OCI_MANIFEST,
    );
    expect(res.status).toBe(201);
  });

  it('refuses a manifest naming a blob the repository does not have', async () => {
    const r = testRegistry();
    const other = await pushBlob(r, 'other', randomBytes(10));
    const res = await putManifest(
      r,
      'foo',
      'v1',
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'x/y', digest: other, size: 10 },
        layers: [],
      },
      OCI_MANIFEST,
    );
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('MANIFEST_BLOB_UNKNOWN');
    expect((await r.request('/v2/foo/manifests/v1')).status).toBe(404);
  });

  it.each([
    ['invalid JSON', '{"schemaVersion": 2,', OCI_MANIFEST],
    ['a JSON array', '[]', OCI_MANIFEST],
    ['an unknown media type', '{"schemaVersion":2,"mediaType":"text/plain"}', 'text/plain'],
    [
      'Content-Type differing from mediaType',
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }),
      OCI_MANIFEST,
    ],
    [
      'a missing config',
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }),
      OCI_MANIFEST,
    ],
    ['schemaVersion 1', JSON.stringify({ schemaVersion: 1, mediaType: OCI_MANIFEST }), OCI_MANIFEST],
    [
      'a bad descriptor digest',
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'a/b', digest: 'sha256:zz', size: 1 },
        layers: [],
      }),
      OCI_MANIFEST,
    ],
    [
      'Docker schema1',
      JSON.stringify({ schemaVersion: 1, name: 'foo', tag: 'v1', fsLayers: [] }),
      'application/vnd.docker.distribution.manifest.v1+prettyjws',
    ],
  ])('refuses %s as MANIFEST_INVALID and stores nothing', async (_what, body, contentType) => {
    const r = testRegistry();
    const res = await putManifest(r, 'foo', 'v1', body, contentType);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('MANIFEST_INVALID');
    expect((await r.storage.list('')).keys).toEqual([]);
  });

  it('refuses a manifest whose digest differs from the digest in the URL', async () => {
    const r = testRegistry();
    const image = await pushImage(r, 'foo', 'v1');
    const res = await r.request(`/v2/foo/manifests/${sha256('other')}`, {
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: image.bytes,
    });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('DIGEST_INVALID');
  });

  it('refuses manifests over 4 MiB with 413', async () => {
    const r = testRegistry();
    const huge = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [],
      annotations: { pad: 'x'.repeat(4 * 1024 * 1024) },
    });
    const res = await putManifest(r, 'foo', 'big', huge, OCI_INDEX);
    expect(res.status).toBe(413);
    expect(await errorCode(res)).toBe('SIZE_INVALID');
  });

  it('accepts a manifest just under 4 MiB', async () => {
    const r = testRegistry();
    const big = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [],
      annotations: { pad: 'x'.repeat(3_900_000) },
    });
    expect((await putManifest(r, 'foo', 'big', big, OCI_INDEX)).status).toBe(201);
    const res = await r.request('/v2/foo/manifests/big');
    expect(await res.text()).toBe(big);
  });

  it('tags several at once with ?tag=', async () => {
    const r = testRegistry();
    const image = await pushImage(r, 'foo', 'v1');
    const res = await r.request(`/v2/foo/manifests/${image.digest}?tag=a&tag=b`, {
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: image.bytes,
    });
    expect(res.status).toBe(201);
    const tags = (await (await r.request('/v2/foo/tags/list')).json()) as { tags: string[] };
    expect(tags.tags).toEqual(['a', 'b', 'v1']);
  });

  it.each([
    ['129 characters', 'a'.repeat(129)],
    ['a leading dot', '.hidden'],
    ['a slash-free invalid char', 'v1+x'],
  ])('refuses to push a tag with %s (TAG_INVALID) and finds nothing under it (404)', async (_what, tag) => {
    const r = testRegistry();
    const image = await pushImage(r, 'foo', 'v1');
    const put = await r.request(`/v2/foo/manifests/${encodeURIComponent(tag)}`, {
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: image.bytes,
    });
    expect(put.status).toBe(400);
    expect(await errorCode(put)).toBe('TAG_INVALID');
    const get = await r.request(`/v2/foo/manifests/${encodeURIComponent(tag)}`);
    expect(get.status).toBe(404);
    expect(await errorCode(get)).toBe('MANIFEST_UNKNOWN');
  });

  it('a malformed digest reference is a 400 with a known code', async () => {
    const r = testRegistry();
    const res = await r.request('/v2/foo/manifests/sha256:totallywrong');
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('DIGEST_INVALID');
  });

  it('DELETE of a tag removes only the tag', async () => {
    const r = testRegistry();
    const image = await pushImage(r, 'foo', 'v1');
    expect((await r.request('/v2/foo/manifests/v1', { method: 'DELETE' })).status).toBe(202);
    expect((await r.request('/v2/foo/manifests/v1')).status).toBe(404);
    expect((await r.request(`/v2/foo/manifests/${image.digest}`)).status).toBe(200);
    const again = await r.request('/v2/foo/manifests/v1', { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect(await errorCode(again)).toBe('MANIFEST_UNKNOWN');
  });

  it('DELETE by digest removes the manifest and every tag pointing at it, and no other', async () => {
    const r = testRegistry();
    const image = await pushImage(r, 'foo', 'v1');
    await r.request(`/v2/foo/manifests/${image.digest}?tag=v2`, {
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: image.bytes,
    });
    const other = await pushImage(r, 'foo', 'keep', { layers: [randomBytes(50, 99)] });
    expect((await r.request(`/v2/foo/manifests/${image.digest}`, { method: 'DELETE' })).status).toBe(202);
    for (const ref of ['v1', 'v2', image.digest]) {
      expect((await r.request(`/v2/foo/manifests/${ref}`, { method: 'HEAD' })).status).toBe(404);
    }
    expect((await r.request(`/v2/foo/manifests/keep`)).headers.get('Docker-Content-Digest')).toBe(
      other.digest,
    );
  });

  it('a tag pushed twice concurrently points at one of the two manifests', async () => {
    const r = testRegistry();
    const a = await pushImage(r, 'foo', 'a', { layers: [randomBytes(10, 1)] });
    const b = await pushImage(r, 'foo', 'b', { layers: [randomBytes(10, 2)] });
    await Promise.all(
      [a, b].map((m) =>
        r.request('/v2/foo/manifests/latest', {
          method: 'PUT',
          headers: { 'Content-Type': OCI_MANIFEST },
          body: m.bytes,
        }),
      ),
    );
    const res = await r.request('/v2/foo/manifests/latest');
    const digest = res.headers.get('Docker-Content-Digest');
    expect([a.digest, b.digest]).toContain(digest);
    expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(digest);
  });
});
