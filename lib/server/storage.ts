import type { Config } from '../config/config.ts';
import { FilesystemDriver } from '../storage/filesystem/index.ts';
import type { StorageDriver } from '../storage/port.ts';
import { S3Driver, createS3Client } from '../storage/s3/index.ts';

/** The store the configuration names. S3 credentials come from the AWS SDK's default chain. */
export function createStorage(config: Config): StorageDriver {
  if (config.storage === 'filesystem') return new FilesystemDriver({ root: config.dataDir });
  const { bucket, prefix, region, endpoint, forcePathStyle, publicEndpoint } = config.s3;
  if (!bucket) throw new Error('the s3 store needs a bucket');
  return new S3Driver({
    client: createS3Client({ region, endpoint, forcePathStyle }),
    bucket,
    prefix,
    publicEndpoint,
  });
}
