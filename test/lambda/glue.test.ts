import type { ScheduledEvent } from 'aws-lambda';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { awsRegionOf } from '../../lib/config/config.ts';
import { lambdaConfig } from '../../lib/config/lambda.ts';
import { createHttpHandler } from '../../lib/lambda/handler.ts';
import { createJanitorHandler } from '../../lib/lambda/janitor.ts';
import { createLambdaLogger } from '../../lib/lambda/logging.ts';
import { createLambdaApp, createLambdaStore } from '../../lib/setup/lambda.ts';
import { SerializedHashStates } from '../../lib/registry/hashing.ts';
import { Registry } from '../../lib/registry/registry.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { apiEvent, context } from './events.ts';

describe('Lambda configuration', () => {
  it('defaults to the S3 store in the function region', () => {
    const config = lambdaConfig({ BERTH_S3_BUCKET: 'team-registry', AWS_REGION: 'eu-west-1' });
    expect(config.storage).toBe('s3');
    expect(config.s3).toMatchObject({ bucket: 'team-registry', region: 'eu-west-1' });
  });

  it('lets BERTH_* settings win, and refuses S3 without a bucket', () => {
    expect(
      lambdaConfig({ BERTH_S3_BUCKET: 'b12', BERTH_S3_REGION: 'us-west-2', AWS_REGION: 'eu-west-1' }).s3
        .region,
    ).toBe('us-west-2');
    expect(lambdaConfig({ BERTH_STORAGE: 'filesystem' }).storage).toBe('filesystem');
    expect(() => lambdaConfig({})).toThrow(/bucket/);
  });

  it('calls SSM and Lambda in BERTH_AWS_REGION, else AWS_REGION, else the S3 region: a bucket elsewhere moves only S3', () => {
    const bucketElsewhere = { BERTH_S3_BUCKET: 'b12', BERTH_S3_REGION: 'us-west-2' };
    const inFunctionRegion = lambdaConfig({ ...bucketElsewhere, AWS_REGION: 'eu-west-1' });
    expect(inFunctionRegion.s3.region).toBe('us-west-2');
    expect(awsRegionOf(inFunctionRegion)).toBe('eu-west-1');
    expect(
      awsRegionOf(
        lambdaConfig({ ...bucketElsewhere, AWS_REGION: 'eu-west-1', BERTH_AWS_REGION: 'ap-south-1' }),
      ),
    ).toBe('ap-south-1');
    expect(awsRegionOf(lambdaConfig(bucketElsewhere))).toBe('us-west-2');
  });

  it('refuses the retired Secrets Manager variables, naming what replaced them', () => {
    expect(() =>
      lambdaConfig({
        BERTH_S3_BUCKET: 'b12',
        BERTH_AUTH_SECRET: 'arn:aws:secretsmanager:eu-west-1:1:secret:x',
      }),
    ).toThrow(/BERTH_AUTH_SECRET .* was replaced by BERTH_AUTH_PARAMETER/);
    expect(() => lambdaConfig({ BERTH_S3_BUCKET: 'b12', BERTH_PROXY_SECRET: 'hub' })).toThrow(
      /BERTH_PROXY_PARAMETER/,
    );
  });
});

describe('Lambda logs and metrics', () => {
  it('stamps every log and metric line with the Lambda and API Gateway request ids', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-lambda-log-'));
    try {
      const lines: string[] = [];
      const config = lambdaConfig({
        BERTH_STORAGE: 'filesystem',
        BERTH_DATA_DIR: dir,
        BERTH_INSECURE_NO_AUTH: 'true',
      });
      const logger = createLambdaLogger('info', (line) => lines.push(line));
      const app = await createLambdaApp(config, await createLambdaStore(config), logger);
      const handler = createHttpHandler(app, { logger, writeMetric: (line) => lines.push(line) });
      const event = apiEvent('GET', '/v2/nope/manifests/latest');
      const ctx = context();
      const result = await handler(event, ctx);
      expect(result.statusCode).toBe(404);
      const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(parsed.length).toBeGreaterThanOrEqual(2);
      for (const line of parsed) {
        expect(line).toMatchObject({
          awsRequestId: ctx.awsRequestId,
          apiRequestId: event.requestContext.requestId,
        });
      }
      const metric = parsed.find((line) => '_aws' in line);
      expect(metric).toMatchObject({ route: 'manifest', status: '404', Requests: 1 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('janitor', () => {
  it('purges upload sessions older than the TTL and logs a summary', async () => {
    const storage = new MemoryDriver();
    const registry = new Registry({
      storage,
      hashes: new SerializedHashStates(),
      limits: { maxBlobSize: 1 << 30, partSize: 5 * 1024 * 1024, leaseMs: 60_000 },
      mountWithoutFrom: false,
    });
    const config = lambdaConfig({ BERTH_STORAGE: 'filesystem', BERTH_INSECURE_NO_AUTH: 'true' });
    const handler = createHttpHandler(
      await createLambdaApp(config, { registry, storage }, createLambdaLogger('silent')),
      {
        logger: createLambdaLogger('silent'),
        writeMetric: false,
      },
    );
    const started = await handler(apiEvent('POST', '/v2/team/app/blobs/uploads/'), context());
    expect(started.statusCode).toBe(202);
    await new Promise((resolve) => setTimeout(resolve, 20));

    const lines: string[] = [];
    const janitor = createJanitorHandler(
      { registry, storage },
      0.01,
      createLambdaLogger('info', (line) => lines.push(line)),
    );
    const summary = await janitor({ id: 'evt-1' } as ScheduledEvent, context());
    expect(summary).toMatchObject({ purged: 1, uploadTtlSeconds: 0.01 });
    expect(JSON.parse(lines[0]!)).toMatchObject({
      msg: 'janitor finished',
      purged: 1,
      scheduleEventId: 'evt-1',
    });
    const again = await handler(apiEvent('GET', String(started.headers?.location)), context());
    expect(again.statusCode).toBe(404);
  });
});
