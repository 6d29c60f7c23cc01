import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../lib/auth/admin.ts';
import { lambdaConfig } from '../../lib/config/lambda.ts';
import { createHttpHandler } from '../../lib/lambda/handler.ts';
import { createLambdaLogger } from '../../lib/lambda/logging.ts';
import { createLambdaApp, createLambdaStore } from '../../lib/setup/lambda.ts';
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
      createLambdaApp(config, await createLambdaStore(config), createLambdaLogger('silent')),
    ).rejects.toThrow(/needs BERTH_AUTH_PARAMETER or BERTH_AUTH_FILE/);
  });

  it('challenges anonymous requests and serves the token endpoint', async () => {
    const config = lambdaConfig({
      BERTH_STORAGE: 'filesystem',
      BERTH_DATA_DIR: join(dir, 'data'),
      BERTH_AUTH_FILE: join(dir, 'auth.json'),
    });
    const logger = createLambdaLogger('silent');
    const handler = createHttpHandler(
      await createLambdaApp(config, await createLambdaStore(config), logger),
      {
        logger,
        writeMetric: false,
      },
    );
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

  it('writes a LoginFailures metric line, with the source address, for each failed login', async () => {
    const config = lambdaConfig({
      BERTH_STORAGE: 'filesystem',
      BERTH_DATA_DIR: join(dir, 'data'),
      BERTH_AUTH_FILE: join(dir, 'auth.json'),
    });
    const logger = createLambdaLogger('silent');
    const metrics: Record<string, unknown>[] = [];
    const write = (line: string) => metrics.push(JSON.parse(line) as Record<string, unknown>);
    const app = await createLambdaApp(config, await createLambdaStore(config), logger, write);
    const handler = createHttpHandler(app, { logger, writeMetric: false });
    const wrong = `Basic ${Buffer.from('ci:not-the-password').toString('base64')}`;
    for (let i = 0; i < 6; i++) {
      await handler(apiEvent('GET', '/token', { headers: { authorization: wrong } }), context());
    }
    const failures = metrics.filter((m) => m.LoginFailures === 1);
    const throttled = metrics.filter((m) => m.LoginsThrottled === 1);
    expect(failures).toHaveLength(5);
    expect(throttled).toHaveLength(1);
    expect(failures[0]).toMatchObject({ reason: 'wrong password', source: '203.0.113.7' });
    expect(throttled[0]).toMatchObject({ reason: 'account' });
    const emf = (
      failures[0]!._aws as { CloudWatchMetrics: { Namespace: string; Metrics: { Name: string }[] }[] }
    ).CloudWatchMetrics[0]!;
    expect(emf.Namespace).toBe('Berth');
    expect(emf.Metrics.map((m) => m.Name)).toEqual(['LoginFailures', 'LoginsThrottled']);
  });
});
