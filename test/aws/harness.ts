import {
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type ListMultipartUploadsCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { parseConfig } from '../../lib/config/config.ts';
import { Browse } from '../../lib/browse/browse.ts';
import { createApp } from '../../lib/http/app.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import { InMemoryHashStates, SerializedHashStates, type HashStates } from '../../lib/registry/hashing.ts';
import { Registry } from '../../lib/registry/registry.ts';
import type { StorageDriver } from '../../lib/storage/port.ts';
import type { TestRegistry } from '../http/harness.ts';

const defaults = parseConfig({});

export interface AwsTestOptions {
  readonly storage: StorageDriver;
  readonly hashes?: 'memory' | 'serialized';
  /** Blob GETs answer 307 to a presigned URL (the production default). */
  readonly redirect?: boolean;
  /** Multipart part size; the production default (16 MiB) unless given. */
  readonly partSize?: number;
  /** Receives the app's log lines (JSON); silent when absent. */
  readonly log?: (line: string) => void;
}

/**
 * test/http/harness.ts's testRegistry with what these tests also need: the redirect switch and
 * the production defaults for part size and presign lifetime. Same request convention: the raw
 * path goes to the app as the Node adapter would give it.
 */
export function awsRegistry(options: AwsTestOptions): TestRegistry {
  const hashes: HashStates =
    options.hashes === 'serialized' ? new SerializedHashStates() : new InMemoryHashStates();
  const registry = new Registry({
    storage: options.storage,
    hashes,
    limits: {
      maxBlobSize: defaults.maxBlobSize,
      partSize: options.partSize ?? defaults.partSize,
      leaseMs: 60_000,
    },
    mountWithoutFrom: false,
  });
  const app = createApp({
    registry,
    logger: options.log ? createLogger('info', {}, options.log) : createLogger('silent'),
    redirect: { enabled: options.redirect ?? false, ttlSeconds: defaults.presignTtlSeconds },
    browse: new Browse({ registry, storage: options.storage }),
  });
  return {
    storage: options.storage,
    registry,
    request: async (path, init) =>
      app.request(`http://registry.test${path}`, init, { incoming: { url: path } }),
  };
}

/** Every key under `<prefix>/` in the bucket, relative to it, read with ListObjectsV2 directly. */
export async function bucketKeys(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/`, ContinuationToken }),
    );
    for (const { Key } of page.Contents ?? []) if (Key) keys.push(Key.slice(prefix.length + 1));
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken);
  return keys;
}

/**
 * Multipart uploads in progress under `<prefix>/`, relative keys. MinIO lists uploads for no prefix
 * or an exact key only (a partial prefix lists nothing), so this lists them all and filters.
 */
export async function multipartUploads(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let page: ListMultipartUploadsCommandOutput | undefined;
  do {
    page = await client.send(
      new ListMultipartUploadsCommand({
        Bucket: bucket,
        KeyMarker: page?.NextKeyMarker,
        UploadIdMarker: page?.NextUploadIdMarker,
      }),
    );
    for (const { Key } of page.Uploads ?? []) {
      if (Key?.startsWith(`${prefix}/`)) keys.push(Key.slice(prefix.length + 1));
    }
  } while (page.IsTruncated);
  return keys;
}

/**
 * The session objects among `keys` (under `uploads/`) that are not `ended` markers: a session that is
 * over leaves one while the POST's URL could still be used (docs/architecture.md, "A POST writes
 * nothing"), which the stale-session sweep removes after that.
 */
export async function liveSessions(registry: Registry, keys: readonly string[]): Promise<string[]> {
  const live: string[] = [];
  for (const key of keys) {
    const id = /^uploads\/([0-9a-f-]{36})\.json$/.exec(key)?.[1];
    if (id === undefined || (await registry.sessions.read(id))?.state.status !== 'ended') live.push(key);
  }
  return live;
}
