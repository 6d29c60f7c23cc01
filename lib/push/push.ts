import { BlobUpload, DEFAULT_TUNING, type UploadTuning } from '../client/blob-upload.ts';
import type { Progress } from '../client/progress.ts';
import { RemoteError, repositoryScope, type RemoteRegistry } from '../client/remote.ts';
import { mapLimit } from '../util/concurrency.ts';
import type { BlobSource, ManifestSource } from './image-source.ts';

export interface PushTarget {
  readonly remote: RemoteRegistry;
  readonly repo: string;
  /** A tag, or a digest (then the manifest must have it). */
  readonly reference: string;
}

export interface PushSummary {
  readonly digest: string;
  readonly uploaded: number;
  readonly skipped: number;
  readonly bytes: number;
}

/** Blobs uploaded at once; each large one also sends several parts at once. */
const BLOB_CONCURRENCY = 2;

/**
 * Pushes an image read from an archive: every blob the registry lacks (a HEAD tells), through the
 * direct-to-storage path when the registry offers it, then the manifests, children first.
 */
export async function pushImage(
  image: ManifestSource,
  target: PushTarget,
  progress?: Progress,
  tuning: UploadTuning = DEFAULT_TUNING,
): Promise<PushSummary> {
  const { remote, repo } = target;
  const blobs = new Map<string, BlobSource>();
  const collect = (m: ManifestSource) => {
    for (const b of m.blobs) blobs.set(b.digest, b);
    for (const c of m.children) collect(c);
  };
  collect(image);
  let uploaded = 0;
  let bytes = 0;
  await mapLimit([...blobs.values()], BLOB_CONCURRENCY, async (blob) => {
    if (await exists(remote, repo, blob.digest)) return;
    await uploadBlob(remote, repo, blob, tuning, progress);
    uploaded++;
    bytes += blob.size;
  });
  const putAll = async (m: ManifestSource, reference: string) => {
    for (const child of m.children) await putManifest(remote, repo, child, child.digest);
    await putManifest(remote, repo, m, reference);
  };
  await putAll(image, target.reference);
  return { digest: image.digest, uploaded, skipped: blobs.size - uploaded, bytes };
}

async function exists(remote: RemoteRegistry, repo: string, digest: string): Promise<boolean> {
  const res = await remote.request({
    method: 'HEAD',
    path: `/v2/${repo}/blobs/${digest}`,
    scope: repositoryScope(repo, true),
  });
  await res.body?.cancel();
  return res.status === 200;
}

async function uploadBlob(
  remote: RemoteRegistry,
  repo: string,
  blob: BlobSource,
  tuning: UploadTuning,
  progress?: Progress,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const bar = progress?.blob(blob.digest.slice(7, 19), blob.size);
    const upload = BlobUpload.deferred(remote, repo, tuning, {
      onBytes: (n) => bar?.bytes(n),
      onPart: () => bar?.part(),
    });
    upload.expect(blob.digest, blob.size);
    try {
      for await (const chunk of blob.read()) await upload.write(chunk);
      if (upload.offset !== blob.size) {
        throw new Error(`blob ${blob.digest} has ${upload.offset} bytes in the archive, not ${blob.size}`);
      }
      const result = await upload.finish(blob.digest);
      bar?.done(result);
      return;
    } catch (err) {
      await upload.cancel();
      const message = err instanceof Error ? err.message : String(err);
      // One PUT of the whole blob has no parts to retry: the blob starts again, from the archive.
      if (upload.way === 'checked' && attempt < CHECKED_ATTEMPTS && retriable(err)) {
        bar?.fail(`${message}; trying again`);
        continue;
      }
      bar?.fail(message);
      throw err;
    }
  }
}

/** Tries of a blob sent in one checked PUT (a blob in parts retries each part instead). */
const CHECKED_ATTEMPTS = 3;

/** A failure another try may not meet: the network, the store, not the registry refusing the blob. */
function retriable(err: unknown): boolean {
  return !(err instanceof RemoteError) || err.status >= 500 || err.status === 408 || err.status === 429;
}

async function putManifest(
  remote: RemoteRegistry,
  repo: string,
  manifest: ManifestSource,
  reference: string,
): Promise<void> {
  const res = await remote.request({
    method: 'PUT',
    path: `/v2/${repo}/manifests/${reference}`,
    scope: repositoryScope(repo, true),
    headers: { 'Content-Type': manifest.mediaType },
    body: manifest.bytes,
  });
  if (res.status !== 201) throw await RemoteError.from(res, `pushing manifest ${reference}`);
  await res.body?.cancel();
}
