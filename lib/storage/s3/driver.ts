import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { pageLimit } from '../listing.ts';
import {
  ChecksumMismatch,
  PreconditionFailed,
  type ByteRange,
  type DetailedListPage,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectStream,
  type PutOptions,
  type StorageDriver,
  type StoredObject,
} from '../port.ts';
import { MAX_BUFFERED_PUT, readBounded } from './body.ts';
import { classify, storageError } from './errors.ts';
import { KeySpace } from './keys.ts';
import { S3DirectParts } from './direct.ts';
import { S3Multipart } from './multipart.ts';
import { contentRange, objectInfo } from './object-info.ts';
import { Presigner, type PresignOptions } from './presign.ts';

export interface S3DriverOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Keeps every key under `<prefix>/`, so that registries can share a bucket. */
  readonly prefix?: string;
  /** The origin presigned URLs name, when clients reach the store at another address (see Presigner). */
  readonly publicEndpoint?: string;
}

/** The storage port on S3: one S3 call per port call, S3's answers mapped to the port's. */
export class S3Driver implements StorageDriver {
  readonly name = 's3';
  readonly multipart: S3Multipart;
  readonly direct: S3DirectParts;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly keys: KeySpace;
  private readonly presigner: Presigner;

  constructor(options: S3DriverOptions) {
    this.client = options.client;
    this.bucket = options.bucket;
    this.keys = new KeySpace(options.prefix);
    this.multipart = new S3Multipart(this.client, this.bucket, this.keys);
    this.presigner = new Presigner(this.client, this.bucket, options.publicEndpoint);
    this.direct = new S3DirectParts(this.client, this.presigner.client, this.bucket, this.keys);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      return objectInfo(
        key,
        await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keys.toBucket(key) })),
      );
    } catch (err) {
      if (classify(err) === 'missing') return undefined;
      throw storageError(err, `HeadObject ${key}`);
    }
  }

  async get(key: string): Promise<StoredObject | undefined> {
    const object = await this.getStream(key);
    return object && { ...object, body: new Uint8Array(await new Response(object.body).arrayBuffer()) };
  }

  async getStream(key: string, range?: ByteRange): Promise<ObjectStream | undefined> {
    // S3 serves the whole object for a Range header it cannot parse, so bad ranges stop here.
    if (range && !validRange(range))
      throw new RangeError(`range ${range.start}-${range.end} is not a byte range`);
    let answer: GetObjectCommandOutput;
    try {
      answer = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.keys.toBucket(key),
          ...(range && { Range: `bytes=${range.start}-${range.end}` }),
        }),
      );
    } catch (err) {
      const failure = classify(err);
      if (failure === 'missing') return undefined;
      if (failure === 'invalid-range') {
        throw new RangeError(`range ${range?.start}-${range?.end} is beyond the end of ${key}`, {
          cause: err,
        });
      }
      throw storageError(err, `GetObject ${key}`);
    }
    if (answer.Body === undefined) throw new Error(`S3 answered GetObject ${key} without a body`);
    const info = objectInfo(key, answer);
    const body = answer.Body.transformToWebStream() as ReadableStream<Uint8Array>;
    return {
      ...info,
      body,
      ...(range && answer.ContentRange !== undefined && { range: contentRange(answer.ContentRange).range }),
    };
  }

  async put(
    key: string,
    body: Uint8Array | ReadableStream<Uint8Array>,
    options: PutOptions = {},
  ): Promise<ObjectInfo> {
    const bytes = body instanceof Uint8Array ? body : await readBounded(body, MAX_BUFFERED_PUT);
    let etag: string | undefined;
    try {
      ({ ETag: etag } = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.keys.toBucket(key),
          Body: bytes,
          ContentLength: bytes.length,
          ContentType: options.contentType,
          Metadata: options.metadata,
          IfNoneMatch: options.ifNoneMatch,
          IfMatch: options.ifMatch,
          ChecksumSHA256: options.sha256Base64,
        }),
      ));
    } catch (err) {
      switch (classify(err)) {
        case 'precondition':
          throw new PreconditionFailed(key);
        // If-Match on a key with no object: AWS answers 404 NoSuchKey.
        case 'missing':
          if (options.ifMatch !== undefined) throw new PreconditionFailed(key);
          break;
        case 'checksum':
          throw new ChecksumMismatch(key);
      }
      throw storageError(err, `PutObject ${key}`);
    }
    if (etag === undefined) throw new Error(`S3 gave no ETag for ${key}`);
    return {
      key,
      size: bytes.length,
      etag,
      ...(options.contentType !== undefined && { contentType: options.contentType }),
      metadata: { ...options.metadata },
      // PutObject answers without Last-Modified; a HEAD for it could see a later write.
      lastModified: new Date(),
    };
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keys.toBucket(key) }));
    } catch (err) {
      throw storageError(err, `DeleteObject ${key}`);
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const page = await this.listObjects(prefix, options);
    return { keys: page.objects.map((o) => o.key), truncated: page.truncated };
  }

  async listObjects(prefix: string, options: ListOptions = {}): Promise<DetailedListPage> {
    const limit = pageLimit(options.limit);
    try {
      const answer = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.keys.toBucket(prefix),
          ...(options.startAfter !== undefined && { StartAfter: this.keys.toBucket(options.startAfter) }),
          MaxKeys: limit,
        }),
      );
      return {
        objects: (answer.Contents ?? []).flatMap(({ Key, Size, ETag, LastModified }) =>
          Key === undefined
            ? []
            : [
                {
                  key: this.keys.fromBucket(Key),
                  size: Size ?? 0,
                  etag: ETag ?? '',
                  lastModified: LastModified ?? new Date(0),
                },
              ],
        ),
        truncated: answer.IsTruncated ?? false,
      };
    } catch (err) {
      throw storageError(err, `ListObjectsV2 ${prefix}`);
    }
  }

  presign(key: string, options: PresignOptions): Promise<string> {
    return this.presigner.url(this.keys.toBucket(key), options);
  }
}

function validRange({ start, end }: ByteRange): boolean {
  return Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && end >= start;
}
