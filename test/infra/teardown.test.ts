import { CloudFormationClient, DeleteStackCommand } from '@aws-sdk/client-cloudformation';
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/logging/logger.ts';
import { maintenanceLogLevel, teardownSettingsOf } from '../../lib/setup/maintenance.ts';
import { teardown, type TeardownDeps, type TeardownSettings } from '../../lib/teardown/teardown.ts';

const s3Mock = mockClient(S3Client);
const cfnMock = mockClient(CloudFormationClient);
const lines: Record<string, unknown>[] = [];
const logger = createLogger('info', {}, (line) => lines.push(JSON.parse(line)));

const EXPIRES = new Date('2026-12-05T10:01:00Z');
const STACK = 'arn:aws:cloudformation:eu-west-1:123456789012:stack/berth-payments/0a1b';
const ROLE = 'arn:aws:iam::123456789012:role/cdk-hnb659fds-cfn-exec-role-123456789012-eu-west-1';
const ttlSettings: TeardownSettings = {
  bucket: 'berth-bucket',
  stackId: STACK,
  deletionRoleArn: ROLE,
  expiresAt: EXPIRES,
};

function deps(overrides: Partial<TeardownDeps> = {}): TeardownDeps {
  return {
    s3: new S3Client({ region: 'eu-west-1' }),
    cloudformation: new CloudFormationClient({ region: 'eu-west-1' }),
    logger,
    settings: ttlSettings,
    remainingMs: () => 600_000,
    now: () => EXPIRES,
    ...overrides,
  };
}

function customResource(
  type: 'Create' | 'Update' | 'Delete',
  bucket = 'berth-bucket',
): CloudFormationCustomResourceEvent {
  return {
    RequestType: type,
    ServiceToken: 'arn:aws:lambda:eu-west-1:123456789012:function:provider',
    ResponseURL: 'https://example.com/response',
    StackId: STACK,
    RequestId: 'r-1',
    LogicalResourceId: 'TeardownEmptyBucket',
    ResourceType: 'Custom::BerthEmptyBucket',
    ResourceProperties: { ServiceToken: 'x', BucketName: bucket },
    ...(type === 'Create' ? {} : { PhysicalResourceId: `berth-empty:${bucket}` }),
    ...(type === 'Update' ? { OldResourceProperties: { BucketName: bucket } } : {}),
  } as CloudFormationCustomResourceEvent;
}

/** A bucket of `n` objects, listed 1,000 per page, with a delete marker on the first page. */
function bucketOf(n: number) {
  const keys = Array.from({ length: n }, (_, i) => `blobs/sha256/${String(i).padStart(6, '0')}`);
  s3Mock.on(ListObjectVersionsCommand).callsFake((input: { KeyMarker?: string }) => {
    const start = input.KeyMarker === undefined ? 0 : keys.indexOf(input.KeyMarker) + 1;
    const page = keys.slice(start, start + 1000);
    const truncated = start + 1000 < keys.length;
    return {
      Versions: page.map((Key) => ({ Key, VersionId: 'null' })),
      DeleteMarkers: start === 0 ? [{ Key: 'repos/a/_tags/old', VersionId: 'v-marker' }] : [],
      IsTruncated: truncated,
      ...(truncated && { NextKeyMarker: page.at(-1), NextVersionIdMarker: 'null' }),
    };
  });
}

function deletedKeys(): string[] {
  return s3Mock
    .commandCalls(DeleteObjectsCommand)
    .flatMap((c) => c.args[0].input.Delete?.Objects?.map((o) => `${o.Key}@${o.VersionId}`) ?? []);
}

beforeEach(() => {
  s3Mock.reset();
  cfnMock.reset();
  lines.length = 0;
  s3Mock.on(ListMultipartUploadsCommand).resolves({ Uploads: [], IsTruncated: false });
  s3Mock.on(DeleteObjectsCommand).resolves({});
  s3Mock.on(AbortMultipartUploadCommand).resolves({});
  cfnMock.on(DeleteStackCommand).resolves({});
});

describe('the bucket-emptying custom resource', () => {
  it('does nothing on Create and Update, and names the bucket as its physical id', async () => {
    for (const type of ['Create', 'Update'] as const) {
      expect(await teardown(deps(), customResource(type))).toEqual({
        PhysicalResourceId: 'berth-empty:berth-bucket',
      });
    }
    expect(s3Mock.calls()).toHaveLength(0);
    expect(cfnMock.calls()).toHaveLength(0);
  });

  it('on Delete aborts multipart uploads, then deletes every version and delete marker, 1,000 per call', async () => {
    s3Mock
      .on(ListMultipartUploadsCommand)
      .resolvesOnce({
        Uploads: [
          { Key: 'data/u1', UploadId: 'm1' },
          { Key: 'data/u2', UploadId: 'm2' },
        ],
        IsTruncated: true,
        NextKeyMarker: 'data/u2',
        NextUploadIdMarker: 'm2',
      })
      .resolves({ Uploads: [{ Key: 'data/u3', UploadId: 'm3' }], IsTruncated: false });
    bucketOf(2500);
    const result = await teardown(deps(), customResource('Delete'));
    expect(result).toEqual({ PhysicalResourceId: 'berth-empty:berth-bucket' });
    expect(s3Mock.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'berth-bucket', Key: 'data/u1', UploadId: 'm1' },
      { Bucket: 'berth-bucket', Key: 'data/u2', UploadId: 'm2' },
      { Bucket: 'berth-bucket', Key: 'data/u3', UploadId: 'm3' },
    ]);
    expect(s3Mock.commandCalls(ListMultipartUploadsCommand)[1]!.args[0].input).toMatchObject({
      KeyMarker: 'data/u2',
      UploadIdMarker: 'm2',
    });
    const deletes = s3Mock.commandCalls(DeleteObjectsCommand);
    expect(deletes.every((c) => (c.args[0].input.Delete?.Objects?.length ?? 0) <= 1000)).toBe(true);
    expect(deletes.every((c) => c.args[0].input.Delete?.Quiet === true)).toBe(true);
    const deleted = deletedKeys();
    expect(deleted).toHaveLength(2501);
    expect(new Set(deleted).size).toBe(2501);
    expect(deleted).toContain('repos/a/_tags/old@v-marker');
    expect(deleted).toContain('blobs/sha256/002499@null');
    // Aborts come first, so nothing completes into a new object after the listing.
    const order = s3Mock.calls().map((c) => c.args[0].constructor.name);
    expect(order.lastIndexOf('AbortMultipartUploadCommand')).toBeLessThan(
      order.indexOf('DeleteObjectsCommand'),
    );
    expect(cfnMock.calls()).toHaveLength(0);
    expect(lines.at(-1)).toMatchObject({
      msg: 'bucket emptied',
      bucket: 'berth-bucket',
      deleted: 2501,
      aborted: 3,
    });
  });

  it('empties the bucket named in the event (a replaced bucket is deleted with its old properties)', async () => {
    bucketOf(3);
    await teardown(deps(), customResource('Delete', 'old-bucket'));
    expect(s3Mock.commandCalls(DeleteObjectsCommand)[0]!.args[0].input.Bucket).toBe('old-bucket');
  });

  it('ignores an upload completed or aborted since the listing', async () => {
    s3Mock.on(ListMultipartUploadsCommand).resolves({ Uploads: [{ Key: 'data/u1', UploadId: 'gone' }] });
    s3Mock
      .on(AbortMultipartUploadCommand)
      .rejects(Object.assign(new Error('gone'), { name: 'NoSuchUpload' }));
    bucketOf(1);
    await expect(teardown(deps(), customResource('Delete'))).resolves.toBeDefined();
  });

  it('fails, naming the objects S3 refused, so that the stack deletion stops before the bucket', async () => {
    bucketOf(5);
    s3Mock.on(DeleteObjectsCommand).resolves({
      Errors: [{ Key: 'blobs/sha256/000001', Code: 'AccessDenied', Message: 'Access Denied' }],
    });
    await expect(teardown(deps(), customResource('Delete'))).rejects.toThrow(
      /refused to delete 1 of 6 objects in berth-bucket, first blobs\/sha256\/000001: AccessDenied/,
    );
    expect(lines.at(-1)).toMatchObject({ level: 'error', msg: 'teardown failed' });
  });

  it('stops before its time runs out and fails with what it did, for the next attempt to continue', async () => {
    bucketOf(5000);
    let calls = 0;
    // Enough time for the upload listing and two pages, then under the reserve.
    const remainingMs = () => (++calls <= 3 ? 600_000 : 30_000);
    await expect(teardown(deps({ remainingMs }), customResource('Delete'))).rejects.toThrow(
      /not empty yet \(2001 objects deleted, 0 uploads aborted in this invocation\)/,
    );
    expect(s3Mock.commandCalls(ListObjectVersionsCommand)).toHaveLength(2);
  });

  it('refuses an event without a bucket name', async () => {
    const event = customResource('Delete');
    (event.ResourceProperties as Record<string, unknown>).BucketName = '';
    await expect(teardown(deps(), event)).rejects.toThrow(/needs a BucketName/);
  });
});

describe('self-destruct', () => {
  it('empties the bucket, then deletes its own stack with the deletion role', async () => {
    bucketOf(10);
    const result = await teardown(deps(), { berth: 'self-destruct' });
    expect(result).toEqual({ deleted: 11, aborted: 0, stackDeletion: STACK });
    expect(cfnMock.commandCalls(DeleteStackCommand).map((c) => c.args[0].input)).toEqual([
      { StackName: STACK, RoleARN: ROLE },
    ]);
    expect(lines.at(-1)).toMatchObject({ msg: 'registry expired: stack deletion requested', stackId: STACK });
  });

  it('does not delete the stack while the bucket is not empty', async () => {
    bucketOf(3000);
    let calls = 0;
    const remainingMs = () => (++calls <= 2 ? 600_000 : 1_000);
    await expect(teardown(deps({ remainingMs }), { berth: 'self-destruct' })).rejects.toThrow(
      /not empty yet/,
    );
    expect(cfnMock.calls()).toHaveLength(0);
  });

  it('refuses to run before the expiry (a manual or mistaken invocation)', async () => {
    bucketOf(1);
    const early = () => new Date(EXPIRES.getTime() - 5 * 60_000);
    await expect(teardown(deps({ now: early }), { berth: 'self-destruct' })).rejects.toThrow(
      /expires at 2026-12-05T10:01:00.000Z; refusing to delete it/,
    );
    expect(s3Mock.calls()).toHaveLength(0);
    expect(cfnMock.calls()).toHaveLength(0);
    // Within a minute of the expiry is on time.
    const onTime = () => new Date(EXPIRES.getTime() - 30_000);
    await expect(teardown(deps({ now: onTime }), { berth: 'self-destruct' })).resolves.toBeDefined();
  });

  it('refuses without a TTL configured (the function of a registry that does not expire)', async () => {
    await expect(
      teardown(deps({ settings: { bucket: 'berth-bucket' } }), { berth: 'self-destruct' }),
    ).rejects.toThrow(/needs BERTH_STACK_ID, BERTH_STACK_DELETION_ROLE and BERTH_EXPIRES_AT/);
    expect(s3Mock.calls()).toHaveLength(0);
  });

  it('fails when CloudFormation refuses, after emptying', async () => {
    bucketOf(1);
    cfnMock
      .on(DeleteStackCommand)
      .rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }));
    await expect(teardown(deps(), { berth: 'self-destruct' })).rejects.toThrow(/not authorized/);
    expect(lines.at(-1)).toMatchObject({ level: 'error', msg: 'teardown failed', error: 'AccessDenied' });
  });
});

describe('the teardown function reads its settings from the variables the stack sets', () => {
  it('bucket and expiry through the option table, the stack id and deletion role as given', () => {
    expect(
      teardownSettingsOf({
        BERTH_S3_BUCKET: 'berth-bucket',
        BERTH_STACK_ID: STACK,
        BERTH_STACK_DELETION_ROLE: ROLE,
        BERTH_EXPIRES_AT: EXPIRES.toISOString(),
      }),
    ).toEqual(ttlSettings);
  });

  it('without a TTL: no stack to delete, no expiry', () => {
    expect(teardownSettingsOf({ BERTH_S3_BUCKET: 'berth-bucket' })).toEqual({ bucket: 'berth-bucket' });
  });

  it('logs at debug only when the log level says so', () => {
    expect(maintenanceLogLevel({ BERTH_LOG_LEVEL: 'debug' })).toBe('debug');
    expect(maintenanceLogLevel({ BERTH_LOG_LEVEL: 'warn' })).toBe('info');
    expect(maintenanceLogLevel({})).toBe('info');
  });
});
