import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../lib/auth/admin.ts';
import { lambdaConfig } from '../../lib/lambda/config.ts';
import { createHttpHandler } from '../../lib/lambda/handler.ts';
import { createLambdaLogger } from '../../lib/lambda/logging.ts';
import { createLambdaApp, createLambdaRegistry } from '../../lib/lambda/registry.ts';
import { apiEvent, context } from './events.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-lambda-auth-'));
  await addUser(join(dir, 'auth.json'), 'ci', 'ci-password-1', ['*:pull']);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Lambda with an auth file', () => {
  it('refuses to start without one unless told it is a test', async () => {
    const config = lambdaConfig({ BERTH_STORAGE: 'filesystem', BERTH_DATA_DIR: join(dir, 'open') });
    await expect(
      createLambdaApp(config, createLambdaRegistry(config), createLambdaLogger('silent')),
    ).rejects.toThrow(/needs BERTH_AUTH_SECRET or BERTH_AUTH_FILE/);
  });

  it('challenges anonymous requests and serves the token endpoint', async () => {
    const config = lambdaConfig({
      BERTH_STORAGE: 'filesystem',
      BERTH_DATA_DIR: join(dir, 'data'),
      BERTH_AUTH_FILE: join(dir, 'auth.json'),
    });
    const logger = createLambdaLogger('silent');
    const handler = createHttpHandler(await createLambdaApp(config, createLambdaRegistry(config), logger), {
      logger,
      writeMetric: false,
    });
    const denied = await handler(apiEvent('GET', '/v2/'), context());
    expect(denied.statusCode).toBe(401);
    expect(String(denied.headers?.['www-authenticate'])).toMatch(/^Bearer realm="https?:\/\/[^"]+\/token"/);
    const login = apiEvent('GET', '/token', {
      headers: { authorization: `Basic ${Buffer.from('ci:ci-password-1').toString('base64')}` },
    });
    const issued = await handler(login, context());
    expect(issued.statusCode).toBe(200);
    const { token } = JSON.parse(issued.body ?? '{}') as { token: string };
    const allowed = await handler(
      apiEvent('GET', '/v2/', { headers: { authorization: `Bearer ${token}` } }),
      context(),
    );
    expect(allowed.statusCode).toBe(200);
  });
});
