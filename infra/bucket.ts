import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Key } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  ObjectOwnership,
  StorageClass,
  type LifecycleRule,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface RegistryBucketProps {
  readonly encryption: 's3' | 'kms';
  readonly versioned: boolean;
  readonly intelligentTiering: boolean;
  readonly removalPolicy: RemovalPolicy;
}

/** Multipart uploads nobody finished: their parts are billed until aborted. */
export const ABORT_MULTIPART_AFTER_DAYS = 1;
/** Upload sessions and their tails: the janitor cancels them after BERTH_UPLOAD_TTL (1 day); this is the backstop. */
export const EXPIRE_UPLOADS_AFTER_DAYS = 3;
/** With versioning on, how long a deleted or replaced object's old version is kept. */
export const NONCURRENT_VERSIONS_DAYS = 30;
/** S3 Intelligent-Tiering neither monitors nor moves objects below 128 KiB, so smaller ones stay put. */
const TIERING_MIN_BYTES = 128 * 1024;

/**
 * The registry's bucket: private (every public access blocked, ACLs off), encrypted, TLS only.
 * Versioning is off by default: blobs are content-addressed (a key's bytes never change), manifests
 * likewise, and tags and sessions are rewritten whole with conditional writes, so old versions would
 * only keep deleted data billable; turn it on to be able to undo deletes.
 */
export class RegistryBucket extends Construct {
  readonly bucket: Bucket;
  readonly key?: Key;

  constructor(scope: Construct, id: string, props: RegistryBucketProps) {
    super(scope, id);
    if (props.encryption === 'kms') {
      this.key = new Key(this, 'Key', {
        description: 'Berth registry bucket',
        enableKeyRotation: true,
        removalPolicy: props.removalPolicy,
        pendingWindow: Duration.days(7),
      });
    }
    const rules: LifecycleRule[] = [
      {
        id: 'abort-incomplete-uploads',
        abortIncompleteMultipartUploadAfter: Duration.days(ABORT_MULTIPART_AFTER_DAYS),
      },
      {
        id: 'expire-upload-sessions',
        prefix: 'uploads/',
        expiration: Duration.days(EXPIRE_UPLOADS_AFTER_DAYS),
      },
    ];
    if (props.versioned) {
      rules.push({
        id: 'expire-old-versions',
        noncurrentVersionExpiration: Duration.days(NONCURRENT_VERSIONS_DAYS),
        expiredObjectDeleteMarker: true,
      });
    }
    if (props.intelligentTiering) {
      for (const prefix of ['blobs/', 'data/']) {
        rules.push({
          id: `tier-${prefix.slice(0, -1)}`,
          prefix,
          objectSizeGreaterThan: TIERING_MIN_BYTES - 1,
          transitions: [
            { storageClass: StorageClass.INTELLIGENT_TIERING, transitionAfter: Duration.days(0) },
          ],
        });
      }
    }
    this.bucket = new Bucket(this, 'Bucket', {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      versioned: props.versioned,
      lifecycleRules: rules,
      removalPolicy: props.removalPolicy,
      ...(this.key
        ? { encryption: BucketEncryption.KMS, encryptionKey: this.key, bucketKeyEnabled: true }
        : { encryption: BucketEncryption.S3_MANAGED }),
    });
  }
}
