import {
  Aws,
  CustomResource,
  DefaultStackSynthesizer,
  Duration,
  Fn,
  Stack,
  type RemovalPolicy,
} from 'aws-cdk-lib';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { CfnSchedule } from 'aws-cdk-lib/aws-scheduler';
import { Construct } from 'constructs';
import { customResourceProvider } from './auth.ts';
import { BerthFunction } from './functions.ts';
import { atExpression } from './ttl.ts';

export interface TeardownProps {
  readonly bucket: IBucket;
  readonly bundlesDir: string;
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  readonly logLevel: string;
  /** Set for an ephemeral registry: when it deletes itself. */
  readonly expiresAt?: Date;
}

/** Emptying a large bucket takes time: 1,000 keys per call, a few calls in flight. */
const TEARDOWN_TIMEOUT = Duration.minutes(15);

/**
 * The end of the registry.
 *
 * Always: a custom resource that empties the bucket when the stack is deleted (`cdk destroy`, or
 * the self-destruct below), so the bucket is deleted with the stack instead of left behind, and
 * incomplete multipart uploads (billed, and not removed by S3's `autoDeleteObjects` helper) are
 * aborted. The resources that write to the bucket are made to depend on it, so CloudFormation
 * deletes them first and nothing writes after the bucket was emptied.
 *
 * With an expiry: an EventBridge Scheduler one-time schedule (a stack resource, deleted with the
 * stack; CloudFormation has no ActionAfterCompletion) invokes the teardown function, which
 * empties the bucket and calls DeleteStack on its own stack. CloudFormation performs a deletion with
 * the credentials of whoever asked unless it is given a service role, and this function's role is
 * itself deleted half way through, so the function passes the CDK bootstrap's CloudFormation
 * execution role (the role `cdk deploy` created the stack with, which exists before and after the
 * stack). The function itself may only: DeleteStack on this stack, and pass that one role to
 * CloudFormation.
 */
export class Teardown extends Construct {
  readonly function: BerthFunction;
  readonly emptier: CustomResource;
  readonly schedule?: CfnSchedule;
  readonly schedulerRole?: Role;
  readonly deletionRoleArn?: string;

  constructor(scope: Construct, id: string, props: TeardownProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const environment: Record<string, string> = {
      BERTH_S3_BUCKET: props.bucket.bucketName,
      BERTH_LOG_LEVEL: props.logLevel,
    };
    if (props.expiresAt) {
      this.deletionRoleArn = deletionRole(stack);
      Object.assign(environment, {
        BERTH_STACK_ID: Aws.STACK_ID,
        BERTH_STACK_DELETION_ROLE: this.deletionRoleArn,
        BERTH_EXPIRES_AT: props.expiresAt.toISOString(),
      });
    }
    this.function = new BerthFunction(this, 'Function', {
      bundle: 'teardown',
      bundlesDir: props.bundlesDir,
      description: props.expiresAt
        ? `Berth: empties the bucket on stack deletion; deletes the registry at ${props.expiresAt.toISOString()}`
        : 'Berth: empties the bucket on stack deletion',
      memoryMb: 512,
      timeout: TEARDOWN_TIMEOUT,
      environment,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.function.grant(
      new PolicyStatement({
        actions: ['s3:ListBucket', 's3:ListBucketVersions', 's3:ListBucketMultipartUploads'],
        resources: [props.bucket.bucketArn],
      }),
      new PolicyStatement({
        actions: ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:AbortMultipartUpload'],
        resources: [props.bucket.arnForObjects('*')],
      }),
    );

    const provider = customResourceProvider(this, 'Provider', this.function, props);
    this.emptier = new CustomResource(this, 'EmptyBucket', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::BerthEmptyBucket',
      properties: { BucketName: props.bucket.bucketName },
    });

    if (props.expiresAt && this.deletionRoleArn) {
      this.function.grant(
        new PolicyStatement({ actions: ['cloudformation:DeleteStack'], resources: [Aws.STACK_ID] }),
        new PolicyStatement({
          actions: ['iam:PassRole'],
          resources: [this.deletionRoleArn],
          conditions: { StringEquals: { 'iam:PassedToService': 'cloudformation.amazonaws.com' } },
        }),
      );
      // Lambda's asynchronous invocation: two retries (1 and 2 minutes later) if the bucket is too
      // large for one run; each continues where the last stopped.
      this.function.fn.configureAsyncInvoke({ retryAttempts: 2, maxEventAge: Duration.hours(1) });

      this.schedulerRole = new Role(this, 'SchedulerRole', {
        assumedBy: new ServicePrincipal('scheduler.amazonaws.com', {
          conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
        }),
        description: 'Berth: lets the self-destruct schedule invoke the teardown function',
      });
      this.schedulerRole.addToPolicy(
        new PolicyStatement({
          actions: ['lambda:InvokeFunction'],
          resources: [this.function.fn.functionArn],
        }),
      );
      this.schedule = new CfnSchedule(this, 'SelfDestruct', {
        description: `Berth: deletes ${stack.stackName} when its TTL is up`,
        scheduleExpression: atExpression(props.expiresAt),
        scheduleExpressionTimezone: 'UTC',
        flexibleTimeWindow: { mode: 'OFF' },
        target: {
          arn: this.function.fn.functionArn,
          roleArn: this.schedulerRole.roleArn,
          input: JSON.stringify({ berth: 'self-destruct' }),
          retryPolicy: { maximumRetryAttempts: 20, maximumEventAgeInSeconds: 24 * 3600 },
        },
      });
    }
  }
}

/**
 * The role CloudFormation deletes the stack with: the bootstrap's execution role that deployed it
 * (`cdk bootstrap` creates it; `cdk deploy` associates it with the stack).
 */
function deletionRole(stack: Stack): string {
  const synthesizer = stack.synthesizer;
  if (!(synthesizer instanceof DefaultStackSynthesizer)) {
    throw new Error(
      'an ephemeral registry (ttl) deletes its stack with the CDK bootstrap execution role, which needs the default stack synthesizer (a bootstrapped environment)',
    );
  }
  // The synthesizer's ARN holds ${AWS::AccountId} and friends, for Fn::Sub.
  return Fn.sub(synthesizer.cloudFormationExecutionRoleArn);
}
