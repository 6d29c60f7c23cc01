import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lambdaConfig } from '../../lib/config/lambda.ts';
import { createHttpHandler } from '../../lib/lambda/handler.ts';
import { createLambdaLogger } from '../../lib/lambda/logging.ts';
import { createLambdaApp, createLambdaStore } from '../../lib/setup/lambda.ts';
import { apiEvent, context } from './events.ts';

describe('CORS on Lambda (BERTH_CORS_ORIGINS, set by the stack from its corsOrigins prop)', () => {
  it('answers a preflight through the API Gateway event and lets the page read the catalog', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-lambda-cors-'));
    try {
      const config = lambdaConfig({
        BERTH_STORAGE: 'filesystem',
        BERTH_DATA_DIR: dir,
        BERTH_INSECURE_NO_AUTH: 'true',
        BERTH_CORS_ORIGINS: 'https://ui.example.com',
      });
      const logger = createLambdaLogger('silent', () => {});
      const app = await createLambdaApp(config, await createLambdaStore(config), logger);
      const handler = createHttpHandler(app, { logger, writeMetric: false });
      const origin = { origin: 'https://ui.example.com' };
      const pre = await handler(
        apiEvent('OPTIONS', '/v2/_catalog', {
          headers: {
            ...origin,
            'access-control-request-method': 'GET',
            'access-control-request-headers': 'authorization',
          },
        }),
        context(),
      );
      expect(pre.statusCode).toBe(204);
      expect(pre.headers).toMatchObject({
        'access-control-allow-origin': 'https://ui.example.com',
        'access-control-allow-credentials': 'true',
      });
      const res = await handler(apiEvent('GET', '/v2/_catalog', { headers: origin }), context());
      expect(res.statusCode).toBe(200);
      expect(res.headers?.['access-control-allow-origin']).toBe('https://ui.example.com');
      expect(String(res.headers?.['access-control-expose-headers'])).toContain('Docker-Content-Digest');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a malformed BERTH_CORS_ORIGINS at start, naming the setting', () => {
    expect(() =>
      lambdaConfig({ BERTH_S3_BUCKET: 'bucket', BERTH_CORS_ORIGINS: 'https://ui.example.com/' }),
    ).toThrow(/corsOrigins: CORS origin "https:\/\/ui\.example\.com\/"/);
  });
});
