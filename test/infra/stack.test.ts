import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { logicalId, resources, synth } from './synth.ts';

type Statement = { Action: string | string[]; Resource: unknown; Condition?: unknown; Effect: string };

/** The statements of a role's DefaultPolicy (what BerthFunction.grant adds), by role id prefix. */
function grants(template: Template, rolePrefix: string): Statement[] {
  const id = logicalId(template, 'AWS::IAM::Policy', `${rolePrefix}RoleDefaultPolicy`);
  const doc = resources(template, 'AWS::IAM::Policy')[id]!.Properties.PolicyDocument as {
    Statement: Statement[];
  };
  return doc.Statement;
}

function bucketRefs(template: Template) {
  const bucket = logicalId(template, 'AWS::S3::Bucket', 'StorageBucket');
  return {
    bucket,
    arn: { 'Fn::GetAtt': [bucket, 'Arn'] },
    objects: (prefix: string) => ({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, `/${prefix}*`]] }),
  };
}

/** The ARN the stack builds for an SSM parameter (`/berth/berth-payments/auth` -> its ARN in this account and region). */
function ssmArn(name: string) {
  return {
    'Fn::Join': [
      '',
      [
        'arn:',
        { Ref: 'AWS::Partition' },
        ':ssm:',
        { Ref: 'AWS::Region' },
        ':',
        { Ref: 'AWS::AccountId' },
        `:parameter/${name.replace(/^\//, '')}`,
      ],
    ],
  };
}

const AUTH_PARAMETER = '/berth/berth-payments/auth';
const PAGER = 'arn:aws:sns:eu-west-1:123456789012:team-pager';
const ADMIN_PARAMETER = '/berth/berth-payments/admin';

/** A function by its construct path: `Registry` for Registry/Function, `TeardownFunction` for Teardown/Function/Function. */
function functionByBundle(template: Template, prefix: string) {
  const id = logicalId(
    template,
    'AWS::Lambda::Function',
    prefix.endsWith('Function') ? prefix : `${prefix}Function`,
  );
  return { id, props: resources(template, 'AWS::Lambda::Function')[id]!.Properties };
}

describe('the default stack (no TTL)', () => {
  let template: Template;
  beforeAll(() => {
    ({ template } = synth());
  });

  it('keeps the bucket private, encrypted, TLS-only and unversioned, with the lifecycle rules', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      VersioningConfiguration: Match.absent(),
      LifecycleConfiguration: {
        Rules: [
          {
            Id: 'abort-incomplete-uploads',
            Status: 'Enabled',
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          },
          { Id: 'expire-upload-sessions', Status: 'Enabled', Prefix: 'uploads/', ExpirationInDays: 3 },
        ],
      },
    });
    const { bucket } = bucketRefs(template);
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: bucket },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
  });

  it('serves the API on the $default stage with a catch-all route and the token routes, logged and throttled', () => {
    const routes = Object.values(resources(template, 'AWS::ApiGatewayV2::Route')).map(
      (r) => r.Properties.RouteKey,
    );
    expect(routes.sort()).toEqual(['$default', 'GET /', 'GET /token', 'GET /ui/{proxy+}', 'POST /token']);
    const integrations = resources(template, 'AWS::ApiGatewayV2::Integration');
    expect(Object.keys(integrations)).toHaveLength(2);
    const registry = functionByBundle(template, 'Registry');
    const web = functionByBundle(template, 'Web');
    // The web UI's two routes go to its own function; everything else to the registry.
    const targets = Object.values(integrations).map((i) => i.Properties);
    for (const fn of [registry, web]) {
      expect(targets).toContainEqual(
        expect.objectContaining({
          IntegrationType: 'AWS_PROXY',
          PayloadFormatVersion: '2.0',
          IntegrationUri: { 'Fn::GetAtt': [fn.id, 'Arn'] },
        }),
      );
    }
    const accessLogs = logicalId(template, 'AWS::Logs::LogGroup', 'HttpAccessLogs');
    template.resourceCountIs('AWS::ApiGatewayV2::Stage', 1);
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000 },
      RouteSettings: {
        'GET /token': { ThrottlingRateLimit: 20, ThrottlingBurstLimit: 40 },
        'POST /token': { ThrottlingRateLimit: 20, ThrottlingBurstLimit: 40 },
      },
      AccessLogSettings: {
        DestinationArn: { 'Fn::GetAtt': [accessLogs, 'Arn'] },
        Format: Match.stringLikeRegexp('"requestId":"\\$context.requestId"'),
      },
    });
    const format = (
      Object.values(resources(template, 'AWS::ApiGatewayV2::Stage'))[0]!.Properties.AccessLogSettings as {
        Format: string;
      }
    ).Format;
    // No headers: the Authorization header carries credentials.
    expect(format).not.toMatch(/header|authorization/i);
  });

  it('runs every function on arm64 and nodejs22.x, from its bundle, with a log group with retention', () => {
    const functions = Object.values(resources(template, 'AWS::Lambda::Function'));
    // registry, janitor, verifier, web, auth-bootstrap, teardown, and the two custom resource frameworks
    expect(functions).toHaveLength(8);
    const ours = functions.filter((f) => f.Properties.Handler === 'index.handler');
    expect(ours).toHaveLength(6);
    for (const f of ours) {
      expect(f.Properties).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'] });
      expect(f.Properties.LoggingConfig).toMatchObject({ LogGroup: { Ref: expect.any(String) } });
    }
    for (const group of Object.values(resources(template, 'AWS::Logs::LogGroup'))) {
      expect(group.Properties.RetentionInDays).toBe(30);
    }
    template.allResources('AWS::Logs::LogGroup', { DeletionPolicy: 'Delete' });
  });

  it('configures the registry function: memory, timeout, the S3 store, the auth parameter, the verifier', () => {
    const registry = functionByBundle(template, 'Registry');
    const { bucket } = bucketRefs(template);
    const verifier = functionByBundle(template, 'Verifier');
    expect(registry.props).toMatchObject({ MemorySize: 1024, Timeout: 29 });
    expect(registry.props.ReservedConcurrentExecutions).toBeUndefined();
    expect((registry.props.Environment as { Variables: unknown }).Variables).toEqual({
      BERTH_STORAGE: 's3',
      BERTH_S3_BUCKET: { Ref: bucket },
      BERTH_LOG_LEVEL: 'info',
      BERTH_AUTH_PARAMETER: AUTH_PARAMETER,
      BERTH_VERIFIER_FUNCTION: { 'Fn::GetAtt': [verifier.id, 'Arn'] },
      BERTH_REGISTRY_NAME: 'payments',
    });
  });

  it('serves the web UI from a small function with no storage, secret or other grant', () => {
    const web = functionByBundle(template, 'Web');
    expect(web.props).toMatchObject({ MemorySize: 256, Timeout: 5 });
    expect(web.props.Environment).toBeUndefined();
    expect(
      Object.keys(resources(template, 'AWS::IAM::Policy')).filter((id) => id.startsWith('WebRole')),
    ).toEqual([]);
  });

  it('grants the registry exactly the S3 actions and prefixes it uses, its auth parameter and the verifier', () => {
    const { arn, objects } = bucketRefs(template);
    const verifier = functionByBundle(template, 'Verifier');
    const layout = ['blobs/', 'data/', 'repos/', 'catalog/', 'uploads/'].map(objects);
    const usageReport = { 'Fn::Join': ['', [arn, '/gc/usage.json']] };
    const lastGcRun = { 'Fn::Join': ['', [arn, '/gc/last-run.json']] };
    // The key that signs the state in upload URLs: read, and written once by the first container.
    const uploadStateKey = { 'Fn::Join': ['', [arn, '/gc/upload-state.key']] };
    // The web UI API's tag summary cache (lib/browse/tags.ts): read and written, never deleted.
    const summaries = objects('summaries/');
    const writes = [
      { Effect: 'Allow', Action: 's3:DeleteObject', Resource: ['data/', 'repos/', 'uploads/'].map(objects) },
      {
        Effect: 'Allow',
        Action: ['s3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        Resource: objects('data/'),
      },
      // Unconditional: S3 answers a HEAD of a missing key with 404 only to a caller that may list.
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: arn },
    ];
    expect(grants(template, 'Registry')).toEqual([
      {
        Effect: 'Allow',
        Action: 's3:GetObject',
        Resource: [...layout, summaries, usageReport, lastGcRun, uploadStateKey],
      },
      { Effect: 'Allow', Action: 's3:PutObject', Resource: [...layout, summaries, uploadStateKey] },
      ...writes,
      // No KMS grant: the aws/ssm key's policy lets the account's principals decrypt through SSM.
      { Effect: 'Allow', Action: 'ssm:GetParameter', Resource: ssmArn(AUTH_PARAMETER) },
      { Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: { 'Fn::GetAtt': [verifier.id, 'Arn'] } },
    ]);
    // The verifier does what direct uploads need, without the reports and the summary cache.
    expect(grants(template, 'Verifier')).toEqual([
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: layout },
      ...writes,
    ]);
  });

  it('grants the janitor the layout and gc/, multipart clean-up, invoking itself, and a 15-minute timeout, once a day', () => {
    const { arn, objects } = bucketRefs(template);
    expect(grants(template, 'Janitor')).toEqual([
      {
        Effect: 'Allow',
        Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
        Resource: ['blobs/', 'data/', 'repos/', 'catalog/', 'uploads/', 'gc/'].map(objects),
      },
      {
        Effect: 'Allow',
        Action: ['s3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        Resource: objects('data/'),
      },
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: arn },
      { Effect: 'Allow', Action: 's3:ListBucketMultipartUploads', Resource: arn },
      // Itself only, by the name it is given: an unfinished collection carries itself on.
      {
        Effect: 'Allow',
        Action: 'lambda:InvokeFunction',
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':lambda:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':function:berth-payments-janitor',
            ],
          ],
        },
      },
    ]);
    const janitor = functionByBundle(template, 'Janitor');
    expect(janitor.props).toMatchObject({ Timeout: 900, FunctionName: 'berth-payments-janitor' });
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 day)',
      State: 'ENABLED',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [janitor.id, 'Arn'] } })],
    });
  });

  it('lets each function role write its own logs and nothing else, without AWS managed policies', () => {
    for (const [id, role] of Object.entries(resources(template, 'AWS::IAM::Role'))) {
      expect(role.Properties.ManagedPolicyArns, id).toBeUndefined();
    }
    const registryLogs = logicalId(template, 'AWS::Logs::LogGroup', 'RegistryLogs');
    template.hasResourceProperties('AWS::IAM::Role', {
      Policies: [
        {
          PolicyName: 'logs',
          PolicyDocument: {
            Statement: [
              {
                Effect: 'Allow',
                Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
                Resource: { 'Fn::GetAtt': [registryLogs, 'Arn'] },
              },
            ],
          },
        },
      ],
    });
  });

  it('has no wildcard action and no "*" resource in any policy', () => {
    const statements: Statement[] = [];
    for (const p of Object.values(resources(template, 'AWS::IAM::Policy'))) {
      statements.push(...(p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
    }
    for (const r of Object.values(resources(template, 'AWS::IAM::Role'))) {
      for (const p of (r.Properties.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[]) {
        statements.push(...p.PolicyDocument.Statement);
      }
    }
    expect(statements.length).toBeGreaterThan(10);
    for (const s of statements) {
      for (const action of [s.Action].flat()) expect(action).not.toMatch(/\*/);
      for (const resource of [s.Resource].flat()) expect(resource).not.toBe('*');
    }
  });

  it('has the bootstrap create the admin and auth parameters, and delete them with the stack', () => {
    // CloudFormation cannot create SecureStrings: no parameter and no secret in the template.
    template.resourceCountIs('AWS::SSM::Parameter', 0);
    template.resourceCountIs('AWS::SecretsManager::Secret', 0);
    template.hasResourceProperties('Custom::BerthAuthBootstrap', {
      AuthParameter: AUTH_PARAMETER,
      AdminParameter: ADMIN_PARAMETER,
      KmsKeyId: Match.absent(),
      AnonymousPull: [],
      DeleteWithStack: 'true',
    });
    expect(grants(template, 'AuthBootstrap')).toEqual([
      {
        Effect: 'Allow',
        Action: ['ssm:GetParameter', 'ssm:PutParameter', 'ssm:DeleteParameters'],
        Resource: [ssmArn(AUTH_PARAMETER), ssmArn(ADMIN_PARAMETER)],
      },
    ]);
    // The registry starts only once the accounts are in place.
    const registry = functionByBundle(template, 'Registry');
    const bootstrap = logicalId(template, 'Custom::BerthAuthBootstrap', 'AuthBootstrapResource');
    expect(template.toJSON().Resources[registry.id].DependsOn).toContain(bootstrap);
  });

  it('outputs the host, the login command and how to get the password, and no secret', () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    const api = logicalId(template, 'AWS::ApiGatewayV2::Api', 'HttpApi');
    const host = [
      '',
      [{ Ref: api }, '.execute-api.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }],
    ];
    expect(outputs.RegistryHost!.Value).toEqual({ 'Fn::Join': host });
    expect(outputs.LoginCommand!.Value).toEqual({
      'Fn::Join': [
        '',
        [
          'docker login ',
          { Ref: api },
          '.execute-api.',
          { Ref: 'AWS::Region' },
          '.',
          { Ref: 'AWS::URLSuffix' },
          ' -u admin --password-stdin',
        ],
      ],
    });
    expect(outputs.AdminPasswordCommand!.Value).toBe(
      `aws ssm get-parameter --name ${ADMIN_PARAMETER} --with-decryption --query Parameter.Value --output text | jq -r .password`,
    );
    expect(outputs.AdminParameter!.Value).toBe(ADMIN_PARAMETER);
    expect(outputs.AuthParameter!.Value).toBe(AUTH_PARAMETER);
    expect(outputs.ExpiresAt).toBeUndefined();
    // No dynamic reference to a secret's value anywhere in the template.
    expect(JSON.stringify(template.toJSON())).not.toMatch(/resolve:(secretsmanager|ssm-secure)/);
  });

  it('empties the bucket on stack deletion, after everything that writes to it is gone', () => {
    const { bucket } = bucketRefs(template);
    template.hasResourceProperties('Custom::BerthEmptyBucket', { BucketName: { Ref: bucket } });
    const emptier = logicalId(template, 'Custom::BerthEmptyBucket', 'TeardownEmptyBucket');
    const all = template.toJSON().Resources as Record<string, { DependsOn?: string[] }>;
    for (const writer of ['Registry', 'Janitor', 'Verifier']) {
      expect(all[functionByBundle(template, writer).id]!.DependsOn, writer).toContain(emptier);
    }
    expect(all[logicalId(template, 'AWS::ApiGatewayV2::Stage', 'HttpStage')]!.DependsOn).toContain(emptier);
    expect(all[logicalId(template, 'AWS::Events::Rule', 'JanitorSchedule')]!.DependsOn).toContain(emptier);
    const { arn, objects } = bucketRefs(template);
    expect(grants(template, 'TeardownFunction')).toEqual([
      {
        Effect: 'Allow',
        Action: ['s3:ListBucket', 's3:ListBucketVersions', 's3:ListBucketMultipartUploads'],
        Resource: arn,
      },
      {
        Effect: 'Allow',
        Action: ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:AbortMultipartUpload'],
        Resource: objects(''),
      },
    ]);
    template.resourceCountIs('AWS::Scheduler::Schedule', 0);
    const teardown = functionByBundle(template, 'TeardownFunction');
    expect((teardown.props.Environment as { Variables: unknown }).Variables).toEqual({
      BERTH_S3_BUCKET: { Ref: bucket },
      BERTH_LOG_LEVEL: 'info',
    });
  });

  it('has no alarms (and no topic) without an e-mail or a topic to page', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 0);
    template.resourceCountIs('AWS::SNS::Topic', 0);
  });

  it('tags every taggable resource with team, registry and expires-at', () => {
    const tagged = { team: 'payments', registry: 'berth-payments', 'expires-at': 'never' };
    for (const type of [
      'AWS::S3::Bucket',
      'AWS::Lambda::Function',
      'AWS::IAM::Role',
      'AWS::Logs::LogGroup',
    ]) {
      for (const [id, r] of Object.entries(resources(template, type))) {
        const tags = Object.fromEntries(
          (r.Properties.Tags as { Key: string; Value: string }[]).map((t) => [t.Key, t.Value]),
        );
        expect(tags, id).toMatchObject(tagged);
      }
    }
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { Tags: tagged });
  });
});

describe('an ephemeral registry (ttl)', () => {
  let template: Template;
  beforeAll(() => {
    ({ template } = synth({ ttl: '7d' }));
  });

  it('schedules the teardown function once, at deploy time + ttl (rounded up to the minute), in UTC', () => {
    const teardown = functionByBundle(template, 'TeardownFunction');
    const role = logicalId(template, 'AWS::IAM::Role', 'TeardownSchedulerRole');
    template.resourceCountIs('AWS::Scheduler::Schedule', 1);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'at(2026-12-05T10:01:00)',
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: {
        Arn: { 'Fn::GetAtt': [teardown.id, 'Arn'] },
        RoleArn: { 'Fn::GetAtt': [role, 'Arn'] },
        Input: '{"berth":"self-destruct"}',
        RetryPolicy: { MaximumRetryAttempts: 20, MaximumEventAgeInSeconds: 86400 },
      },
    });
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [
          {
            Effect: 'Allow',
            Action: 'sts:AssumeRole',
            Principal: { Service: 'scheduler.amazonaws.com' },
            Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
          },
        ],
      },
    });
    expect(grants(template, 'TeardownScheduler')).toEqual([
      { Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: { 'Fn::GetAtt': [teardown.id, 'Arn'] } },
    ]);
  });

  it('lets the teardown function delete only its own stack, passing only the bootstrap execution role to CloudFormation', () => {
    const execRole = {
      'Fn::Sub':
        'arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-cfn-exec-role-${AWS::AccountId}-${AWS::Region}',
    };
    const statements = grants(template, 'TeardownFunction');
    expect(statements.slice(2)).toEqual([
      { Effect: 'Allow', Action: 'cloudformation:DeleteStack', Resource: { Ref: 'AWS::StackId' } },
      {
        Effect: 'Allow',
        Action: 'iam:PassRole',
        Resource: execRole,
        Condition: { StringEquals: { 'iam:PassedToService': 'cloudformation.amazonaws.com' } },
      },
    ]);
    const { bucket } = bucketRefs(template);
    const teardown = functionByBundle(template, 'TeardownFunction');
    expect((teardown.props.Environment as { Variables: unknown }).Variables).toEqual({
      BERTH_S3_BUCKET: { Ref: bucket },
      BERTH_LOG_LEVEL: 'info',
      BERTH_STACK_ID: { Ref: 'AWS::StackId' },
      BERTH_STACK_DELETION_ROLE: execRole,
      BERTH_EXPIRES_AT: '2026-12-05T10:01:00.000Z',
    });
    expect(teardown.props.Timeout).toBe(900);
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: teardown.id },
      MaximumRetryAttempts: 2,
    });
  });

  it('tags resources and outputs with the expiry, and alarms on teardown errors when alarms are on', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      Tags: Match.objectLike({ 'expires-at': '2026-12-05T10:01:00.000Z' }),
    });
    expect(template.toJSON().Outputs.ExpiresAt.Value).toBe('2026-12-05T10:01:00.000Z');
    // The web UI says when the registry goes.
    const registry = functionByBundle(template, 'Registry');
    expect((registry.props.Environment as { Variables: Record<string, unknown> }).Variables).toMatchObject({
      BERTH_EXPIRES_AT: '2026-12-05T10:01:00.000Z',
    });
    const { template: paged } = synth({ ttl: '7d', alarmTopicArn: PAGER });
    const expressions = Object.values(resources(paged, 'AWS::CloudWatch::Alarm')).flatMap((a) =>
      ((a.Properties.Metrics ?? []) as { Expression?: string }[]).flatMap((m) => m.Expression ?? []),
    );
    // The janitor, the verifier and the teardown function.
    expect(expressions).toContain('e0 + e1 + e2');
  });

  it('accepts an absolute expiry instead, and refuses bad lifetimes and retained data', () => {
    const { template: t } = synth({ expiresAt: new Date('2027-01-31T18:00:00Z') });
    t.hasResourceProperties('AWS::Scheduler::Schedule', { ScheduleExpression: 'at(2027-01-31T18:00:00)' });
    expect(() => synth({ ttl: '30m' })).toThrow(/not a duration/);
    expect(() => synth({ ttl: '0h' })).toThrow(/between 1h and 366d/);
    expect(() => synth({ ttl: '7d', removalPolicy: 'retain' })).toThrow(/cannot also retain/);
    expect(() => synth({ team: 'Payments Team' })).toThrow(/lower-case letters/);
  });
});

describe('options', () => {
  let template: Template;
  beforeAll(() => {
    ({ template } = synth({
      encryption: 'kms',
      alarmEmail: 'ops@example.com',
      domain: { domainName: 'registry.example.com', hostedZone: { id: 'Z0123', name: 'example.com' } },
      versioned: true,
      intelligentTiering: true,
      memoryMb: 2048,
      timeoutSeconds: 20,
      reservedConcurrency: 50,
      throttle: { rateLimit: 100, burstLimit: 200 },
      tokenThrottle: { rateLimit: 5, burstLimit: 10 },
      anonymousPull: ['public/*'],
      retention: [{ repositories: 'team-a/*', keepLast: 10, keepTags: ['v*'] }],
      proxyUpstreams: ['hub=https://registry-1.docker.io'],
      proxyTagTtlSeconds: 600,
      proxyParameter: '/team/hub-credentials',
      immutableTags: ['v*', 'release-*'],
      logRetentionDays: 7,
      janitorEveryMinutes: 60,
      corsOrigins: ['https://ui.example.com', 'http://localhost:8080'],
    }));
  });

  it('lets the corsOrigins pages call the registry function (BERTH_CORS_ORIGINS), and no other function', () => {
    const registry = functionByBundle(template, 'Registry');
    expect((registry.props.Environment as { Variables: object }).Variables).toMatchObject({
      BERTH_CORS_ORIGINS: 'https://ui.example.com,http://localhost:8080',
    });
    for (const fn of ['Janitor', 'Verifier']) {
      expect(
        Object.keys((functionByBundle(template, fn).props.Environment as { Variables: object }).Variables),
      ).not.toContain('BERTH_CORS_ORIGINS');
    }
  });

  it('encrypts the bucket and the auth parameters with a rotating KMS key the functions that touch objects may use', () => {
    const key = logicalId(template, 'AWS::KMS::Key', 'StorageKey');
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true, PendingWindowInDays: 7 });
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            BucketKeyEnabled: true,
            ServerSideEncryptionByDefault: {
              SSEAlgorithm: 'aws:kms',
              KMSMasterKeyID: { 'Fn::GetAtt': [key, 'Arn'] },
            },
          },
        ],
      },
    });
    for (const fn of ['Registry', 'Verifier', 'Janitor']) {
      expect(grants(template, fn), fn).toContainEqual({
        Effect: 'Allow',
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Resource: { 'Fn::GetAtt': [key, 'Arn'] },
      });
    }
    // The bootstrap encrypts the parameters with the key, through SSM only.
    template.hasResourceProperties('Custom::BerthAuthBootstrap', {
      KmsKeyId: { 'Fn::GetAtt': [key, 'Arn'] },
    });
    expect(grants(template, 'AuthBootstrap')).toContainEqual({
      Effect: 'Allow',
      Action: ['kms:Encrypt', 'kms:GenerateDataKey', 'kms:Decrypt'],
      Resource: { 'Fn::GetAtt': [key, 'Arn'] },
      Condition: {
        StringEquals: {
          'kms:ViaService': { 'Fn::Join': ['', ['ssm.', { Ref: 'AWS::Region' }, '.amazonaws.com']] },
        },
      },
    });
  });

  it('sends alarms to an e-mail through a TLS-only topic', () => {
    const topic = logicalId(template, 'AWS::SNS::Topic', 'AlarmsTopic');
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    const alarms = Object.values(resources(template, 'AWS::CloudWatch::Alarm'));
    expect(alarms).toHaveLength(3);
    for (const a of alarms) {
      expect(a.Properties.AlarmActions).toEqual([{ Ref: topic }]);
      expect(a.Properties.OKActions).toEqual([{ Ref: topic }]);
    }
  });

  it('pages on the 5xx rate, background failures and broken images only, to an existing topic too', () => {
    const { template: paged } = synth({ alarmTopicArn: PAGER });
    paged.resourceCountIs('AWS::SNS::Topic', 0);
    const alarms = Object.values(resources(paged, 'AWS::CloudWatch::Alarm'));
    expect(alarms).toHaveLength(3);
    for (const a of alarms) expect(a.Properties.AlarmActions).toEqual([PAGER]);
    const expressions = alarms.flatMap((a) =>
      ((a.Properties.Metrics ?? []) as { Expression?: string }[]).flatMap((m) => m.Expression ?? []),
    );
    // The 5xx rate at the API (throttles and registry errors end there), the janitor and verifier.
    expect(expressions.sort()).toEqual(['IF(requests >= 20, 100 * errors / requests, 0)', 'e0 + e1']);
    paged.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'Berth',
      MetricName: 'FsckBroken',
      Period: 86400,
      Statistic: 'Maximum',
      TreatMissingData: 'ignore',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    // Every alarm metric is $0.10 a month: 2 + 2 + 1 here.
    const metrics = alarms.reduce(
      (n, a) =>
        n +
        (((a.Properties.Metrics as { MetricStat?: unknown }[]) ?? []).filter((m) => m.MetricStat).length ||
          1),
      0,
    );
    expect(metrics).toBe(5);
  });

  it('serves a custom domain with a DNS-validated certificate and an alias record', () => {
    template.hasResourceProperties('AWS::CertificateManager::Certificate', {
      DomainName: 'registry.example.com',
      ValidationMethod: 'DNS',
      DomainValidationOptions: [{ DomainName: 'registry.example.com', HostedZoneId: 'Z0123' }],
    });
    const domain = logicalId(template, 'AWS::ApiGatewayV2::DomainName', 'HttpDomain');
    template.hasResourceProperties('AWS::ApiGatewayV2::DomainName', { DomainName: 'registry.example.com' });
    template.hasResourceProperties('AWS::ApiGatewayV2::ApiMapping', {
      ApiId: { Ref: logicalId(template, 'AWS::ApiGatewayV2::Api', 'HttpApi') },
      DomainName: { Ref: domain },
      Stage: '$default',
    });
    template.hasResourceProperties('AWS::Route53::RecordSet', {
      Name: 'registry.example.com.',
      Type: 'A',
      HostedZoneId: 'Z0123',
    });
    const outputs = template.toJSON().Outputs;
    expect(outputs.RegistryHost.Value).toBe('registry.example.com');
    expect(outputs.LoginCommand.Value).toBe('docker login registry.example.com -u admin --password-stdin');
    expect(() => synth({ domain: { domainName: 'registry.example.com' } })).toThrow(
      /hosted zone .* or a certificate ARN/,
    );
  });

  it('passes props through: memory, timeout, concurrency, throttles, anonymous pull, retention, immutable tags, log retention', () => {
    const registry = functionByBundle(template, 'Registry');
    expect(registry.props).toMatchObject({ MemorySize: 2048, Timeout: 20, ReservedConcurrentExecutions: 50 });
    for (const fn of ['Registry', 'Janitor', 'Verifier']) {
      expect(
        (functionByBundle(template, fn).props.Environment as { Variables: object }).Variables,
      ).toMatchObject({
        BERTH_RETENTION: '[{"repositories":"team-a/*","keepLast":10,"keepTags":["v*"]}]',
        BERTH_IMMUTABLE_TAGS: 'v*,release-*',
      });
    }
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
      RouteSettings: { 'GET /token': { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 10 } },
    });
    template.hasResourceProperties('Custom::BerthAuthBootstrap', { AnonymousPull: ['public/*'] });
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 7 });
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 hour)' });
  });

  it('configures the pull-through cache on the registry, which may read the upstream credentials parameter only', () => {
    const registry = functionByBundle(template, 'Registry');
    expect((registry.props.Environment as { Variables: object }).Variables).toMatchObject({
      BERTH_PROXY_UPSTREAM: 'hub=https://registry-1.docker.io',
      BERTH_PROXY_TAG_TTL: '600',
      BERTH_PROXY_PARAMETER: '/team/hub-credentials',
    });
    expect(grants(template, 'Registry')).toContainEqual({
      Effect: 'Allow',
      Action: 'ssm:GetParameter',
      Resource: [ssmArn(AUTH_PARAMETER), ssmArn('/team/hub-credentials')],
    });
    for (const fn of ['Janitor', 'Verifier']) {
      expect(
        Object.keys((functionByBundle(template, fn).props.Environment as { Variables: object }).Variables),
      ).not.toContain('BERTH_PROXY_PARAMETER');
    }
  });

  it('refuses at synthesis settings the functions would refuse at start', () => {
    expect(() => synth({ retention: { keepLast: 10 } })).toThrow(/invalid registry settings[\s\S]*retention/);
    expect(() => synth({ immutableTags: ['Not A Pattern'] })).toThrow(/invalid registry settings/);
    expect(() => synth({ proxyUpstreams: ['ftp://example.com'] })).toThrow(/invalid registry settings/);
    expect(() => synth({ corsOrigins: ['https://ui.example.com/'] })).toThrow(
      /invalid registry settings[\s\S]*corsOrigins: CORS origin "https:\/\/ui\.example\.com\/"/,
    );
    expect(() => synth({ proxyParameter: '/team/hub' })).toThrow(/give the upstreams too/);
  });

  it('adds versioning with old versions expiring, and Intelligent-Tiering for blobs of 128 KiB and more', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({
            Id: 'expire-old-versions',
            NoncurrentVersionExpiration: { NoncurrentDays: 30 },
          }),
          Match.objectLike({
            Id: 'tier-blobs',
            Prefix: 'blobs/',
            ObjectSizeGreaterThan: 131071,
            Transitions: [{ StorageClass: 'INTELLIGENT_TIERING', TransitionInDays: 0 }],
          }),
          Match.objectLike({ Id: 'tier-data', Prefix: 'data/' }),
        ]),
      },
    });
  });

  it('keeps the data with removalPolicy retain (and has nothing to empty then)', () => {
    const { template: retained } = synth({ removalPolicy: 'retain' });
    retained.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain' });
    // The auth parameters outlive the stack too: the bootstrap does not delete them.
    retained.hasResourceProperties('Custom::BerthAuthBootstrap', { DeleteWithStack: 'false' });
    retained.resourceCountIs('Custom::BerthEmptyBucket', 0);
  });
});
