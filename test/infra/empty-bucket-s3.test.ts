import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client } from '../../lib/storage/s3/index.ts';
import { emptyBucket } from '../../lib/teardown/empty-bucket.ts';
import { minioInstalled, startS3Server, type S3TestServer } from '../storage/s3-server.ts';

// Developers without MinIO may skip; CI must run these (setup-s3.sh installs it there).
describe.skipIf(!minioInstalled && !process.env.CI)('emptying a bucket on MinIO', () => {
  let server: S3TestServer;
  let client: ReturnType<typeof createS3Client>;

  beforeAll(async () => {
    server = await startS3Server();
    client = createS3Client({ region: server.region, endpoint: server.endpoint, forcePathStyle: true });
  });
  afterAll(async () => {
    client?.destroy();
    await server?.stop();
  });

  it('deletes every object and aborts every multipart upload, over several pages', async () => {
    const Bucket = server.bucket;
    const keys = Array.from({ length: 1205 }, (_, i) => `repos/app/_tags/t${i}`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(
        keys.slice(i, i + 50).map((Key) => client.send(new PutObjectCommand({ Bucket, Key, Body: 'x' }))),
      );
    }
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: 'data/u1' }));
    await client.send(
      new UploadPartCommand({ Bucket, Key: 'data/u1', UploadId, PartNumber: 1, Body: new Uint8Array(1024) }),
    );

    const result = await emptyBucket(client, Bucket);

    expect(result).toEqual({ deleted: 1205, aborted: 1, complete: true });
    expect((await client.send(new ListObjectsV2Command({ Bucket }))).KeyCount ?? 0).toBe(0);
    expect((await client.send(new ListMultipartUploadsCommand({ Bucket }))).Uploads ?? []).toEqual([]);
    // Emptying an empty bucket is a no-op (the custom resource may run twice: expiry, then deletion).
    expect(await emptyBucket(client, Bucket)).toEqual({ deleted: 0, aborted: 0, complete: true });
  });
});
