import {
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { checkPartUpload } from '../multipart-rules.ts';
import { NoSuchUpload, type CheckedUrl, type DirectPartStore, type PartInfo } from '../port.ts';
import { classify, storageError } from './errors.ts';
import { signingDate } from './presign.ts';
import type { KeySpace } from './keys.ts';

/** SigV4's longest validity for a presigned URL: seven days. */
const MAX_EXPIRY_SECONDS = 7 * 24 * 60 * 60;

const CHECKSUM_HEADER = 'x-amz-checksum-sha256';

function checkExpiry(expiresInSeconds: number): void {
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > MAX_EXPIRY_SECONDS) {
    throw new RangeError(`presigned URL expiry ${expiresInSeconds} s is outside 1..${MAX_EXPIRY_SECONDS}`);
  }
}

/**
 * Presigned UploadPart URLs and ListParts, and presigned single PUTs that S3 checks by their
 * SHA-256. The URLs are signed by `signer`, which names the public endpoint when clients reach the
 * store at another address (see Presigner); ListParts and HEADs go through the driver's own client.
 */
export class S3DirectParts implements DirectPartStore {
  constructor(
    private readonly client: S3Client,
    private readonly signer: S3Client,
    private readonly bucket: string,
    private readonly keys: KeySpace,
  ) {}

  async presignPart(
    key: string,
    uploadId: string,
    partNumber: number,
    expiresInSeconds: number,
  ): Promise<string> {
    checkPartUpload(partNumber, 0);
    checkExpiry(expiresInSeconds);
    const command = new UploadPartCommand({
      Bucket: this.bucket,
      Key: this.keys.toBucket(key),
      UploadId: uploadId,
      PartNumber: partNumber,
    });
    return getSignedUrl(this.signer, command, {
      expiresIn: expiresInSeconds,
      signingDate: signingDate(this.client),
    });
  }

  /**
   * A presigned PutObject whose `x-amz-checksum-sha256` is a signed header, not a query parameter:
   * S3 then refuses a PUT without it (the signature no longer matches) and one whose body has another
   * SHA-256 (BadDigest). Hoisted into the query, as the presigner does by default, a checksum was
   * not enforced by MinIO.
   */
  async presignChecked(key: string, sha256Base64: string, expiresInSeconds: number): Promise<CheckedUrl> {
    checkExpiry(expiresInSeconds);
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: this.keys.toBucket(key),
      ChecksumSHA256: sha256Base64,
    });
    const url = await getSignedUrl(this.signer, command, {
      expiresIn: expiresInSeconds,
      signingDate: signingDate(this.client),
      signableHeaders: new Set([CHECKSUM_HEADER]),
      unhoistableHeaders: new Set([CHECKSUM_HEADER]),
    });
    return { url, headers: { [CHECKSUM_HEADER]: sha256Base64 } };
  }

  async storedSha256(key: string): Promise<{ size: number; sha256Base64?: string } | undefined> {
    let answer;
    try {
      answer = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.keys.toBucket(key), ChecksumMode: 'ENABLED' }),
      );
    } catch (err) {
      if (classify(err) === 'missing') return undefined;
      throw storageError(err, `HeadObject ${key}`);
    }
    if (answer.ContentLength === undefined) throw new Error(`S3 answered HeadObject ${key} without a size`);
    const sha = answer.ChecksumSHA256;
    // A multipart upload's SHA-256 is of its parts' checksums ("<base64>-<parts>", COMPOSITE): not
    // the body's, so it says nothing here.
    const whole =
      sha !== undefined && !sha.includes('-') && (answer.ChecksumType ?? 'FULL_OBJECT') === 'FULL_OBJECT';
    return { size: answer.ContentLength, ...(whole && { sha256Base64: sha }) };
  }

  async listParts(key: string, uploadId: string): Promise<PartInfo[]> {
    const parts: PartInfo[] = [];
    let marker: string | undefined;
    for (;;) {
      let answer;
      try {
        answer = await this.client.send(
          new ListPartsCommand({
            Bucket: this.bucket,
            Key: this.keys.toBucket(key),
            UploadId: uploadId,
            MaxParts: 1000,
            ...(marker !== undefined && { PartNumberMarker: marker }),
          }),
        );
      } catch (err) {
        if (classify(err) === 'no-such-upload') throw new NoSuchUpload(uploadId);
        throw storageError(err, `ListParts ${key}`);
      }
      for (const { PartNumber, ETag, Size } of answer.Parts ?? []) {
        if (PartNumber === undefined || ETag === undefined || Size === undefined) {
          throw new Error(`S3 listed a part of ${key} without a number, ETag or size`);
        }
        parts.push({ partNumber: PartNumber, etag: ETag, size: Size });
      }
      if (!answer.IsTruncated || answer.NextPartNumberMarker === undefined) break;
      marker = String(answer.NextPartNumberMarker);
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }
}
