import { formatBytes } from '../logging/format.ts';
import { tryParseDigest, type ParsedDigest } from '../oci/digest.ts';
import { mapLimit } from '../util/concurrency.ts';
import { keys, meta, parse } from '../registry/keys.ts';
import { listKeys } from '../registry/layout.ts';
import { readBackDigest } from '../registry/read-back.ts';
import type { ObjectInfo } from '../storage/port.ts';
import { CONCURRENCY, type BlobState, type FsckContext } from './context.ts';
import { finding, type Finding } from './findings.ts';

/*
 * Blobs (`blobs/<alg>/<hex>`): every blob's data exists with the blob's size (a pointer blob's data
 * object; a blob stored whole is its own data), and with --verify-digests hashes to its digest.
 * Builds the map of blobs the link checks compare with, and the data objects blob pointers name.
 */

export async function checkBlobs(ctx: FsckContext): Promise<void> {
  for await (const page of listKeys(ctx.storage, 'blobs/')) {
    await mapLimit(page, CONCURRENCY, async (key) => {
      const digest = blobDigest(key);
      if (!digest) {
        await unknownKey(ctx, key);
        return;
      }
      ctx.checked.blobs++;
      if (!ctx.spend(2, 'blob data')) {
        ctx.blobs.set(digest.digest, { dataKey: key, size: 0, status: 'unchecked' });
        return;
      }
      const info = await ctx.storage.head(key);
      if (!info) return; // collected meanwhile
      const { state, problem } = await examineBlob(ctx, digest, info);
      ctx.blobs.set(digest.digest, state);
      if (problem) addBrokenBlob(ctx, digest, problem);
    });
    if (ctx.outOfTime()) {
      ctx.skipped.add('blobs');
      return;
    }
  }
  ctx.blobsListed = true;
}

function addBrokenBlob(ctx: FsckContext, digest: ParsedDigest, problem: Finding): void {
  ctx.brokenBlobs.set(digest.digest, problem);
  ctx.add({
    finding: problem,
    recheck: async () => {
      const info = await ctx.storage.head(keys.blob(digest));
      if (!info) return undefined;
      return (await examineBlob(ctx, digest, info)).problem;
    },
  });
}

/** Looks at one blob: where its bytes are, and whether they are there (and hash right, when asked). */
export async function examineBlob(
  ctx: FsckContext,
  digest: ParsedDigest,
  info: ObjectInfo,
  options: { readonly hash?: boolean } = {},
): Promise<{ state: BlobState; problem?: Finding }> {
  const key = info.key;
  const pointer = info.metadata[meta.dataKey];
  const broken = (message: string, kind: 'blob-data-missing' | 'blob-corrupt' = 'blob-data-missing') => ({
    state: {
      dataKey: pointer ?? key,
      size: Number(info.metadata[meta.size] ?? info.size),
      status: 'broken' as const,
    },
    problem: finding(kind, {
      key,
      digest: digest.digest,
      message: `blob ${digest.digest}: ${message}`,
      affects: [],
    }),
  });
  let state: BlobState = { dataKey: key, size: info.size, status: 'ok' };
  if (pointer) {
    ctx.named.add(pointer);
    const size = Number(info.metadata[meta.size]);
    if (!Number.isSafeInteger(size) || size < 0) return broken(`its pointer to ${pointer} has no valid size`);
    const data = await ctx.storage.head(pointer);
    if (!data) return broken(`its data ${pointer} (${formatBytes(size)}) is missing`);
    if (data.size !== size) return broken(`its data ${pointer} holds ${data.size} bytes, not ${size}`);
    state = { dataKey: pointer, size, status: 'ok' };
  }
  if (options.hash ?? ctx.options.verifyDigests) {
    let hex: string;
    try {
      hex = await readBackDigest(ctx.storage, state.dataKey, state.size, digest.algorithm);
    } catch (err) {
      return broken(`its data could not be read back: ${(err as Error).message}`);
    }
    ctx.checked.bytesHashed += state.size;
    if (hex !== digest.hex) {
      return broken(
        `its data ${state.dataKey} hashes to ${digest.algorithm}:${hex}, not to the blob's digest`,
        'blob-corrupt',
      );
    }
  }
  return { state };
}

/** `blobs/<alg>/<hex>` with an algorithm and length the registry accepts. */
export function blobDigest(key: string): ParsedDigest | undefined {
  const digest = parse.blobKey(key);
  return digest ? tryParseDigest(digest) : undefined;
}

/** A key under one of Berth's prefixes that its layout does not have: reported, never touched. */
export async function unknownKey(ctx: FsckContext, key: string): Promise<void> {
  const found = await unknownFinding(ctx, key);
  if (found) ctx.add({ finding: found, recheck: () => unknownFinding(ctx, key) });
}

async function unknownFinding(ctx: FsckContext, key: string): Promise<Finding | undefined> {
  const info = await ctx.storage.head(key);
  return info
    ? finding('unknown-key', {
        key,
        message: `${key} is not part of Berth's storage layout (left alone)`,
        bytes: info.size,
        ageSeconds: ctx.ageSeconds(info.lastModified),
      })
    : undefined;
}
