import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDigest } from '../../lib/oci/digest.ts';
import { S3Driver } from '../../lib/storage/s3/index.ts';
import type { S3Client } from '@aws-sdk/client-s3';
import { pushImage, randomBytes, sha256 } from '../http/harness.ts';
import { minioInstalled, startS3Server, testS3Client, type S3TestServer } from '../storage/s3-server.ts';
import { fakeUpstream, mirrorRegistry } from './harness.ts';
import { mirrorSuite } from './suite.ts';

const MiB = 1024 * 1024;

// Developers without MinIO may skip; CI must run these (setup-s3.sh installs it there).
describe.skipIf(!minioInstalled && !process.env.CI)('pull-through cache on the S3 store (MinIO)', () => {
  let server: S3TestServer;
  const clients: S3Client[] = [];
  beforeAll(async () => {
    server = await startS3Server();
  });
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await server?.stop();
  });

  function storage(): Promise<S3Driver> {
    const client = testS3Client(server);
    clients.push(client);
    return Promise.resolve(new S3Driver({ client, bucket: server.bucket, prefix: randomUUID() }));
  }

  describe('streaming misses to the client (the local server)', () => {
    mirrorSuite(storage);
  });

  describe('storing misses first, then redirecting to presigned URLs (Lambda)', () => {
    mirrorSuite(storage, { mode: 'fill', redirect: true, follow: (location) => fetch(location) });
  });

  it('on Lambda, a blob too slow to copy within the request sends the client to the upstream CDN', async () => {
    const upstream = fakeUpstream();
    const image = await pushImage(upstream.registry, 'app', 'v1', { layers: [randomBytes(MiB, 8)] });
    upstream.cdn = true;
    let release!: () => void;
    upstream.gate = new Promise((resolve) => (release = resolve));
    const mirror = mirrorRegistry({
      storage: await storage(),
      upstream,
      mode: 'fill',
      redirect: true,
      fillTimeoutMs: 200,
    });
    const res = await mirror.request(`/v2/app/blobs/${image.layers[0]}`);
    release();
    expect(res.status).toBe(307);
    expect(res.headers.get('Location')).toBe(`https://cdn.test/v2/app/blobs/${image.layers[0]}`);
    expect(await mirror.registry.blobs.statGlobal(parseDigest(image.layers[0]!))).toBeUndefined();

    upstream.gate = undefined;
    const filled = await mirror.request(`/v2/app/blobs/${image.layers[0]}`);
    expect(filled.status).toBe(307);
    const location = filled.headers.get('Location')!;
    expect(location.startsWith(server.endpoint)).toBe(true);
    expect(sha256(new Uint8Array(await (await fetch(location)).arrayBuffer()))).toBe(image.layers[0]);
  });
});
