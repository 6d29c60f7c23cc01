import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerCredentials } from '../../lib/client/credentials.ts';

let dir: string;
const savedPath = process.env.PATH;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-creds-'));
  // A credential helper as docker runs it: `docker-credential-<name> get`, the server on stdin.
  await writeFile(
    join(dir, 'docker-credential-fake'),
    '#!/bin/sh\nread server\nif [ "$server" = "helped.example.com" ]; then echo \'{"Username":"robot","Secret":"s3cret"}\'; else echo "credentials not found" >&2; exit 1; fi\n',
  );
  await chmod(join(dir, 'docker-credential-fake'), 0o755);
  process.env.PATH = `${dir}:${savedPath}`;
});
afterAll(async () => {
  process.env.PATH = savedPath;
  await rm(dir, { recursive: true, force: true });
});

async function config(json: unknown): Promise<string> {
  const configDir = await mkdtemp(join(dir, 'config-'));
  await writeFile(join(configDir, 'config.json'), JSON.stringify(json));
  return configDir;
}

describe('credentials from the docker configuration', () => {
  it('reads an auths entry under any of the keys docker writes', async () => {
    const auth = Buffer.from('alice:pa:ss').toString('base64');
    const configDir = await config({ auths: { 'https://reg.example.com:8443/v1/': { auth } } });
    expect(await dockerCredentials('reg.example.com:8443', configDir)).toEqual({
      kind: 'password',
      username: 'alice',
      password: 'pa:ss',
    });
    expect(await dockerCredentials('other.example.com', configDir)).toBeUndefined();
  });

  it('asks a per-registry helper, then the default store, and treats "not found" as none', async () => {
    const configDir = await config({ credHelpers: { 'helped.example.com': 'fake' }, credsStore: 'fake' });
    expect(await dockerCredentials('helped.example.com', configDir)).toEqual({
      kind: 'password',
      username: 'robot',
      password: 's3cret',
    });
    expect(await dockerCredentials('unknown.example.com', configDir)).toBeUndefined();
  });

  it('uses an identity token docker stored instead of a password', async () => {
    const configDir = await config({ auths: { 'reg.example.com': { identitytoken: 'refresh-me' } } });
    expect(await dockerCredentials('reg.example.com', configDir)).toEqual({
      kind: 'identity-token',
      token: 'refresh-me',
    });
  });

  it('has none without a docker configuration', async () => {
    expect(await dockerCredentials('reg.example.com', join(dir, 'absent'))).toBeUndefined();
  });
});
