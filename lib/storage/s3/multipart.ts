import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { checkCompletion, checkPartUpload } from '../multipart-rules.ts';
import {
  NoSuchUpload,
  S3_LIMITS,
  type MultipartStore,
  type ObjectInfo,
  type OpenUpload,
  type PartInfo,
} from '../port.ts';
import { streamedBody, type StreamedBody } from './body.ts';
import { classify, storageError } from './errors.ts';
import type { KeySpace } from './keys.ts';
import { objectInfo } from './object-info.ts';

/** S3 multipart uploads, one call each; the upload id is S3's own. */
export class S3Multipart implements MultipartStore {
  readonly minPartSize = S3_LIMITS.minPartSize;
  readonly maxPartSize = S3_LIMITS.maxPartSize;
  readonly maxParts = S3_LIMITS.maxParts;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly keys: KeySpace,
  ) {}

  async create(
    key: string,
    options: { contentType?: string; metadata?: Record<string, string> } = {},
  ): Promise<string> {
    try {
      const { UploadId } = await this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.keys.toBucket(key),
          ContentType: options.contentType,
          Metadata: options.metadata,
        }),
      );
      if (UploadId === undefined) throw new Error(`S3 made no upload id for ${key}`);
      return UploadId;
    } catch (err) {
      throw storageError(err, `CreateMultipartUpload ${key}`);
    }
  }

  async uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array | ReadableStream<Uint8Array>,
    size: number,
  ): Promise<PartInfo> {
    checkPartUpload(partNumber, size);
    let payload: Uint8Array | Readable;
    let streamed: StreamedBody | undefined;
    if (body instanceof Uint8Array) {
      if (body.length !== size) throw new RangeError(`part body has ${body.length} bytes, not ${size}`);
      payload = body;
    } else {
      streamed = streamedBody(body, size);
      payload = streamed.body;
    }
    const command = new UploadPartCommand({
      Bucket: this.bucket,
      Key: this.keys.toBucket(key),
      UploadId: uploadId,
      PartNumber: partNumber,
      Body: payload,
      ContentLength: size,
    });
    try {
      // A streamed part takes as long as its sender does: no total timeout, the idle timeout still
      // stops a stalled one.
      const { ETag } = await this.client.send(
        command,
        streamed && { abortSignal: streamed.signal, requestTimeout: 0 },
      );
      if (ETag === undefined) throw new Error(`S3 gave no ETag for part ${partNumber} of ${key}`);
      return { partNumber, etag: ETag, size };
    } catch (err) {
      const failure = streamed?.failure();
      if (failure !== undefined) throw failure;
      if (classify(err) === 'no-such-upload') throw new NoSuchUpload(uploadId);
      throw storageError(err, `UploadPart ${key}`);
    } finally {
      streamed?.body.destroy();
    }
  }

  async complete(key: string, uploadId: string, parts: readonly PartInfo[]): Promise<ObjectInfo> {
    // S3 matches each part to the stored one itself; this adds the other drivers' numbering and size
    // rules (parts exactly 1..n) before a round trip.
    checkCompletion(parts, parts);
    const Key = this.keys.toBucket(key);
    try {
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key,
          UploadId: uploadId,
          MultipartUpload: {
            Parts: parts.map(({ partNumber, etag }) => ({ PartNumber: partNumber, ETag: etag })),
          },
        }),
      );
    } catch (err) {
      if (classify(err) === 'no-such-upload') throw new NoSuchUpload(uploadId);
      throw storageError(err, `CompleteMultipartUpload ${key}`);
    }
    // The answer has no size, type or metadata, so they are read back (the registry completes uploads
    // into keys that nothing else writes).
    try {
      return objectInfo(key, await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key })));
    } catch (err) {
      throw storageError(err, `HeadObject ${key}`);
    }
  }

  async abort(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.keys.toBucket(key),
          UploadId: uploadId,
        }),
      );
    } catch (err) {
      // AWS answers NoSuchUpload for an upload already gone; the port asks for nothing to happen.
      if (classify(err) === 'no-such-upload') return;
      throw storageError(err, `AbortMultipartUpload ${key}`);
    }
  }

  /**
   * ListMultipartUploads, all pages. Without a Prefix: MinIO lists nothing for a prefix that is not a
   * whole key, so the bucket's uploads are listed and those outside `prefix` skipped.
   */
  async *listOpen(prefix: string): AsyncIterable<OpenUpload> {
    const wanted = this.keys.toBucket(prefix);
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, KeyMarker, UploadIdMarker }),
        );
      } catch (err) {
        throw storageError(err, `ListMultipartUploads ${prefix}`);
      }
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key?.startsWith(wanted) || !upload.UploadId) continue;
        yield {
          key: this.keys.fromBucket(upload.Key),
          uploadId: upload.UploadId,
          initiated: upload.Initiated ?? new Date(0),
        };
      }
      if (!page.IsTruncated) return;
      KeyMarker = page.NextKeyMarker;
      UploadIdMarker = page.NextUploadIdMarker;
    }
  }
}
