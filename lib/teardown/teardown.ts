import { DeleteStackCommand, type CloudFormationClient } from '@aws-sdk/client-cloudformation';
import type { S3Client } from '@aws-sdk/client-s3';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { describeError, type Logger } from '../logging/logger.ts';
import { emptyBucket } from './empty-bucket.ts';

/** What the self-destruct schedule sends (its target's Input). */
export interface SelfDestructEvent {
  readonly berth: 'self-destruct';
}

export type TeardownEvent = CloudFormationCustomResourceEvent | SelfDestructEvent;

/** What the bucket-emptying custom resource passes. */
export interface EmptyBucketProperties {
  readonly BucketName: string;
}

export interface TeardownSettings {
  /** The registry's bucket (BERTH_S3_BUCKET). */
  readonly bucket: string;
  /** The stack to delete when the registry expires (BERTH_STACK_ID); unset without a TTL. */
  readonly stackId?: string;
  /** The role CloudFormation deletes the stack with (BERTH_STACK_DELETION_ROLE). */
  readonly deletionRoleArn?: string;
  /** When the registry expires (BERTH_EXPIRES_AT); a self-destruct event before it is refused. */
  readonly expiresAt?: Date;
}

export interface TeardownDeps {
  readonly s3: S3Client;
  readonly cloudformation: CloudFormationClient;
  readonly logger: Logger;
  readonly settings: TeardownSettings;
  /** Milliseconds the invocation has left (Lambda's context.getRemainingTimeInMillis). */
  readonly remainingMs: () => number;
  readonly now?: () => Date;
}

export type TeardownResult =
  | { readonly PhysicalResourceId: string }
  | { readonly deleted: number; readonly aborted: number; readonly stackDeletion: string };

/** Time kept in hand when emptying: enough for the calls in flight and the DeleteStack after them. */
const RESERVE_MS = 60_000;

/**
 * The end of a registry, two ways in:
 * - the bucket-emptying custom resource (stack deletion, `cdk destroy`): on Delete, empty the bucket
 *   so that CloudFormation can delete it; Create and Update do nothing;
 * - the self-destruct schedule of an ephemeral registry: empty the bucket, then ask CloudFormation
 *   to delete the stack (with the deletion role, so every resource deletion runs with that role's
 *   permissions and not this function's, which are gone half way through).
 * A bucket too large to empty in one invocation fails the invocation with what was done; the next
 * one (Lambda's retry of the schedule's event, or `cdk destroy` again) continues where it stopped.
 */
export async function teardown(deps: TeardownDeps, event: TeardownEvent): Promise<TeardownResult> {
  try {
    return await run(deps, event);
  } catch (err) {
    // Logged here as one JSON line; rethrown so the invocation fails (alarm, retry, CloudFormation).
    deps.logger.error('teardown failed', describeError(err));
    throw err;
  }
}

async function run(deps: TeardownDeps, event: TeardownEvent): Promise<TeardownResult> {
  if ('RequestType' in event) {
    const { BucketName } = event.ResourceProperties as unknown as EmptyBucketProperties;
    if (typeof BucketName !== 'string' || BucketName === '') {
      throw new Error('the bucket-emptying custom resource needs a BucketName property');
    }
    const PhysicalResourceId = `berth-empty:${BucketName}`;
    if (event.RequestType !== 'Delete') return { PhysicalResourceId };
    // A replaced bucket's custom resource is deleted with its old properties: that old bucket.
    await empty(deps, BucketName, 'stack deletion');
    return { PhysicalResourceId: event.PhysicalResourceId };
  }
  if (event.berth !== 'self-destruct') throw new Error('unknown teardown event');
  return selfDestruct(deps);
}

async function selfDestruct(deps: TeardownDeps): Promise<TeardownResult> {
  const { settings, logger } = deps;
  if (
    !settings.stackId ||
    !settings.deletionRoleArn ||
    !settings.expiresAt ||
    Number.isNaN(settings.expiresAt.getTime())
  ) {
    throw new Error('self-destruct needs BERTH_STACK_ID, BERTH_STACK_DELETION_ROLE and BERTH_EXPIRES_AT');
  }
  const now = (deps.now ?? (() => new Date()))();
  // Scheduler fires on time; a minute of slack covers clock skew. Anything earlier is not the schedule.
  if (now.getTime() < settings.expiresAt.getTime() - 60_000) {
    throw new Error(
      `the registry expires at ${settings.expiresAt.toISOString()}; refusing to delete it at ${now.toISOString()}`,
    );
  }
  const { deleted, aborted } = await empty(deps, settings.bucket, 'expiry');
  await deps.cloudformation.send(
    new DeleteStackCommand({ StackName: settings.stackId, RoleARN: settings.deletionRoleArn }),
  );
  logger.info('registry expired: stack deletion requested', {
    stackId: settings.stackId,
    expiresAt: settings.expiresAt.toISOString(),
  });
  return { deleted, aborted, stackDeletion: settings.stackId };
}

async function empty(deps: TeardownDeps, bucket: string, reason: string) {
  const started = performance.now();
  const result = await emptyBucket(deps.s3, bucket, { keepGoing: () => deps.remainingMs() > RESERVE_MS });
  const fields = {
    bucket,
    reason,
    deleted: result.deleted,
    aborted: result.aborted,
    durationMs: Math.round(performance.now() - started),
  };
  if (!result.complete) {
    deps.logger.warn('bucket not empty yet', fields);
    throw new Error(
      `the bucket ${bucket} is not empty yet (${result.deleted} objects deleted, ${result.aborted} uploads aborted in this invocation); the next attempt continues`,
    );
  }
  deps.logger.info('bucket emptied', fields);
  return result;
}
