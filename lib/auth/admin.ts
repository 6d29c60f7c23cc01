import { authFileExists, readAuthFile, writeAuthFile, type Account, type AuthFile } from './auth-file.ts';
import { parseGrant, type Grant } from './grants.ts';
import { generateSecret, hashPassword } from './passwords.ts';
import { generateSigningKey } from './tokens.ts';

/** Reads the auth file, or starts a new one with a fresh signing key. */
async function open(path: string): Promise<AuthFile> {
  if (await authFileExists(path)) return readAuthFile(path);
  return { version: 1, signingKey: { ...(await generateSigningKey()) }, accounts: [], anonymous: [] };
}

function permissions(grantTexts: readonly string[]): { grants: Grant[]; catalog: boolean } {
  const grants: Grant[] = [];
  let catalog = false;
  for (const text of grantTexts) {
    const grant = parseGrant(text);
    if (grant === 'catalog') catalog = true;
    else grants.push(grant);
  }
  return { grants, catalog };
}

/** Adds a user, or replaces the password and grants of an existing one. */
export async function addUser(
  path: string,
  name: string,
  password: string,
  grantTexts: readonly string[],
): Promise<void> {
  if (password.length < 8) throw new Error('the password must have at least 8 characters');
  const file = await open(path);
  const account: Account = {
    name,
    kind: 'user',
    passwordHash: await hashPassword(password),
    ...permissions(grantTexts),
    createdAt: new Date().toISOString(),
  };
  await writeAuthFile(path, {
    ...file,
    accounts: [...file.accounts.filter((a) => a.name !== name), account],
  });
}

/** Creates a robot account for CI with a generated secret, returned once and never stored. */
export async function createRobot(
  path: string,
  name: string,
  grantTexts: readonly string[],
  expiresInSeconds: number,
): Promise<{ name: string; secret: string; expiresAt: string }> {
  const file = await open(path);
  if (file.accounts.some((a) => a.name === name)) throw new Error(`an account named ${name} exists already`);
  const secret = generateSecret();
  const expiresAt = new Date(Date.now() + expiresInSeconds * 1000).toISOString();
  const robot: Account = {
    name,
    kind: 'robot',
    passwordHash: await hashPassword(secret),
    ...permissions(grantTexts),
    createdAt: new Date().toISOString(),
    expiresAt,
  };
  await writeAuthFile(path, { ...file, accounts: [...file.accounts, robot] });
  return { name, secret, expiresAt };
}

/** Removes a user or revokes a robot. */
export async function removeAccount(path: string, name: string, kind: Account['kind']): Promise<void> {
  const file = await readAuthFile(path);
  if (!file.accounts.some((a) => a.name === name && a.kind === kind))
    throw new Error(`no ${kind} named ${name}`);
  await writeAuthFile(path, { ...file, accounts: file.accounts.filter((a) => a.name !== name) });
}

export interface AccountSummary {
  readonly name: string;
  readonly kind: Account['kind'];
  readonly grants: string[];
  readonly createdAt: string;
  readonly expiresAt?: string;
}

/** Accounts without their password hashes. */
export async function listAccounts(path: string, kind?: Account['kind']): Promise<AccountSummary[]> {
  const file = await readAuthFile(path);
  return file.accounts
    .filter((a) => kind === undefined || a.kind === kind)
    .map((a) => ({
      name: a.name,
      kind: a.kind,
      grants: [
        ...a.grants.map((g) => `${g.pattern}:${g.actions.join(',')}`),
        ...(a.catalog ? ['registry:catalog:*'] : []),
      ],
      createdAt: a.createdAt,
      ...(a.expiresAt ? { expiresAt: a.expiresAt } : {}),
    }));
}

/** Sets the repository patterns anyone may pull without logging in (an empty list: none). */
export async function setAnonymousPull(path: string, patterns: readonly string[]): Promise<void> {
  const file = await open(path);
  const anonymous = patterns.map((pattern) => {
    const grant = parseGrant(`${pattern}:pull`);
    if (grant === 'catalog') throw new Error('the catalog cannot be opened to anonymous users');
    return grant;
  });
  await writeAuthFile(path, { ...file, anonymous });
}
