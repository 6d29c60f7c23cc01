import { chmod, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as z from 'zod';
import { REPOSITORY_ACTIONS } from './grants.ts';

/**
 * The auth document's schema, built on first use (constructing zod schemas costs time at a Lambda
 * cold start; a registry without authentication never parses one).
 */
function buildSchema() {
  const grantSchema = z.object({
    pattern: z.string().min(1),
    actions: z.array(z.enum(REPOSITORY_ACTIONS)).min(1).readonly(),
  });

  const accountSchema = z.object({
    name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9._@+-]{0,127}$/),
    /** `user`: a person with a chosen password; `robot`: CI, with a generated secret and an expiry. */
    kind: z.enum(['user', 'robot']).default('user'),
    passwordHash: z.string(),
    grants: z.array(grantSchema).default([]),
    catalog: z.boolean().default(false),
    createdAt: z.string(),
    expiresAt: z.string().optional(),
    /**
     * A random id, new whenever the account is (re)created or its password set: tokens name it, so
     * a token outlives neither a removal and re-creation under the same name nor a new password.
     */
    generation: z.string().min(1).max(64).optional(),
  });

  const authFileSchema = z.object({
    version: z.literal(1),
    /** The ES256 private key that signs tokens, as a JWK. */
    signingKey: z.record(z.string(), z.unknown()),
    accounts: z.array(accountSchema).default([]),
    /** Repositories anyone may pull without logging in. */
    anonymous: z.array(grantSchema).default([]),
  });
  return { account: accountSchema, authFile: authFileSchema };
}

let built: ReturnType<typeof buildSchema> | undefined;
const schema = () => (built ??= buildSchema());

export type AuthFile = z.infer<ReturnType<typeof buildSchema>['authFile']>;
export type Account = z.infer<ReturnType<typeof buildSchema>['account']>;

export async function readAuthFile(path: string): Promise<AuthFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the auth file ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseAuthFile(text, `the auth file ${path}`);
}

/** Parses auth file JSON; `where` names its origin in error messages ("the auth file x"). */
export function parseAuthFile(text: string, where: string): AuthFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${where} is not valid JSON`);
  }
  const parsed = schema().authFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${where} is invalid at ${issue?.path.join('.') || 'top level'}: ${issue?.message}`);
  }
  return parsed.data;
}

/** The auth file as stored: pretty JSON, so that a person can read what the CLI wrote. */
export function serializeAuthFile(file: AuthFile): string {
  return JSON.stringify(file, null, 2) + '\n';
}

/** Writes the file atomically, readable by its owner only (it holds the signing key). */
export async function writeAuthFile(path: string, file: AuthFile): Promise<void> {
  const temp = join(dirname(path), `.${process.pid}.${Date.now()}.auth.tmp`);
  await writeFile(temp, serializeAuthFile(file), { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, path);
}

export async function authFileExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
