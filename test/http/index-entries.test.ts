import { describe, expect, it } from 'vitest';
import { parseDigest } from '../../lib/oci/digest.ts';
import { parseName } from '../../lib/oci/names.ts';
import { keys } from '../../lib/registry/keys.ts';
import { CACHE_CONFIG, cacheIndex, pushCache } from './cache-index.ts';
import { pushBlob, pushImage, randomBytes, sha256, testRegistry, type TestRegistry } from './harness.ts';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

async function errorOf(res: Response): Promise<{ code: string; message: string; detail?: unknown }> {
  const body = (await res.json()) as { errors: { code: string; message: string; detail?: unknown }[] };
  return body.errors[0]!;
}

function putIndex(r: TestRegistry, repo: string, ref: string, index: unknown): Promise<Response> {
  return r.request(`/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    headers: { 'Content-Type': OCI_INDEX },
    body: JSON.stringify(index),
  });
}

describe('index entries that are blobs (BuildKit registry cache)', () => {
  it.each([
    ['OCI index (oci-mediatypes=true)', true],
    ['Docker manifest list (oci-mediatypes=false)', false],
  ])('accepts a %s whose entries are blobs linked in the repository, and serves it back', async (_, oci) => {
    const r = testRegistry();
    const cache = cacheIndex(1, { oci });
    const put = await pushCache(r, 'app', 'buildcache', cache);
    expect(put.status).toBe(201);
    expect(put.headers.get('Docker-Content-Digest')).toBe(cache.digest);
    const got = await r.request('/v2/app/manifests/buildcache', { headers: { Accept: cache.mediaType } });
    expect(got.status).toBe(200);
    expect(got.headers.get('Content-Type')).toBe(cache.mediaType);
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(cache.bytes);
    for (const blob of cache.blobs) {
      const res = await r.request(`/v2/app/blobs/${sha256(blob)}`);
      expect(res.status).toBe(200);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(blob);
    }
  });

  it('refuses an entry that names nothing, saying which and what to do, and stores nothing', async () => {
    const r = testRegistry();
    const cache = cacheIndex(2);
    const missing = sha256(cache.blobs[cache.blobs.length - 1]!);
    const put = await pushCache(r, 'app', 'buildcache', cache, { skipBlobs: cache.blobs.length - 1 });
    expect(put.status).toBe(400);
    const error = await errorOf(put);
    expect(error.code).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(error.message).toBe(
      `index entry ${missing} (${CACHE_CONFIG}) names neither a manifest nor a blob in repository app; push it before the index`,
    );
    expect(error.detail).toEqual({ digest: missing, mediaType: CACHE_CONFIG });
    expect((await r.request('/v2/app/manifests/buildcache', { method: 'HEAD' })).status).toBe(404);
    expect((await r.request(`/v2/app/manifests/${cache.digest}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('refuses an entry naming a blob that only another repository links', async () => {
    const r = testRegistry();
    const cache = cacheIndex(3);
    for (const blob of cache.blobs) await pushBlob(r, 'other', blob);
    const put = await r.request('/v2/app/manifests/buildcache', {
      method: 'PUT',
      headers: { 'Content-Type': OCI_INDEX },
      body: cache.bytes,
    });
    expect(put.status).toBe(400);
    expect((await errorOf(put)).code).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('refuses an entry typed as a manifest that names only a blob: clients would ask /manifests/ for it', async () => {
    const r = testRegistry();
    const blob = randomBytes(300, 9);
    const digest = await pushBlob(r, 'app', blob);
    const put = await putIndex(r, 'app', 'multi', {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest, size: blob.byteLength }],
    });
    expect(put.status).toBe(400);
    const error = await errorOf(put);
    expect(error.code).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(error.message).toContain(`manifest ${digest} listed in the index is not in repository app`);
  });

  it('accepts an index mixing a manifest and blob entries (an image with a cache-like attachment)', async () => {
    const r = testRegistry();
    const image = await pushImage(r, 'app', 'v1');
    const note = new TextEncoder().encode('{"note":"provenance"}');
    const noteDigest = await pushBlob(r, 'app', note);
    const put = await putIndex(r, 'app', 'v1-bundle', {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: image.digest, size: image.bytes.byteLength },
        { mediaType: 'application/vnd.example.note+json', digest: noteDigest, size: note.byteLength },
      ],
    });
    expect(put.status).toBe(201);
  });

  it('says so when an entry is a direct upload still being verified', async () => {
    const r = testRegistry();
    const cache = cacheIndex(4);
    const last = cache.blobs[cache.blobs.length - 1]!;
    await r.storage.put(keys.verifying(parseName('app'), parseDigest(sha256(last))), new Uint8Array(0));
    const put = await pushCache(r, 'app', 'buildcache', cache, { skipBlobs: cache.blobs.length - 1 });
    expect(put.status).toBe(400);
    const error = await errorOf(put);
    expect(error.code).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(error.message).toContain('still being verified; push the index again once HEAD');
  });
});

describe('referrers and cache indexes', () => {
  it('a cache index with a subject is listed as a referrer; its blob entries have no referrers and are not listed', async () => {
    const r = testRegistry();
    const image = await pushImage(r, 'app', 'v1');
    const cache = cacheIndex(5);
    const withSubject = {
      ...(JSON.parse(new TextDecoder().decode(cache.bytes)) as object),
      artifactType: 'application/vnd.example.build-cache',
      subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.bytes.byteLength },
    };
    for (const blob of cache.blobs) await pushBlob(r, 'app', blob);
    const put = await putIndex(r, 'app', 'buildcache', withSubject);
    expect(put.status).toBe(201);
    expect(put.headers.get('OCI-Subject')).toBe(image.digest);
    const indexDigest = put.headers.get('Docker-Content-Digest')!;

    const referrers = (await (await r.request(`/v2/app/referrers/${image.digest}`)).json()) as {
      manifests: { digest: string; mediaType: string; artifactType?: string }[];
    };
    expect(referrers.manifests).toEqual([
      expect.objectContaining({
        digest: indexDigest,
        mediaType: OCI_INDEX,
        artifactType: 'application/vnd.example.build-cache',
      }),
    ]);
    for (const blob of cache.blobs) {
      const res = await r.request(`/v2/app/referrers/${sha256(blob)}`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { manifests: unknown[] }).manifests).toEqual([]);
    }

    // Deleting the cache index takes its referrer entry with it; its blobs stay until GC.
    expect((await r.request(`/v2/app/manifests/${indexDigest}`, { method: 'DELETE' })).status).toBe(202);
    const after = (await (await r.request(`/v2/app/referrers/${image.digest}`)).json()) as {
      manifests: unknown[];
    };
    expect(after.manifests).toEqual([]);
  });

  it('an artifact whose subject is a cache index is listed under the index', async () => {
    const r = testRegistry();
    const cache = cacheIndex(6);
    expect((await pushCache(r, 'app', 'buildcache', cache)).status).toBe(201);
    const sbom = await pushImage(r, 'app', 'sbom', {
      artifactType: 'application/vnd.example.sbom',
      subject: { mediaType: cache.mediaType, digest: cache.digest, size: cache.bytes.byteLength },
    });
    const listed = (await (await r.request(`/v2/app/referrers/${cache.digest}`)).json()) as {
      manifests: { digest: string; artifactType?: string }[];
    };
    expect(listed.manifests).toEqual([
      expect.objectContaining({ digest: sbom.digest, artifactType: 'application/vnd.example.sbom' }),
    ]);
  });
});
