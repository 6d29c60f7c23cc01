import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  type ObjectIdentifier,
  type S3Client,
} from '@aws-sdk/client-s3';

export interface EmptyResult {
  /** Object versions and delete markers removed (one per key when versioning is off). */
  readonly deleted: number;
  /** Multipart uploads aborted (their parts are billed storage until then). */
  readonly aborted: number;
  /** False when the time budget ran out first: call again to continue. */
  readonly complete: boolean;
}

export interface EmptyOptions {
  /** Stop starting new work once this returns false (the Lambda's remaining time). */
  readonly keepGoing?: () => boolean;
  /** DeleteObjects calls in flight at once. */
  readonly concurrency?: number;
}

/**
 * Removes everything a bucket holds so that CloudFormation can delete it: incomplete multipart
 * uploads first (a registry still serving could otherwise complete one into a new object), then
 * every object version and delete marker, 1,000 keys per DeleteObjects call. ListObjectVersions
 * also lists an unversioned bucket (version id "null"), so one path serves both.
 */
export async function emptyBucket(
  client: S3Client,
  bucket: string,
  options: EmptyOptions = {},
): Promise<EmptyResult> {
  const keepGoing = options.keepGoing ?? (() => true);
  const aborted = await abortUploads(client, bucket, keepGoing);
  if (!aborted.complete) return { deleted: 0, aborted: aborted.count, complete: false };

  const concurrency = options.concurrency ?? 4;
  const inFlight = new Set<Promise<void>>();
  let deleted = 0;
  let failure: unknown;
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  let complete = false;
  while (failure === undefined) {
    if (!keepGoing()) break;
    const page = await client.send(
      new ListObjectVersionsCommand({
        Bucket: bucket,
        MaxKeys: 1000,
        ...(keyMarker !== undefined && { KeyMarker: keyMarker }),
        ...(versionIdMarker !== undefined && { VersionIdMarker: versionIdMarker }),
      }),
    );
    const batch: ObjectIdentifier[] = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])].flatMap(
      ({ Key, VersionId }) => (Key === undefined ? [] : [{ Key, ...(VersionId && { VersionId }) }]),
    );
    // MaxKeys counts versions and delete markers together; chunking keeps DeleteObjects' limit anyway.
    for (let i = 0; i < batch.length && failure === undefined; i += 1000) {
      const call = deleteBatch(client, bucket, batch.slice(i, i + 1000)).then(
        (n) => {
          deleted += n;
        },
        (err: unknown) => {
          failure ??= err;
        },
      );
      const tracked = call.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      if (inFlight.size >= concurrency) await Promise.race(inFlight);
    }
    if (!page.IsTruncated) {
      complete = true;
      break;
    }
    keyMarker = page.NextKeyMarker;
    versionIdMarker = page.NextVersionIdMarker;
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
  return { deleted, aborted: aborted.count, complete };
}

async function deleteBatch(client: S3Client, bucket: string, objects: ObjectIdentifier[]): Promise<number> {
  const out = await client.send(
    new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }),
  );
  const errors = out.Errors ?? [];
  if (errors.length > 0) {
    const first = errors[0];
    throw new Error(
      `S3 refused to delete ${errors.length} of ${objects.length} objects in ${bucket}, first ${first?.Key}: ${first?.Code} ${first?.Message ?? ''}`.trim(),
    );
  }
  return objects.length;
}

async function abortUploads(
  client: S3Client,
  bucket: string,
  keepGoing: () => boolean,
): Promise<{ count: number; complete: boolean }> {
  let count = 0;
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (;;) {
    if (!keepGoing()) return { count, complete: false };
    const page = await client.send(
      new ListMultipartUploadsCommand({
        Bucket: bucket,
        ...(keyMarker !== undefined && { KeyMarker: keyMarker }),
        ...(uploadIdMarker !== undefined && { UploadIdMarker: uploadIdMarker }),
      }),
    );
    const uploads = (page.Uploads ?? []).filter(
      (u): u is { Key: string; UploadId: string } => u.Key !== undefined && u.UploadId !== undefined,
    );
    await Promise.all(
      uploads.map(async ({ Key, UploadId }) => {
        try {
          await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
        } catch (err) {
          // Completed or aborted by someone else since the listing: nothing left to abort.
          if ((err as { name?: string }).name !== 'NoSuchUpload') throw err;
        }
      }),
    );
    count += uploads.length;
    if (!page.IsTruncated) return { count, complete: true };
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }
}
