import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { emptyBucket } from '../../lib/teardown/empty-bucket.ts';
import { minioInstalled } from '../storage/s3-server.ts';
import { useS3Server } from '../storage/use-s3-server.ts';

// Developers without MinIO may skip; CI must run these (setup-s3.sh installs it there).
describe.skipIf(!minioInstalled && !process.env.CI)('emptying a bucket on MinIO', () => {
  const s3 = useS3Server();

  it('deletes every object and aborts every multipart upload, over several pages', async () => {
    const Bucket = s3.server.bucket;
    const client = s3.client;
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
