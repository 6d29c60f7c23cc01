import { ArnFormat, CustomResource, Duration, Stack, type RemovalPolicy } from 'aws-cdk-lib';
import { PolicyDocument, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Provider } from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { ADMIN_USER } from '../lib/auth/bootstrap.ts';
import { BerthFunction } from './functions.ts';

export { ADMIN_USER };

export interface RegistryAuthProps {
  readonly bundlesDir: string;
  readonly anonymousPull: readonly string[];
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  /** Delete the parameters with the stack (the stack's removal policy is `destroy`). */
  readonly deleteWithStack: boolean;
  readonly logLevel: string;
  /** The stack's customer KMS key (the `encryption=kms` option): the parameters are encrypted with it too. */
  readonly key?: IKey;
}

/** An SSM parameter the stack names (its auth-bootstrap creates it; CloudFormation cannot create SecureStrings). */
export interface NamedParameter {
  /** `/berth/<stack name>/auth`: what BERTH_AUTH_PARAMETER and `--auth-parameter` take. */
  readonly name: string;
  readonly arn: string;
}

/** KMS actions SSM makes on a caller's behalf to encrypt (standard: Encrypt; advanced: GenerateDataKey) and decrypt. */
const SSM_KMS_ENCRYPT = ['kms:Encrypt', 'kms:GenerateDataKey', 'kms:Decrypt'];

/**
 * Accounts and the token signing key, on SSM Parameter Store SecureStrings (standard tier: free at
 * rest, free API calls at standard throughput; encrypted with the account's `aws/ssm` key, or with
 * the stack's customer key under `encryption=kms`):
 * - `/berth/<stack>/admin`, `{"username":"admin","password":<32 random letters and digits>}`, made
 *   by the auth-bootstrap custom resource at the first deployment, so the password is in no template,
 *   parameter or output;
 * - `/berth/<stack>/auth`, the auth document the registry reads (BERTH_AUTH_PARAMETER), filled by
 *   the bootstrap with a fresh ES256 signing key and the administrator's scrypt hash; later
 *   deployments keep the key and every account and refresh the anonymous pull patterns.
 * Deleting the stack deletes both (unless its data is retained).
 */
export class RegistryAuth extends Construct {
  readonly authParameter: NamedParameter;
  readonly adminParameter: NamedParameter;
  readonly bootstrap: BerthFunction;
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: RegistryAuthProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const parameter = (leaf: string): NamedParameter => {
      const path = `berth/${stack.stackName}/${leaf}`;
      return {
        name: `/${path}`,
        arn: stack.formatArn({
          service: 'ssm',
          resource: 'parameter',
          resourceName: path,
          arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
        }),
      };
    };
    this.authParameter = parameter('auth');
    this.adminParameter = parameter('admin');

    this.bootstrap = new BerthFunction(this, 'Bootstrap', {
      bundle: 'auth-bootstrap',
      bundlesDir: props.bundlesDir,
      description: 'Berth: creates and fills the auth parameters at deploy time',
      memoryMb: 512,
      timeout: Duration.minutes(2),
      environment: { BERTH_LOG_LEVEL: props.logLevel },
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.bootstrap.grant(
      new PolicyStatement({
        actions: ['ssm:GetParameter', 'ssm:PutParameter', 'ssm:DeleteParameters'],
        resources: [this.authParameter.arn, this.adminParameter.arn],
      }),
      ...(props.key ? [viaSsm(props.key, SSM_KMS_ENCRYPT)] : []),
    );

    const provider = customResourceProvider(this, 'Provider', this.bootstrap, props);
    this.resource = new CustomResource(this, 'Bootstrap' + 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::BerthAuthBootstrap',
      properties: {
        AuthParameter: this.authParameter.name,
        AdminParameter: this.adminParameter.name,
        ...(props.key && { KmsKeyId: props.key.keyArn }),
        AnonymousPull: [...props.anonymousPull],
        DeleteWithStack: String(props.deleteWithStack),
      },
    });
  }
}

/** `actions` on `key`, only through SSM in the stack's region (kms:ViaService). */
export function viaSsm(key: IKey, actions: string[]): PolicyStatement {
  const stack = Stack.of(key);
  return new PolicyStatement({
    actions,
    resources: [key.keyArn],
    conditions: { StringEquals: { 'kms:ViaService': `ssm.${stack.region}.amazonaws.com` } },
  });
}

/**
 * A custom resource provider whose framework function has a role and log group of its own (written
 * out rather than AWSLambdaBasicExecutionRole), allowed to invoke the one handler.
 */
export function customResourceProvider(
  scope: Construct,
  id: string,
  handler: BerthFunction,
  props: { logRetention: RetentionDays; removalPolicy: RemovalPolicy },
): Provider {
  const logGroup = new LogGroup(scope, `${id}Logs`, {
    retention: props.logRetention,
    removalPolicy: props.removalPolicy,
  });
  const role = new Role(scope, `${id}Role`, {
    assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
    description: 'Berth custom resource provider framework',
    inlinePolicies: {
      logs: new PolicyDocument({
        statements: [
          new PolicyStatement({
            actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
            resources: [logGroup.logGroupArn],
          }),
        ],
      }),
    },
  });
  return new Provider(scope, id, {
    onEventHandler: handler.fn,
    frameworkOnEventRole: role,
    logGroup,
  });
}
