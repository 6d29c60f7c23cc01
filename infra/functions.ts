import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { PolicyDocument, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Code, Function, Runtime } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { join } from 'node:path';

export interface BerthFunctionProps {
  /** The bundle: `<bundlesDir>/<bundle>/index.mjs`. */
  readonly bundle: string;
  readonly bundlesDir: string;
  readonly description: string;
  readonly memoryMb: number;
  readonly timeout: Duration;
  readonly environment: Record<string, string>;
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  readonly reservedConcurrency?: number;
  /** A fixed name, for a function whose own policy must name it (CloudFormation generates one otherwise). */
  readonly functionName?: string;
}

/**
 * One of Berth's functions: the esbuild bundle on Node.js 22 (the major its bundle tests run under,
 * test/e2e/node22.sh), arm64, a log group of its own with a retention, and a role that may write
 * to that log group and nothing else until the caller grants more. The role is written out rather
 * than taken from AWSLambdaBasicExecutionRole, which lets a function write to any log group.
 */
export class BerthFunction extends Construct {
  readonly fn: Function;
  readonly role: Role;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: BerthFunctionProps) {
    super(scope, id);
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `Berth ${props.bundle} function`,
      inlinePolicies: {
        logs: new PolicyDocument({
          statements: [
            new PolicyStatement({
              actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
              resources: [this.logGroup.logGroupArn],
            }),
          ],
        }),
      },
    });
    this.fn = new Function(this, 'Function', {
      description: props.description,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      handler: 'index.handler',
      code: Code.fromAsset(join(props.bundlesDir, props.bundle)),
      memorySize: props.memoryMb,
      timeout: props.timeout,
      role: this.role,
      logGroup: this.logGroup,
      environment: props.environment,
      ...(props.functionName !== undefined && { functionName: props.functionName }),
      ...(props.reservedConcurrency !== undefined && {
        reservedConcurrentExecutions: props.reservedConcurrency,
      }),
    });
  }

  grant(...statements: PolicyStatement[]): void {
    for (const s of statements) this.role.addToPolicy(s);
  }
}
