import {
  DeleteParametersCommand,
  DescribeParametersCommand,
  GetParameterCommand,
  ParameterAlreadyExists,
  ParameterNotFound,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { addUser, createRobot, listAccounts, removeAccount } from '../../lib/auth/admin.ts';
import type { AuthFile } from '../../lib/auth/auth-file.ts';
import {
  ConflictError,
  ParameterAuthStore,
  STANDARD_PARAMETER_BYTES,
  decodeAuthParameter,
  openAuthStore,
} from '../../lib/auth/auth-store.ts';
import { bootstrapAuth } from '../../lib/auth/bootstrap.ts';
import { verifyPassword } from '../../lib/auth/passwords.ts';
import { lambdaConfig } from '../../lib/config/lambda.ts';
import { createHttpHandler } from '../../lib/lambda/handler.ts';
import { createLambdaLogger } from '../../lib/lambda/logging.ts';
import { createLambdaApp, createLambdaStore } from '../../lib/setup/lambda.ts';
import { apiEvent, context } from '../lambda/events.ts';

const AUTH = '/berth/berth-team/auth';
const ADMIN = '/berth/berth-team/admin';
const AUTH_ARN = `arn:aws:ssm:eu-west-1:123456789012:parameter${AUTH}`;
const KEY = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

/** Parameters as SSM keeps them: value, version number, tier and key. */
interface Stored {
  value: string;
  version: number;
  tier: string;
  keyId: string;
}
const parameters = new Map<string, Stored>();
const ssm = mockClient(SSMClient);
/** Decrypted reads (each a KMS Decrypt on AWS), and reads of any kind. */
let decryptedGets = 0;
let gets = 0;
/** Runs once before the next PutParameter lands: another writer in the same instant. */
let beforePut: (() => void) | undefined;

const nameOf = (nameOrArn: string) => nameOrArn.replace(/^arn:aws:ssm:[^:]+:\d+:parameter/, '');

function wire(): void {
  ssm.reset();
  gets = 0;
  decryptedGets = 0;
  ssm.on(GetParameterCommand).callsFake((input: { Name: string; WithDecryption?: boolean }) => {
    gets++;
    const p = parameters.get(nameOf(input.Name));
    if (!p) throw new ParameterNotFound({ message: 'not found', $metadata: {} });
    if (input.WithDecryption) decryptedGets++;
    // Without decryption SSM answers with the ciphertext: nothing a reader could parse.
    const value = input.WithDecryption ? p.value : Buffer.from(`kms:${p.value}`).toString('base64');
    return {
      Parameter: { Name: nameOf(input.Name), Type: 'SecureString', Value: value, Version: p.version },
    };
  });
  ssm
    .on(PutParameterCommand)
    .callsFake(
      (input: {
        Name: string;
        Value: string;
        Overwrite?: boolean;
        Tier?: string;
        KeyId?: string;
        Type: string;
      }) => {
        expect(input.Type).toBe('SecureString');
        beforePut?.();
        beforePut = undefined;
        const name = nameOf(input.Name);
        const current = parameters.get(name);
        if (current && !input.Overwrite)
          throw new ParameterAlreadyExists({ message: 'exists', $metadata: {} });
        const bytes = Buffer.byteLength(input.Value);
        if (bytes > 8192 || (bytes > 4096 && input.Tier === 'Standard')) {
          throw Object.assign(new Error('too large'), { name: 'ParameterMaxVersionLimitExceeded' });
        }
        const advanced =
          current?.tier === 'Advanced' || (input.Tier === 'Intelligent-Tiering' && bytes > 4096);
        const version = (current?.version ?? 0) + 1;
        parameters.set(name, {
          value: input.Value,
          version,
          tier: advanced ? 'Advanced' : 'Standard',
          keyId: input.KeyId ?? 'alias/aws/ssm',
        });
        return { Version: version, Tier: advanced ? 'Advanced' : 'Standard' };
      },
    );
  ssm.on(DescribeParametersCommand).callsFake((input: { ParameterFilters: { Values: string[] }[] }) => {
    const name = input.ParameterFilters[0]!.Values[0]!;
    const p = parameters.get(name);
    return { Parameters: p ? [{ Name: name, KeyId: p.keyId, Version: p.version, Tier: p.tier }] : [] };
  });
  ssm.on(DeleteParametersCommand).callsFake((input: { Names: string[] }) => {
    const deleted = input.Names.filter((n) => parameters.delete(nameOf(n)));
    return { DeletedParameters: deleted, InvalidParameters: input.Names.filter((n) => !deleted.includes(n)) };
  });
}

function cfnEvent(
  type: 'Create' | 'Update' | 'Delete',
  anonymous: string[] = [],
  extra: Record<string, unknown> = {},
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
      AuthParameter: AUTH,
      AdminParameter: ADMIN,
      AnonymousPull: anonymous,
      DeleteWithStack: 'true',
      ...extra,
    },
  };
  if (type === 'Create') return { ...base, RequestType: 'Create' };
  const PhysicalResourceId = `berth-auth:${AUTH}`;
  if (type === 'Update')
    return {
      ...base,
      RequestType: 'Update',
      PhysicalResourceId,
      OldResourceProperties: { ServiceToken: base.ServiceToken },
    };
  return { ...base, RequestType: 'Delete', PhysicalResourceId };
}

const client = () => new SSMClient({ region: 'eu-west-1' });
const adminPassword = () => (JSON.parse(parameters.get(ADMIN)!.value) as { password: string }).password;
const stored = () => decodeAuthParameter(parameters.get(AUTH)!.value, 'the test parameter');
const quiet = createLambdaLogger('silent');

beforeEach(() => {
  // As a fresh stack has them: none (CloudFormation cannot create SecureStrings).
  parameters.clear();
  wire();
});

describe('the auth bootstrap (deploy-time custom resource)', () => {
  it('creates the admin parameter with a random password and the auth parameter with a signing key and that administrator', async () => {
    const logged: string[] = [];
    const result = await bootstrapAuth(
      client(),
      cfnEvent('Create', ['public/*']),
      createLambdaLogger('info', (line) => logged.push(line)),
    );
    expect(result.PhysicalResourceId).toBe(`berth-auth:${AUTH}`);
    const password = adminPassword();
    expect(password).toMatch(/^[A-Za-z0-9]{32}$/);
    const file = stored();
    expect(file.signingKey).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    expect(file.accounts).toHaveLength(1);
    expect(file.accounts[0]).toMatchObject({
      name: 'admin',
      kind: 'user',
      catalog: true,
      grants: [{ pattern: '*', actions: ['pull', 'push', 'delete'] }],
    });
    expect(await verifyPassword(password, file.accounts[0]!.passwordHash)).toBe(true);
    expect(file.anonymous).toEqual([{ pattern: 'public/*', actions: ['pull'] }]);
    // Both are standard-tier SecureStrings under the account's aws/ssm key: free at rest.
    expect(parameters.get(AUTH)).toMatchObject({ tier: 'Standard', keyId: 'alias/aws/ssm' });
    expect(parameters.get(ADMIN)).toMatchObject({ tier: 'Standard', keyId: 'alias/aws/ssm' });
    // The password and the key never reach the logs.
    expect(logged.join('\n')).not.toContain(password);
    expect(logged.join('\n')).not.toContain(String(file.signingKey.d));
  });

  it('keeps the key and every account on update, sets the anonymous patterns and follows a changed admin password', async () => {
    await bootstrapAuth(client(), cfnEvent('Create'), quiet);
    const first = adminPassword();
    const before = stored();
    await addUser(new ParameterAuthStore(client(), AUTH), 'alice', 'alice-password', ['team-a/*:pull,push']);
    parameters.set(ADMIN, {
      ...parameters.get(ADMIN)!,
      value: JSON.stringify({ username: 'admin', password: 'rotated-password-99' }),
    });
    await bootstrapAuth(client(), cfnEvent('Update', ['docs/*', 'public/*']), quiet);
    const after = stored();
    expect(after.signingKey).toEqual(before.signingKey);
    expect(after.accounts.map((a) => a.name).sort()).toEqual(['admin', 'alice']);
    expect(after.anonymous.map((g) => g.pattern)).toEqual(['docs/*', 'public/*']);
    const admin = after.accounts.find((a) => a.name === 'admin')!;
    expect(await verifyPassword('rotated-password-99', admin.passwordHash)).toBe(true);
    expect(await verifyPassword(first, admin.passwordHash)).toBe(false);
  });

  it('encrypts both parameters with the customer key when the stack has one, and keeps it when the CLI edits', async () => {
    await bootstrapAuth(client(), cfnEvent('Create', [], { KmsKeyId: KEY }), quiet);
    expect(parameters.get(AUTH)!.keyId).toBe(KEY);
    expect(parameters.get(ADMIN)!.keyId).toBe(KEY);
    // The CLI knows no key: it looks the parameter's up rather than falling back to aws/ssm.
    await addUser(openAuthStore({ authParameter: AUTH }, 'eu-west-1')!, 'bob', 'bob-password', ['*:pull']);
    expect(parameters.get(AUTH)!.keyId).toBe(KEY);
    expect(stored().accounts.map((a) => a.name)).toEqual(['admin', 'bob']);
  });

  it('deletes both parameters with the stack, and nothing when the stack retains its data', async () => {
    await bootstrapAuth(client(), cfnEvent('Create'), quiet);
    await bootstrapAuth(client(), cfnEvent('Delete', [], { DeleteWithStack: 'false' }), quiet);
    expect([...parameters.keys()].sort()).toEqual([ADMIN, AUTH]);
    await bootstrapAuth(client(), cfnEvent('Delete'), quiet);
    expect(parameters.size).toBe(0);
    // A repeated delete (CloudFormation retries) finds nothing and still succeeds.
    await expect(bootstrapAuth(client(), cfnEvent('Delete'), quiet)).resolves.toBeDefined();
  });

  it('fails the deployment with a clear message when the admin parameter is malformed', async () => {
    parameters.set(ADMIN, { value: 'not json', version: 1, tier: 'Standard', keyId: 'alias/aws/ssm' });
    await expect(bootstrapAuth(client(), cfnEvent('Create'), quiet)).rejects.toThrow(
      /admin parameter is not JSON/,
    );
    expect(parameters.has(AUTH)).toBe(false);
  });
});

/**
 * A document with `users` people and `robots` CI accounts shaped as `berth users|robots` write them
 * (scrypt hashes with fresh salts, generations, grants, times), without paying for scrypt each time.
 */
function teamOf(users: number, robots: number): AuthFile {
  const random = (bytes: number) => randomBytes(bytes).toString('base64');
  const account = (name: string, kind: 'user' | 'robot', grants: string[], i: number) => ({
    name,
    kind,
    passwordHash: ['scrypt', 32768, 8, 1, random(16), random(32)].join('$'),
    grants: grants.map((g) => {
      const [pattern, actions] = g.split(':') as [string, string];
      return { pattern, actions: actions.split(',') as ('pull' | 'push' | 'delete')[] };
    }),
    catalog: false,
    createdAt: new Date(Date.UTC(2026, 0, 1) + i * 3_600_123).toISOString(),
    ...(kind === 'robot' && { expiresAt: new Date(Date.UTC(2026, 3, 1) + i * 3_600_321).toISOString() }),
    generation: randomBytes(12).toString('base64url'),
  });
  return {
    version: 1,
    signingKey: {
      kty: 'EC',
      crv: 'P-256',
      alg: 'ES256',
      kid: random(8),
      x: random(32),
      y: random(32),
      d: random(32),
    },
    accounts: [
      ...Array.from({ length: users }, (_, i) =>
        account(`user-${i}@example.com`, 'user', [`team-${i % 4}/*:pull,push,delete`, '*:pull'], i),
      ),
      ...Array.from({ length: robots }, (_, i) =>
        account(`ci-service-${i}`, 'robot', [`team-${i % 4}/service-${i}:pull,push`], users + i),
      ),
    ],
    anonymous: [{ pattern: 'public/*', actions: ['pull'] }],
  };
}

describe('accounts in an SSM parameter', () => {
  it('is what `berth users` and `berth robots` edit with --auth-parameter, in the region of its ARN', async () => {
    const store = openAuthStore({ authParameter: AUTH_ARN }, 'us-east-1')!;
    expect(store.description).toBe(`the auth parameter ${AUTH_ARN}`);
    await addUser(store, 'bob', 'bob-password', ['team-b/*:pull']);
    const robot = await createRobot(store, 'ci', ['team-b/app:pull,push'], 3600);
    expect((await listAccounts(store)).map((a) => a.name)).toEqual(['bob', 'ci']);
    await removeAccount(store, 'ci', 'robot');
    expect((await listAccounts(store)).map((a) => a.name)).toEqual(['bob']);
    expect(await ssm.calls()[0]!.thisValue.config.region()).toBe('eu-west-1');
    // Stored as plain JSON while it fits a standard parameter, and never with a secret in clear.
    expect(parameters.get(AUTH)!.value.startsWith('{')).toBe(true);
    expect(parameters.get(AUTH)!.value).not.toContain(robot.secret);
  });

  it('refuses to overwrite a change made in between by someone else', async () => {
    const store = new ParameterAuthStore(client(), AUTH);
    await addUser(store, 'bob', 'bob-password', ['team-b/*:pull']);
    const snapshot = (await store.read())!;
    await addUser(store, 'carol', 'carol-password', ['team-b/*:pull']);
    await expect(store.write(snapshot.file, snapshot.version)).rejects.toBeInstanceOf(ConflictError);
    expect(stored().accounts.map((a) => a.name)).toEqual(['bob', 'carol']);
  });

  it('says so when another write landed in the same instant as its own', async () => {
    const store = new ParameterAuthStore(client(), AUTH);
    await addUser(store, 'bob', 'bob-password', ['team-b/*:pull']);
    const snapshot = (await store.read())!;
    // Someone else's write between the version check and this write: SSM has no conditional put.
    beforePut = () => {
      const p = parameters.get(AUTH)!;
      parameters.set(AUTH, { ...p, version: p.version + 1 });
    };
    await expect(store.write(snapshot.file, snapshot.version)).rejects.toThrow(/at the same moment/);
  });

  it('keeps a realistic team (10 people, 18 robots) in one free standard parameter, compressed', async () => {
    const store = new ParameterAuthStore(client(), AUTH);
    await store.write(teamOf(10, 18), undefined);
    const value = parameters.get(AUTH)!.value;
    const json = JSON.stringify(stored());
    // The JSON alone would need the paid advanced tier; gzipped it fits the standard one.
    expect(Buffer.byteLength(json)).toBeGreaterThan(STANDARD_PARAMETER_BYTES);
    expect(value.startsWith('gzip:')).toBe(true);
    expect(Buffer.byteLength(value)).toBeLessThanOrEqual(STANDARD_PARAMETER_BYTES);
    expect(parameters.get(AUTH)!.tier).toBe('Standard');
    expect(stored().accounts).toHaveLength(28);
  });

  it('moves to the advanced tier beyond that, and refuses a document no parameter can hold', async () => {
    const store = new ParameterAuthStore(client(), AUTH);
    await store.write(teamOf(20, 40), undefined);
    expect(parameters.get(AUTH)!.tier).toBe('Advanced');
    expect(stored().accounts).toHaveLength(60);
    let error: unknown;
    for (let i = 0; i < 200 && !error; i++) {
      error = await createRobot(store, `extra-${i}`, ['x/*:pull'], 3600).then(
        () => undefined,
        (err: unknown) => err,
      );
    }
    expect(String(error)).toMatch(/more than one parameter holds \(8192\); remove accounts or robots/);
    // The refused write changed nothing.
    expect(stored().accounts.length).toBeGreaterThanOrEqual(60);
  });
});

describe('the registry function with BERTH_AUTH_PARAMETER', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-auth-parameter-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function handler(cacheSeconds: number) {
    const config = lambdaConfig({
      BERTH_STORAGE: 'filesystem',
      BERTH_DATA_DIR: join(dir, 'data'),
      BERTH_AUTH_PARAMETER: AUTH,
      BERTH_AUTH_CACHE_SECONDS: String(cacheSeconds),
      AWS_REGION: 'eu-west-1',
    });
    return createHttpHandler(await createLambdaApp(config, await createLambdaStore(config), quiet), {
      logger: quiet,
      writeMetric: false,
    });
  }

  const login = (user: string, password: string) =>
    apiEvent('GET', '/token', {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
    });

  it('refuses to start while the parameter holds no accounts', async () => {
    await expect(handler(30)).rejects.toThrow(/holds no accounts yet/);
  });

  it('logs in the bootstrapped admin, and stops honouring a removed account within the cache time', async () => {
    await bootstrapAuth(client(), cfnEvent('Create'), quiet);
    await addUser(new ParameterAuthStore(client(), AUTH), 'bob', 'bob-password', ['*:pull']);
    const handle = await handler(1);
    const issued = await handle(login('admin', adminPassword()), context());
    expect(issued.statusCode).toBe(200);
    const bob = await handle(login('bob', 'bob-password'), context());
    const { token } = JSON.parse(bob.body ?? '{}') as { token: string };
    const ping = () =>
      handle(apiEvent('GET', '/v2/', { headers: { authorization: `Bearer ${token}` } }), context());
    expect((await ping()).statusCode).toBe(200);

    const readsBefore = gets;
    // Within the cache time, requests do not read the parameter again.
    await ping();
    expect(gets).toBe(readsBefore);

    // After it, an unchanged parameter costs one read without decryption (no KMS call).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const decryptedBefore = decryptedGets;
    expect((await ping()).statusCode).toBe(200);
    expect(decryptedGets).toBe(decryptedBefore);

    await removeAccount(new ParameterAuthStore(client(), AUTH), 'bob', 'user');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await ping()).statusCode).toBe(401);
    expect((await handle(login('bob', 'bob-password'), context())).statusCode).toBe(401);
  });

  it('keeps serving with the accounts it has when the parameter cannot be read', async () => {
    await bootstrapAuth(client(), cfnEvent('Create'), quiet);
    const password = adminPassword();
    const handle = await handler(1);
    ssm.on(GetParameterCommand).rejects(new Error('throttled'));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await handle(login('admin', password), context())).statusCode).toBe(200);
    expect((await handle(login('admin', 'wrong-password'), context())).statusCode).toBe(401);
  });
});
