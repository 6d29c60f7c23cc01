import { describe, expect, it } from 'vitest';
import { pushImage, randomBytes, sha256, testRegistry } from './harness.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('referrers', () => {
  it('returns an empty index for an unknown subject', async () => {
    const r = testRegistry();
    const res = await r.request(`/v2/foo/referrers/${sha256('nothing')}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toBe('application/vnd.oci.image.index.v1+json');
    expect(await res.json()).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [],
    });
  });

  it('lists referrers pushed before and after their subject, with artifactType and annotations', async () => {
    const r = testRegistry();
    const subjectBytes = new TextEncoder().encode('{}');
    const futureSubject = { mediaType: OCI_MANIFEST, digest: sha256('future'), size: 6 };
    const early = await r.request('/v2/foo/blobs/uploads/?digest=' + sha256(subjectBytes), {
      method: 'POST',
      body: subjectBytes,
    });
    expect(early.status).toBe(201);
    const before = await pushImage(r, 'foo', 'sig', {
      subject: futureSubject,
      artifactType: 'application/vnd.example.signature',
      annotations: { 'org.example.kind': 'sig' },
      layers: [randomBytes(10, 1)],
    });
    const subject = await pushImage(r, 'foo', 'app');
    const after = await pushImage(r, 'foo', 'sbom', {
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.byteLength },
      artifactType: 'application/vnd.example.sbom',
      layers: [randomBytes(10, 2)],
    });
    const listFuture = (await (await r.request(`/v2/foo/referrers/${futureSubject.digest}`)).json()) as {
      manifests: unknown[];
    };
    expect(listFuture.manifests).toEqual([
      {
        mediaType: OCI_MANIFEST,
        digest: before.digest,
        size: before.bytes.byteLength,
        artifactType: 'application/vnd.example.signature',
        annotations: { 'org.example.kind': 'sig' },
      },
    ]);
    const list = (await (await r.request(`/v2/foo/referrers/${subject.digest}`)).json()) as {
      manifests: { digest: string }[];
    };
    expect(list.manifests.map((m) => m.digest)).toEqual([after.digest]);
  });

  it('answers OCI-Subject on a manifest PUT with a subject', async () => {
    const r = testRegistry();
    const subject = await pushImage(r, 'foo', 'app');
    const config = new TextEncoder().encode('{}');
    await r.request(`/v2/foo/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', body: config });
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(config), size: 2 },
      layers: [],
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.byteLength },
    });
    const res = await r.request(`/v2/foo/manifests/${sha256(manifest)}`, {
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: manifest,
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('OCI-Subject')).toBe(subject.digest);
  });

  it('filters by artifactType and says so', async () => {
    const r = testRegistry();
    const subject = await pushImage(r, 'foo', 'app');
    const ref = { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.byteLength };
    await pushImage(r, 'foo', 'a', { subject: ref, artifactType: 'type/a', layers: [randomBytes(5, 1)] });
    const b = await pushImage(r, 'foo', 'b', {
      subject: ref,
      artifactType: 'type/b',
      layers: [randomBytes(5, 2)],
    });
    const res = await r.request(`/v2/foo/referrers/${subject.digest}?artifactType=type/b`);
    expect(res.headers.get('OCI-Filters-Applied')).toBe('artifactType');
    const body = (await res.json()) as { manifests: { digest: string }[] };
    expect(body.manifests.map((m) => m.digest)).toEqual([b.digest]);
  });

  it('drops a referrer when its manifest is deleted', async () => {
    const r = testRegistry();
    const subject = await pushImage(r, 'foo', 'app');
    const ref = { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.byteLength };
    const sig = await pushImage(r, 'foo', 'sig', {
      subject: ref,
      artifactType: 'type/a',
      layers: [randomBytes(5, 1)],
    });
    expect((await r.request(`/v2/foo/manifests/${sig.digest}`, { method: 'DELETE' })).status).toBe(202);
    const body = (await (await r.request(`/v2/foo/referrers/${subject.digest}`)).json()) as {
      manifests: unknown[];
    };
    expect(body.manifests).toEqual([]);
  });

  it('pages long referrer lists with a Link header', async () => {
    const r = testRegistry({ referrersPageSize: 2 });
    const subject = await pushImage(r, 'foo', 'app');
    const ref = { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.byteLength };
    const pushed = new Set<string>();
    for (let i = 0; i < 5; i++) {
      pushed.add(
        (
          await pushImage(r, 'foo', `s${i}`, {
            subject: ref,
            artifactType: 't/x',
            layers: [randomBytes(5, i + 10)],
          })
        ).digest,
      );
    }
    const seen = new Set<string>();
    let url: string | undefined = `/v2/foo/referrers/${subject.digest}`;
    let pages = 0;
    while (url) {
      const res: Response = await r.request(url);
      const body = (await res.json()) as { manifests: { digest: string }[] };
      for (const m of body.manifests) seen.add(m.digest);
      url = /<([^>]+)>; rel="next"/.exec(res.headers.get('Link') ?? '')?.[1];
      pages++;
    }
    expect(seen).toEqual(pushed);
    expect(pages).toBe(3);
  });
});
