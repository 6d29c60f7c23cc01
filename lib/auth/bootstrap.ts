import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { randomInt } from 'node:crypto';
import type { Logger } from '../logging/logger.ts';
import type { Account, AuthFile } from './auth-file.ts';
import { ParameterAuthStore, type SsmClient } from './auth-store.ts';
import { parseGrant, type Grant } from './grants.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import { generateSigningKey } from './tokens.ts';

/** What the stack passes to the bootstrap custom resource. */
export interface BootstrapProperties {
  /** The SecureString parameter the registry reads its accounts and signing key from. */
  readonly AuthParameter: string;
  /** The SecureString parameter with the first administrator's `{"username","password"}`. */
  readonly AdminParameter: string;
  /** A customer KMS key (ARN) to encrypt both with; without it, the account's `aws/ssm` key. */
  readonly KmsKeyId?: string;
  /** Repository patterns anyone may pull (CloudFormation passes a list of strings). */
  readonly AnonymousPull?: readonly string[] | string;
  /** `true`: stack deletion deletes both parameters (the stack's removal policy is `destroy`). */
  readonly DeleteWithStack?: string | boolean;
}

export interface BootstrapResult {
  readonly PhysicalResourceId: string;
  readonly Data?: Record<string, string>;
}

/** The first administrator's name. */
export const ADMIN_USER = 'admin';
const PASSWORD_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * The deploy-time step that creates and fills the auth parameters (a CDK custom resource's onEvent
 * handler; CloudFormation cannot create SecureString parameters):
 * - the admin parameter, `{"username":"admin","password":<32 random letters and digits>}`, created
 *   once, so the password is in no template, parameter or output;
 * - the auth parameter: a fresh ES256 signing key and the administrator's scrypt hash.
 * Updates keep the key and every account, follow a changed admin password and set the anonymous
 * pull patterns. Deletion deletes both parameters when the stack's data goes with it.
 */
export async function bootstrapAuth(
  client: SsmClient,
  event: CloudFormationCustomResourceEvent,
  logger: Logger,
): Promise<BootstrapResult> {
  const props = event.ResourceProperties as unknown as BootstrapProperties;
  const physicalId = `berth-auth:${props.AuthParameter}`;
  if (event.RequestType === 'Delete') {
    if (String(props.DeleteWithStack) === 'true') {
      const { DeleteParametersCommand } = await import('../aws/ssm.ts');
      // Parameters already gone are listed as invalid, not an error: a repeated delete succeeds.
      await client.send(new DeleteParametersCommand({ Names: [props.AuthParameter, props.AdminParameter] }));
      logger.info('auth parameters deleted', { parameters: [props.AuthParameter, props.AdminParameter] });
    }
    return { PhysicalResourceId: event.PhysicalResourceId };
  }

  const keyOption = props.KmsKeyId ? { keyId: props.KmsKeyId } : {};
  const { admin, created: adminCreated } = await readOrCreateAdmin(
    client,
    props.AdminParameter,
    props.KmsKeyId,
  );
  const anonymous = anonymousGrants(props.AnonymousPull);
  const store = new ParameterAuthStore(client, props.AuthParameter, keyOption);
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
  logger.info('auth parameter bootstrapped', {
    requestType: event.RequestType,
    created: snapshot === undefined,
    adminCreated,
    accounts: next.accounts.length,
    anonymousPatterns: anonymous.length,
    adminPasswordChanged: existing !== undefined && !keepHash,
  });
  return { PhysicalResourceId: physicalId, Data: { AdminUsername: admin.username } };
}

/** The administrator's credentials from their parameter, which is created with a random password if missing. */
async function readOrCreateAdmin(
  client: SsmClient,
  name: string,
  keyId: string | undefined,
): Promise<{ admin: { username: string; password: string }; created: boolean }> {
  const { GetParameterCommand, PutParameterCommand } = await import('../aws/ssm.ts');
  let text: string | undefined;
  try {
    const out = await client.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    text = out.Parameter?.Value;
  } catch (err) {
    if ((err as Error).name !== 'ParameterNotFound') throw err;
  }
  if (text === undefined) {
    const admin = { username: ADMIN_USER, password: generatePassword(32) };
    await client.send(
      new PutParameterCommand({
        Name: name,
        Value: JSON.stringify(admin),
        Type: 'SecureString',
        ...(keyId && { KeyId: keyId }),
        Overwrite: false,
        Tier: 'Standard',
        Description: 'Berth: the first administrator (username, password)',
      }),
    );
    return { admin, created: true };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error('the admin parameter is not JSON with "username" and "password"');
  }
  const { username, password } = (value ?? {}) as { username?: unknown; password?: unknown };
  if (typeof username !== 'string' || typeof password !== 'string' || password.length < 8) {
    throw new Error('the admin parameter needs a "username" and a "password" of at least 8 characters');
  }
  return { admin: { username, password }, created: false };
}

/** Letters and digits only: the password goes through shells, docker login and Basic auth. */
function generatePassword(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += PASSWORD_ALPHABET[randomInt(PASSWORD_ALPHABET.length)];
  return out;
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
