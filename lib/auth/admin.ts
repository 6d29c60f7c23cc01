import { randomBytes } from 'node:crypto';
import type { Account, AuthFile } from './auth-file.ts';
import { FileAuthStore, type AuthStore } from './auth-store.ts';
import { parseGrant, type Grant } from './grants.ts';
import { generateSecret, hashPassword, verifyPassword } from './passwords.ts';
import { generateSigningKey } from './tokens.ts';

/** An auth store, or the path of an auth file. */
export type AuthTarget = AuthStore | string;

function storeOf(target: AuthTarget): AuthStore {
  return typeof target === 'string' ? new FileAuthStore(target) : target;
}

/**
 * Applies one change to the store: reads it (or starts a new document with a fresh signing key),
 * and writes the result only if nobody else wrote in between.
 */
async function edit<T>(
  target: AuthTarget,
  change: (file: AuthFile) => Promise<{ file: AuthFile; result: T }>,
  options: { mustExist?: boolean } = {},
): Promise<T> {
  const store = storeOf(target);
  const snapshot = await store.read();
  if (!snapshot && options.mustExist) throw new Error(`${store.description} holds no accounts yet`);
  const file = snapshot?.file ?? {
    version: 1 as const,
    signingKey: { ...(await generateSigningKey()) },
    accounts: [],
    anonymous: [],
  };
  const { file: next, result } = await change(file);
  await store.write(next, snapshot?.version);
  return result;
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

/**
 * Adds a user, or replaces the password and grants of an existing one. Given the user's current
 * password, only the grants change: tokens and stored logins stay valid, and the new grants hold
 * for them from the next request. A new password makes a new generation of the account, which
 * voids every token issued before.
 */
export async function addUser(
  target: AuthTarget,
  name: string,
  password: string,
  grantTexts: readonly string[],
): Promise<void> {
  if (password.length < 8) throw new Error('the password must have at least 8 characters');
  const account: Account = {
    name,
    kind: 'user',
    passwordHash: await hashPassword(password),
    ...permissions(grantTexts),
    createdAt: new Date().toISOString(),
    generation: newGeneration(),
  };
  await edit(target, async (file) => {
    const existing = file.accounts.find((a) => a.name === name);
    if (existing && existing.kind !== 'user') throw new Error(`${name} is a robot account; revoke it first`);
    const same = existing && (await verifyPassword(password, existing.passwordHash));
    let saved = account;
    if (existing && same) {
      // Same person, same password: the same generation (kept as stored, or derived as before).
      const { generation: _fresh, ...grantsOnly } = account;
      saved = {
        ...grantsOnly,
        passwordHash: existing.passwordHash,
        createdAt: existing.createdAt,
        ...(existing.generation !== undefined && { generation: existing.generation }),
      };
    }
    return {
      file: { ...file, accounts: [...file.accounts.filter((a) => a.name !== name), saved] },
      result: undefined,
    };
  });
}

/** Creates a robot account for CI with a generated secret, returned once and never stored. */
export async function createRobot(
  target: AuthTarget,
  name: string,
  grantTexts: readonly string[],
  expiresInSeconds: number,
): Promise<{ name: string; secret: string; expiresAt: string }> {
  const secret = generateSecret();
  const expiresAt = new Date(Date.now() + expiresInSeconds * 1000).toISOString();
  const robot: Account = {
    name,
    kind: 'robot',
    passwordHash: await hashPassword(secret),
    ...permissions(grantTexts),
    createdAt: new Date().toISOString(),
    expiresAt,
    generation: newGeneration(),
  };
  await edit(target, async (file) => {
    if (file.accounts.some((a) => a.name === name))
      throw new Error(`an account named ${name} exists already`);
    return { file: { ...file, accounts: [...file.accounts, robot] }, result: undefined };
  });
  return { name, secret, expiresAt };
}

/** A fresh account generation (lib/auth/accounts.ts, generationOf). */
function newGeneration(): string {
  return randomBytes(12).toString('base64url');
}

/** Removes a user or revokes a robot. */
export async function removeAccount(target: AuthTarget, name: string, kind: Account['kind']): Promise<void> {
  await edit(
    target,
    async (file) => {
      if (!file.accounts.some((a) => a.name === name && a.kind === kind))
        throw new Error(`no ${kind} named ${name}`);
      return { file: { ...file, accounts: file.accounts.filter((a) => a.name !== name) }, result: undefined };
    },
    { mustExist: true },
  );
}

export interface AccountSummary {
  readonly name: string;
  readonly kind: Account['kind'];
  readonly grants: string[];
  readonly createdAt: string;
  readonly expiresAt?: string;
}

/** Accounts without their password hashes. */
export async function listAccounts(target: AuthTarget, kind?: Account['kind']): Promise<AccountSummary[]> {
  const store = storeOf(target);
  const snapshot = await store.read();
  if (!snapshot) throw new Error(`${store.description} holds no accounts yet`);
  return snapshot.file.accounts
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
export async function setAnonymousPull(target: AuthTarget, patterns: readonly string[]): Promise<void> {
  const anonymous = patterns.map((pattern) => {
    const grant = parseGrant(`${pattern}:pull`);
    if (grant === 'catalog') throw new Error('the catalog cannot be opened to anonymous users');
    return grant;
  });
  await edit(target, async (file) => ({ file: { ...file, anonymous }, result: undefined }));
}
