import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import type { Logger } from '../logging/logger.ts';
import type { Account, AuthFile } from './auth-file.ts';
import { SecretAuthStore } from './auth-store.ts';
import { parseGrant, type Grant } from './grants.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import { generateSigningKey } from './tokens.ts';

/** What the stack passes to the bootstrap custom resource. */
export interface BootstrapProperties {
  /** The secret the registry reads its accounts and signing key from (created as `{}`). */
  readonly AuthSecretArn: string;
  /** The generated `{"username","password"}` of the first administrator. */
  readonly AdminSecretArn: string;
  /** Repository patterns anyone may pull (CloudFormation passes a list of strings). */
  readonly AnonymousPull?: readonly string[] | string;
}

export interface BootstrapResult {
  readonly PhysicalResourceId: string;
  readonly Data?: Record<string, string>;
}

/**
 * The deploy-time step that fills the auth secret (a CDK custom resource's onEvent handler): a
 * fresh ES256 signing key and an administrator account whose password hash comes from the admin
 * secret Secrets Manager generated, so no secret is ever in the template, its parameters or its
 * outputs. Updates keep the key and every account, follow a rotated admin password and set the
 * anonymous pull patterns; deletion leaves the secrets to CloudFormation.
 */
export async function bootstrapAuth(
  client: SecretsManagerClient,
  event: CloudFormationCustomResourceEvent,
  logger: Logger,
): Promise<BootstrapResult> {
  const props = event.ResourceProperties as unknown as BootstrapProperties;
  const physicalId = `berth-auth:${props.AuthSecretArn}`;
  if (event.RequestType === 'Delete') return { PhysicalResourceId: event.PhysicalResourceId };

  const admin = await readAdmin(client, props.AdminSecretArn);
  const anonymous = anonymousGrants(props.AnonymousPull);
  const store = new SecretAuthStore(client, props.AuthSecretArn);
  const snapshot = await store.read();
  const file: AuthFile = snapshot?.file ?? {
    version: 1,
    signingKey: { ...(await generateSigningKey()) },
    accounts: [],
    anonymous: [],
  };
  const existing = file.accounts.find((a) => a.name === admin.username);
  const keepHash = existing !== undefined && (await verifyPassword(admin.password, existing.passwordHash));
  const adminAccount: Account = {
    name: admin.username,
    kind: 'user',
    passwordHash: keepHash ? existing.passwordHash : await hashPassword(admin.password),
    grants: [{ pattern: '*', actions: ['pull', 'push', 'delete'] }],
    catalog: true,
    createdAt: existing?.createdAt ?? new Date().toISOString(),
  };
  const next: AuthFile = {
    ...file,
    accounts: [...file.accounts.filter((a) => a.name !== admin.username), adminAccount],
    anonymous,
  };
  await store.write(next, snapshot?.version);
  logger.info('auth secret bootstrapped', {
    requestType: event.RequestType,
    created: snapshot === undefined,
    accounts: next.accounts.length,
    anonymousPatterns: anonymous.length,
    adminPasswordChanged: existing !== undefined && !keepHash,
  });
  return { PhysicalResourceId: physicalId, Data: { AdminUsername: admin.username } };
}

async function readAdmin(
  client: SecretsManagerClient,
  secretId: string,
): Promise<{ username: string; password: string }> {
  const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
  let value: unknown;
  try {
    value = JSON.parse(out.SecretString ?? '');
  } catch {
    throw new Error('the admin secret is not JSON with "username" and "password"');
  }
  const { username, password } = (value ?? {}) as { username?: unknown; password?: unknown };
  if (typeof username !== 'string' || typeof password !== 'string' || password.length < 8) {
    throw new Error('the admin secret needs a "username" and a "password" of at least 8 characters');
  }
  return { username, password };
}

function anonymousGrants(value: BootstrapProperties['AnonymousPull']): Grant[] {
  const patterns = value === undefined ? [] : typeof value === 'string' ? value.split(',') : [...value];
  return patterns
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((pattern) => {
      const grant = parseGrant(`${pattern}:pull`);
      if (grant === 'catalog') throw new Error('the catalog cannot be opened to anonymous users');
      return grant;
    });
}
