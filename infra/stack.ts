import { ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack, Tags, Token } from 'aws-cdk-lib';
import { immutableTagsOf, retentionOf } from '../lib/setup/gc.ts';
import { lambdaConfig } from '../lib/config/lambda.ts';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { RegistryAlarms } from './alarms.ts';
import { RegistryApi } from './api.ts';
import { ADMIN_USER, RegistryAuth, type NamedParameter } from './auth.ts';
import { RegistryBucket } from './bucket.ts';
import { BerthFunction } from './functions.ts';
import type { BerthProps } from './props.ts';
import { JANITOR_ACCESS, REGISTRY_ACCESS, VERIFIER_ACCESS, storageStatements } from './storage-access.ts';
import { Teardown } from './teardown.ts';
import { expiryFor } from './ttl.ts';

/**
 * Parses the functions' environment as they will (placeholders for values only known at deploy
 * time), so that a malformed retention policy, immutable-tag rule or upstream fails `cdk synth`
 * with the functions' own message rather than every cold start.
 */
function checkFunctionSettings(env: Record<string, string>): void {
  const resolved = Object.fromEntries(
    Object.entries(env).map(([k, v]) => [k, Token.isUnresolved(v) ? 'placeholder' : v]),
  );
  try {
    const config = lambdaConfig({ ...resolved, AWS_REGION: 'us-east-1', BERTH_INSECURE_NO_AUTH: 'true' });
    retentionOf(config);
    immutableTagsOf(config);
  } catch (err) {
    throw new Error(`invalid registry settings: ${(err as Error).message}`, { cause: err });
  }
}

/** Team names become stack names, tags and resource names: lower-case letters, digits, dashes. */
const TEAM = /^[a-z][a-z0-9-]{0,39}$/;

export const DEFAULTS = {
  memoryMb: 1024,
  timeoutSeconds: 29,
  logRetentionDays: 30,
  throttle: { rateLimit: 500, burstLimit: 1000 },
  tokenThrottle: { rateLimit: 20, burstLimit: 40 },
  // Once a day: an idle registry pays for 30 short runs a month (docs/deployment.md, "What it costs").
  janitorEveryMinutes: 24 * 60,
} as const;

/**
 * One team's registry: bucket, functions, HTTP API, auth parameters, janitor schedule, logs, alarms and,
 * for an ephemeral registry, its self-destruct. Environment-agnostic (no account or region at
 * synthesis), so `cdk synth` needs no credentials.
 */
export class BerthStack extends Stack {
  readonly host: string;
  readonly expiresAt?: Date;
  readonly storage: RegistryBucket;
  readonly auth: RegistryAuth;
  readonly registry: BerthFunction;
  readonly verifier: BerthFunction;
  readonly janitor: BerthFunction;
  readonly web: BerthFunction;
  readonly http: RegistryApi;
  readonly teardown?: Teardown;
  readonly alarms?: RegistryAlarms;

  constructor(scope: Construct, id: string, props: BerthProps) {
    if (!TEAM.test(props.team)) {
      throw new Error(
        `team "${props.team}" must be lower-case letters, digits and dashes (at most 40), starting with a letter`,
      );
    }
    super(scope, id, props);
    if (props.ttl !== undefined && props.expiresAt !== undefined) {
      throw new Error('give a ttl or an expiry time, not both');
    }
    this.expiresAt =
      props.ttl !== undefined ? expiryFor(props.ttl, props.now ?? new Date()) : props.expiresAt;
    const removal = props.removalPolicy === 'retain' ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    if (this.expiresAt && removal === RemovalPolicy.RETAIN) {
      throw new Error(
        'an ephemeral registry (ttl) deletes everything it holds; it cannot also retain its data',
      );
    }
    const logRetention = (props.logRetentionDays ?? DEFAULTS.logRetentionDays) as RetentionDays;
    const logLevel = props.logLevel ?? 'info';
    const shared = { bundlesDir: props.bundlesDir, logRetention, removalPolicy: removal };

    this.storage = new RegistryBucket(this, 'Storage', {
      encryption: props.encryption ?? 's3',
      versioned: props.versioned ?? false,
      intelligentTiering: props.intelligentTiering ?? false,
      removalPolicy: removal,
    });
    const { bucket, key } = this.storage;

    const auth = (this.auth = new RegistryAuth(this, 'Auth', {
      ...shared,
      anonymousPull: props.anonymousPull ?? [],
      deleteWithStack: removal === RemovalPolicy.DESTROY,
      logLevel,
      ...(key && { key }),
    }));

    const storageEnv: Record<string, string> = {
      BERTH_STORAGE: 's3',
      BERTH_S3_BUCKET: bucket.bucketName,
      BERTH_LOG_LEVEL: logLevel,
      ...(props.retention !== undefined && { BERTH_RETENTION: JSON.stringify(props.retention) }),
      ...(props.immutableTags?.length && { BERTH_IMMUTABLE_TAGS: props.immutableTags.join(',') }),
    };

    const proxyParameter =
      props.proxyParameter === undefined ? undefined : existingParameter(this, props.proxyParameter);
    const proxyEnv: Record<string, string> = {
      ...(props.proxyUpstreams?.length && { BERTH_PROXY_UPSTREAM: props.proxyUpstreams.join(',') }),
      ...(props.proxyTagTtlSeconds !== undefined && {
        BERTH_PROXY_TAG_TTL: String(props.proxyTagTtlSeconds),
      }),
      ...(proxyParameter && { BERTH_PROXY_PARAMETER: proxyParameter.name }),
    };
    if (proxyParameter && !props.proxyUpstreams?.length) {
      throw new Error('proxyParameter holds credentials for proxyUpstreams; give the upstreams too');
    }
    const corsEnv: Record<string, string> = {
      ...(props.corsOrigins?.length && { BERTH_CORS_ORIGINS: props.corsOrigins.join(',') }),
    };
    // A setting the functions would refuse at start fails here, at synthesis, instead.
    checkFunctionSettings({ ...storageEnv, ...proxyEnv, ...corsEnv });

    // Direct uploads of large blobs are verified (read back and hashed) here, with a long timeout.
    const verifier = (this.verifier = new BerthFunction(this, 'Verifier', {
      ...shared,
      bundle: 'verifier',
      description: 'Berth: verifies direct-to-S3 uploads',
      memoryMb: 1769,
      timeout: Duration.minutes(15),
      environment: storageEnv,
    }));
    verifier.grant(...storageStatements(bucket, VERIFIER_ACCESS));
    verifier.fn.configureAsyncInvoke({ retryAttempts: 2 });

    const registry = (this.registry = new BerthFunction(this, 'Registry', {
      ...shared,
      bundle: 'registry',
      description: 'Berth: the OCI registry API and its token endpoint',
      memoryMb: props.memoryMb ?? DEFAULTS.memoryMb,
      timeout: Duration.seconds(props.timeoutSeconds ?? DEFAULTS.timeoutSeconds),
      reservedConcurrency: props.reservedConcurrency,
      environment: {
        ...storageEnv,
        BERTH_AUTH_PARAMETER: auth.authParameter.name,
        // What the web UI shows: the registry's name and, for an ephemeral one, when it goes.
        BERTH_REGISTRY_NAME: props.team,
        ...(this.expiresAt && { BERTH_EXPIRES_AT: this.expiresAt.toISOString() }),
        BERTH_VERIFIER_FUNCTION: verifier.fn.functionArn,
        ...proxyEnv,
        ...corsEnv,
      },
    }));
    registry.grant(
      ...storageStatements(bucket, REGISTRY_ACCESS),
      // The parameters are SecureStrings: with the aws/ssm key no KMS grant is needed (its key policy
      // lets the account's principals decrypt through SSM); with the stack's key, see below.
      new PolicyStatement({
        actions: ['ssm:GetParameter'],
        resources: [auth.authParameter.arn, ...(proxyParameter ? [proxyParameter.arn] : [])],
      }),
      new PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [verifier.fn.functionArn] }),
    );
    // The first request must find the accounts in place.
    registry.fn.node.addDependency(auth.resource);

    // Named, so that its policy can let it invoke itself (a collection longer than one run carries
    // itself on) without a reference to the function, which would be a circular dependency.
    const janitorName = `${this.stackName}-janitor`;
    const janitor = (this.janitor = new BerthFunction(this, 'Janitor', {
      ...shared,
      bundle: 'janitor',
      description: 'Berth: purges stale upload sessions and collects garbage',
      memoryMb: 1024,
      timeout: Duration.minutes(15),
      environment: storageEnv,
      functionName: janitorName,
    }));
    janitor.grant(
      ...storageStatements(bucket, JANITOR_ACCESS),
      new PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [
          this.formatArn({
            service: 'lambda',
            resource: 'function',
            resourceName: janitorName,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
    const janitorRule = new Rule(this, 'JanitorSchedule', {
      description: 'Berth: runs the janitor',
      schedule: Schedule.rate(Duration.minutes(props.janitorEveryMinutes ?? DEFAULTS.janitorEveryMinutes)),
      targets: [new LambdaFunction(janitor.fn, { retryAttempts: 0 })],
    });

    if (key) {
      // Presigned GETs and PUTs are signed by the registry's role, so S3 decrypts and encrypts with
      // its permissions on the key.
      for (const fn of [registry, verifier, janitor]) {
        fn.grant(
          new PolicyStatement({ actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [key.keyArn] }),
        );
      }
    }

    // The web UI's files: a small function with no storage access and nothing to configure.
    const web = (this.web = new BerthFunction(this, 'Web', {
      ...shared,
      bundle: 'ui',
      description: 'Berth: the web UI (static files)',
      memoryMb: 256,
      timeout: Duration.seconds(5),
      environment: {},
    }));

    const api = (this.http = new RegistryApi(this, 'Http', {
      handler: registry.fn,
      web: web.fn,
      throttle: props.throttle ?? DEFAULTS.throttle,
      tokenThrottle: props.tokenThrottle ?? DEFAULTS.tokenThrottle,
      logRetention,
      removalPolicy: removal,
      domain: props.domain,
    }));
    this.host = api.host;

    let teardown: Teardown | undefined;
    if (removal === RemovalPolicy.DESTROY) {
      teardown = this.teardown = new Teardown(this, 'Teardown', {
        ...shared,
        bucket,
        logLevel,
        expiresAt: this.expiresAt,
      });
      // Deleted before the bucket is emptied: nothing writes to it afterwards.
      for (const writer of [registry.fn, verifier.fn, janitor.fn, janitorRule, api.stage]) {
        writer.node.addDependency(teardown.emptier);
      }
    }

    // Alarms only where someone is paged: each alarm metric costs $0.10 a month.
    if (props.alarmEmail !== undefined || props.alarmTopicArn !== undefined) {
      this.alarms = new RegistryAlarms(this, 'Alarms', {
        api: api.api,
        background: [janitor.fn, verifier.fn, ...(teardown?.schedule ? [teardown.function.fn] : [])],
        ...(props.alarmEmail !== undefined && { alarmEmail: props.alarmEmail }),
        ...(props.alarmTopicArn !== undefined && { alarmTopicArn: props.alarmTopicArn }),
      });
    }

    Tags.of(this).add('team', props.team);
    Tags.of(this).add('registry', this.stackName);
    Tags.of(this).add('expires-at', this.expiresAt ? this.expiresAt.toISOString() : 'never');

    new CfnOutput(this, 'RegistryHost', { description: 'The registry', value: this.host });
    new CfnOutput(this, 'WebUrl', { description: 'The web UI', value: `https://${this.host}/` });
    new CfnOutput(this, 'BucketName', { description: 'Where images are stored', value: bucket.bucketName });
    new CfnOutput(this, 'AdminParameter', {
      description: 'The administrator credentials (SSM SecureString parameter)',
      value: auth.adminParameter.name,
    });
    new CfnOutput(this, 'AuthParameter', {
      description: 'The accounts (SSM SecureString parameter): berth users|robots|anonymous --auth-parameter',
      value: auth.authParameter.name,
    });
    new CfnOutput(this, 'LoginCommand', {
      description: 'Log in as the administrator (password on stdin, see AdminPasswordCommand)',
      value: `docker login ${this.host} -u ${ADMIN_USER} --password-stdin`,
    });
    new CfnOutput(this, 'AdminPasswordCommand', {
      description: 'Prints the administrator password',
      value: `aws ssm get-parameter --name ${auth.adminParameter.name} --with-decryption --query Parameter.Value --output text | jq -r .password`,
    });
    if (this.expiresAt) {
      new CfnOutput(this, 'ExpiresAt', {
        description: 'When this registry deletes itself',
        value: this.expiresAt.toISOString(),
      });
    }
  }
}

/** An existing SSM parameter, by name (`/team/hub-credentials`, `hub-credentials`) or ARN. */
function existingParameter(stack: Stack, nameOrArn: string): NamedParameter {
  if (nameOrArn.startsWith('arn:')) return { name: nameOrArn, arn: nameOrArn };
  return {
    name: nameOrArn,
    arn: stack.formatArn({
      service: 'ssm',
      resource: 'parameter',
      resourceName: nameOrArn.replace(/^\//, ''),
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    }),
  };
}
