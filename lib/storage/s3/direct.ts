import { ListPartsCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { checkPartUpload } from '../multipart-rules.ts';
import { NoSuchUpload, type DirectPartStore, type PartInfo } from '../port.ts';
import { classify, storageError } from './errors.ts';
import { signingDate } from './presign.ts';
import type { KeySpace } from './keys.ts';

/** SigV4's longest validity for a presigned URL: seven days. */
const MAX_EXPIRY_SECONDS = 7 * 24 * 60 * 60;

/**
 * Presigned UploadPart URLs and ListParts. The URLs are signed by `signer`, which names the public
 * endpoint when clients reach the store at another address (see Presigner); ListParts goes through
 * the driver's own client.
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
    if (
      !Number.isInteger(expiresInSeconds) ||
      expiresInSeconds < 1 ||
      expiresInSeconds > MAX_EXPIRY_SECONDS
    ) {
      throw new RangeError(`presigned URL expiry ${expiresInSeconds} s is outside 1..${MAX_EXPIRY_SECONDS}`);
    }
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
