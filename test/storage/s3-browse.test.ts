import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TagSummaries } from '../../lib/browse/tags.ts';
import { parseName, parseTag } from '../../lib/oci/names.ts';
import { keys } from '../../lib/registry/keys.ts';
import { SUMMARY_META, decodeSummary } from '../../lib/registry/tag-summary.ts';
import { S3Driver } from '../../lib/storage/s3/index.ts';
import { pushBlob, randomBytes, testRegistry } from '../http/harness.ts';
import { minioInstalled } from './s3-server.ts';
import { useS3Server } from './use-s3-server.ts';

// The web UI's tag listing on a real S3 API: summaries survive S3 user metadata, and the listing's
// etags are the ones a head gives, so the summary cache recognizes unchanged tags.
describe.skipIf(!minioInstalled && !process.env.CI)('tag summaries on S3 (MinIO)', () => {
  const s3 = useS3Server();

  it('keeps the summary in the tag object metadata and lists the same etags a head gives', async () => {
    const storage = new S3Driver({ client: s3.client, bucket: s3.server.bucket, prefix: randomUUID() });
    const r = testRegistry({ storage });
    const config = new TextEncoder().encode(
      JSON.stringify({ created: '2024-01-02T03:04:05Z', os: 'linux', architecture: 'arm64', variant: 'v8' }),
    );
    const layer = randomBytes(2048, 5);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: await pushBlob(r, 'team/app', config),
        size: config.length,
      },
      layers: [
        {
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: await pushBlob(r, 'team/app', layer),
          size: 2048,
        },
      ],
    });
    const put = await r.request('/v2/team/app/manifests/v1', {
      method: 'PUT',
      headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    expect(put.status).toBe(201);

    const key = keys.tag(parseName('team/app'), parseTag('v1'));
    const head = await storage.head(key);
    expect(decodeSummary(head?.metadata[SUMMARY_META])).toEqual({
      kind: 'image',
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: config.length + 2048,
      created: '2024-01-02T03:04:05Z',
      platforms: ['linux/arm64/v8'],
    });
    const listed = await storage.listObjects(keys.tagsPrefix(parseName('team/app')));
    expect(listed.objects.map((o) => [o.key, o.etag])).toEqual([[key, head!.etag]]);

    const page = await new TagSummaries(storage).page(parseName('team/app'), { n: 10 });
    expect(page.tags[0]).toMatchObject({
      name: 'v1',
      summary: { kind: 'image', platforms: ['linux/arm64/v8'] },
    });
  });
});
