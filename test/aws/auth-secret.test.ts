import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { addUser, createRobot, listAccounts, removeAccount } from '../../lib/auth/admin.ts';
import type { AuthFile } from '../../lib/auth/auth-file.ts';
import { ConflictError, SecretAuthStore, openAuthStore } from '../../lib/auth/auth-store.ts';
import { bootstrapAuth } from '../../lib/auth/bootstrap.ts';
import { verifyPassword } from '../../lib/auth/passwords.ts';
import { lambdaConfig } from '../../lib/lambda/config.ts';
import { createHttpHandler } from '../../lib/lambda/handler.ts';
import { createLambdaLogger } from '../../lib/lambda/logging.ts';
import { createLambdaApp, createLambdaRegistry } from '../../lib/lambda/registry.ts';
import { apiEvent, context } from '../lambda/events.ts';

const AUTH_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:berth-auth-AbCdEf';
const ADMIN_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:berth-admin-GhIjKl';
const ADMIN_PASSWORD = 'generated-admin-password-0123';

/** Two secrets as Secrets Manager keeps them: a value and the version id of AWSCURRENT. */
const secrets = new Map<string, { value: string; version: string }>();
const sm = mockClient(SecretsManagerClient);
let gets = 0;

function wire(): void {
  sm.reset();
  gets = 0;
  sm.on(GetSecretValueCommand).callsFake((input: { SecretId: string }) => {
    gets++;
    const secret = secrets.get(input.SecretId);
    if (!secret) throw new ResourceNotFoundException({ message: 'not found', $metadata: {} });
    return { SecretString: secret.value, VersionId: secret.version };
  });
  sm.on(DescribeSecretCommand).callsFake((input: { SecretId: string }) => ({
    VersionIdsToStages: { [secrets.get(input.SecretId)!.version]: ['AWSCURRENT'] },
  }));
  sm.on(PutSecretValueCommand).callsFake((input: { SecretId: string; SecretString: string }) => {
    const version = randomUUID();
    secrets.set(input.SecretId, { value: input.SecretString, version });
    return { VersionId: version };
  });
}

function cfnEvent(
  type: 'Create' | 'Update' | 'Delete',
  anonymous: string[] = [],
): CloudFormationCustomResourceEvent {
  const base = {
    ServiceToken: 'arn:aws:lambda:eu-west-1:123456789012:function:provider',
    ResponseURL: 'https://cloudformation-custom-resource-response.example/',
    StackId: 'arn:aws:cloudformation:eu-west-1:123456789012:stack/berth-team/1',
    RequestId: randomUUID(),
    LogicalResourceId: 'AuthBootstrap',
    ResourceType: 'Custom::BerthAuth',
    ResourceProperties: {
      ServiceToken: 'arn:aws:lambda:eu-west-1:123456789012:function:provider',
      AuthSecretArn: AUTH_ARN,
      AdminSecretArn: ADMIN_ARN,
      AnonymousPull: anonymous,
    },
  };
  if (type === 'Create') return { ...base, RequestType: 'Create' };
  const PhysicalResourceId = `berth-auth:${AUTH_ARN}`;
  if (type === 'Update')
    return {
      ...base,
      RequestType: 'Update',
      PhysicalResourceId,
      OldResourceProperties: { ServiceToken: base.ServiceToken },
    };
  return { ...base, RequestType: 'Delete', PhysicalResourceId };
}

const stored = () => JSON.parse(secrets.get(AUTH_ARN)!.value) as AuthFile;
const quiet = createLambdaLogger('silent');

beforeEach(() => {
  secrets.clear();
  // As the stack creates them: the admin credentials generated, the auth secret an empty object.
  secrets.set(ADMIN_ARN, {
    value: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
    version: 'v0',
  });
  secrets.set(AUTH_ARN, { value: '{}', version: 'v0' });
  wire();
});

describe('the auth bootstrap (deploy-time custom resource)', () => {
  it('fills the empty auth secret with a signing key and an administrator whose password is the generated one', async () => {
    const logged: string[] = [];
    const result = await bootstrapAuth(
      new SecretsManagerClient({ region: 'eu-west-1' }),
      cfnEvent('Create', ['public/*']),
      createLambdaLogger('info', (line) => logged.push(line)),
    );
    expect(result.PhysicalResourceId).toBe(`berth-auth:${AUTH_ARN}`);
    const file = stored();
    expect(file.signingKey).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    expect(file.accounts).toHaveLength(1);
    expect(file.accounts[0]).toMatchObject({
      name: 'admin',
      kind: 'user',
      catalog: true,
      grants: [{ pattern: '*', actions: ['pull', 'push', 'delete'] }],
    });
    expect(await verifyPassword(ADMIN_PASSWORD, file.accounts[0]!.passwordHash)).toBe(true);
    expect(file.anonymous).toEqual([{ pattern: 'public/*', actions: ['pull'] }]);
    // The password and the key never reach the logs.
    expect(logged.join('\n')).not.toContain(ADMIN_PASSWORD);
    expect(logged.join('\n')).not.toContain(String(file.signingKey.d));
  });

  it('keeps the key and every account on update, sets the anonymous patterns and follows a rotated admin password', async () => {
    const client = new SecretsManagerClient({ region: 'eu-west-1' });
    await bootstrapAuth(client, cfnEvent('Create'), quiet);
    const before = stored();
    await addUser(new SecretAuthStore(client, AUTH_ARN), 'alice', 'alice-password', ['team-a/*:pull,push']);
    secrets.set(ADMIN_ARN, {
      value: JSON.stringify({ username: 'admin', password: 'rotated-password-99' }),
      version: 'v1',
    });
    await bootstrapAuth(client, cfnEvent('Update', ['docs/*', 'public/*']), quiet);
    const after = stored();
    expect(after.signingKey).toEqual(before.signingKey);
    expect(after.accounts.map((a) => a.name).sort()).toEqual(['admin', 'alice']);
    expect(after.anonymous.map((g) => g.pattern)).toEqual(['docs/*', 'public/*']);
    const admin = after.accounts.find((a) => a.name === 'admin')!;
    expect(await verifyPassword('rotated-password-99', admin.passwordHash)).toBe(true);
    expect(await verifyPassword(ADMIN_PASSWORD, admin.passwordHash)).toBe(false);
  });

  it('touches nothing on delete', async () => {
    await bootstrapAuth(new SecretsManagerClient({ region: 'eu-west-1' }), cfnEvent('Delete'), quiet);
    expect(sm.calls()).toHaveLength(0);
  });

  it('fails the deployment with a clear message when the admin secret is malformed', async () => {
    secrets.set(ADMIN_ARN, { value: 'not json', version: 'v1' });
    await expect(
      bootstrapAuth(new SecretsManagerClient({ region: 'eu-west-1' }), cfnEvent('Create'), quiet),
    ).rejects.toThrow(/admin secret is not JSON/);
    expect(secrets.get(AUTH_ARN)!.value).toBe('{}');
  });
});

describe('accounts in a Secrets Manager secret', () => {
  it('is what `berth users` and `berth robots` edit with --auth-secret', async () => {
    const store = openAuthStore({ authSecret: AUTH_ARN })!;
    expect(store.description).toBe(`the auth secret ${AUTH_ARN}`);
    await addUser(store, 'bob', 'bob-password', ['team-b/*:pull']);
    const robot = await createRobot(store, 'ci', ['team-b/app:pull,push'], 3600);
    expect((await listAccounts(store)).map((a) => a.name)).toEqual(['bob', 'ci']);
    await removeAccount(store, 'ci', 'robot');
    expect((await listAccounts(store)).map((a) => a.name)).toEqual(['bob']);
    // The secret was signed for the ARN's region, and the robot's secret is not stored in clear.
    expect(await sm.calls()[0]!.thisValue.config.region()).toBe('eu-west-1');
    expect(secrets.get(AUTH_ARN)!.value).not.toContain(robot.secret);
  });

  it('refuses to overwrite a change made in between by someone else', async () => {
    const client = new SecretsManagerClient({ region: 'eu-west-1' });
    const store = new SecretAuthStore(client, AUTH_ARN);
    await addUser(store, 'bob', 'bob-password', ['team-b/*:pull']);
    const snapshot = (await store.read())!;
    await addUser(store, 'carol', 'carol-password', ['team-b/*:pull']);
    await expect(store.write(snapshot.file, snapshot.version)).rejects.toBeInstanceOf(ConflictError);
    expect(stored().accounts.map((a) => a.name)).toEqual(['bob', 'carol']);
  });
});

describe('the registry function with BERTH_AUTH_SECRET', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-auth-secret-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function handler(cacheSeconds: number) {
    const config = lambdaConfig({
      BERTH_STORAGE: 'filesystem',
      BERTH_DATA_DIR: join(dir, 'data'),
      BERTH_AUTH_SECRET: AUTH_ARN,
      BERTH_AUTH_CACHE_SECONDS: String(cacheSeconds),
    });
    return createHttpHandler(await createLambdaApp(config, createLambdaRegistry(config), quiet), {
      logger: quiet,
      writeMetric: false,
    });
  }

  const login = (user: string, password: string) =>
    apiEvent('GET', '/token', {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
    });

  it('refuses to start while the secret holds no accounts', async () => {
    await expect(handler(30)).rejects.toThrow(/holds no accounts yet/);
  });

  it('logs in the bootstrapped admin, and stops honouring a removed account within the cache time', async () => {
    const client = new SecretsManagerClient({ region: 'eu-west-1' });
    await bootstrapAuth(client, cfnEvent('Create'), quiet);
    await addUser(new SecretAuthStore(client, AUTH_ARN), 'bob', 'bob-password', ['*:pull']);
    const handle = await handler(1);
    const issued = await handle(login('admin', ADMIN_PASSWORD), context());
    expect(issued.statusCode).toBe(200);
    const bob = await handle(login('bob', 'bob-password'), context());
    const { token } = JSON.parse(bob.body ?? '{}') as { token: string };
    const ping = () =>
      handle(apiEvent('GET', '/v2/', { headers: { authorization: `Bearer ${token}` } }), context());
    expect((await ping()).statusCode).toBe(200);

    const readsBefore = gets;
    // Within the cache time, requests do not read the secret again.
    await ping();
    expect(gets).toBe(readsBefore);

    await removeAccount(new SecretAuthStore(client, AUTH_ARN), 'bob', 'user');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await ping()).statusCode).toBe(401);
    expect((await handle(login('bob', 'bob-password'), context())).statusCode).toBe(401);
  });

  it('keeps serving with the accounts it has when the secret cannot be read', async () => {
    const client = new SecretsManagerClient({ region: 'eu-west-1' });
    await bootstrapAuth(client, cfnEvent('Create'), quiet);
    const handle = await handler(1);
    sm.on(GetSecretValueCommand).rejects(new Error('throttled'));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await handle(login('admin', ADMIN_PASSWORD), context())).statusCode).toBe(200);
    expect((await handle(login('admin', 'wrong-password'), context())).statusCode).toBe(401);
  });
});
