import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LambdaHttpHandler } from '../../lib/lambda/handler.ts';
import { apiEvent, context, digestOf, imageManifest, type EventInit } from './events.ts';

// The function reads its configuration at import, as on AWS: the environment comes first.
let dataDir: string;
let handler: LambdaHttpHandler;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'berth-lambda-'));
  process.env.BERTH_STORAGE = 'filesystem';
  process.env.BERTH_INSECURE_NO_AUTH = 'true';
  process.env.BERTH_DATA_DIR = dataDir;
  process.env.BERTH_LOG_LEVEL = 'silent';
  ({ handler } = await import('../../functions/registry.ts'));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const invoke = (method: string, url: string, init?: EventInit): Promise<APIGatewayProxyStructuredResultV2> =>
  handler(apiEvent(method, url, init), context());

const bytesOf = (result: APIGatewayProxyStructuredResultV2): Buffer =>
  Buffer.from(result.body ?? '', result.isBase64Encoded ? 'base64' : 'utf8');

async function pushBlob(repo: string, bytes: Uint8Array): Promise<void> {
  const started = await invoke('POST', `/v2/${repo}/blobs/uploads/`);
  expect(started.statusCode).toBe(202);
  const location = String(started.headers?.location);
  const patched = await invoke('PATCH', location, {
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
    body: bytes,
  });
  expect(patched.statusCode).toBe(202);
  expect(patched.headers?.range).toBe(`0-${bytes.length - 1}`);
  const put = await invoke('PUT', `${location}?digest=${digestOf(bytes)}`);
  expect(put.statusCode).toBe(201);
  expect(put.headers?.['docker-content-digest']).toBe(digestOf(bytes));
}

describe('registry function, API Gateway v2 events', () => {
  it('answers GET /v2/ with the API version header and the gateway request id', async () => {
    const event = apiEvent('GET', '/v2/');
    const result = await handler(event, context());
    expect(result.statusCode).toBe(200);
    expect(result.body).toBe('{}');
    expect(result.isBase64Encoded).toBe(false);
    expect(result.headers).toMatchObject({
      'docker-distribution-api-version': 'registry/2.0',
      'content-type': 'application/json',
      'x-request-id': event.requestContext.requestId,
    });
  });

  it('pushes a blob with a base64 PATCH and PUT ?digest=, then serves it base64 byte for byte', async () => {
    const layer = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256));
    await pushBlob('team/app', layer);
    const got = await invoke('GET', `/v2/team/app/blobs/${digestOf(layer)}`);
    expect(got.statusCode).toBe(200);
    expect(got.isBase64Encoded).toBe(true);
    expect(bytesOf(got).equals(layer)).toBe(true);
  });

  it('tags a manifest with repeated ?tag= parameters; HEAD and GET by tag', async () => {
    const config = Buffer.from('{"architecture":"arm64","os":"linux"}');
    const layer = Buffer.from('layer bytes \u00ff\u0000', 'latin1');
    await pushBlob('team/tagged', config);
    await pushBlob('team/tagged', layer);
    const manifest = imageManifest(config, layer);
    const put = await invoke('PUT', '/v2/team/tagged/manifests/v1?tag=a&tag=b', {
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    expect(put.statusCode).toBe(201);
    const tags = await invoke('GET', '/v2/team/tagged/tags/list');
    expect(JSON.parse(bytesOf(tags).toString()).tags).toEqual(['a', 'b', 'v1']);

    const head = await invoke('HEAD', '/v2/team/tagged/manifests/b');
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers).toMatchObject({
      'content-length': String(Buffer.byteLength(manifest)),
      'docker-content-digest': digestOf(manifest),
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
    });
    const get = await invoke('GET', '/v2/team/tagged/manifests/a', {
      headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(get.statusCode).toBe(200);
    expect(bytesOf(get).toString()).toBe(manifest);
  });

  it('routes on the raw path: an encoded dot segment is a bad name, not another repository', async () => {
    const result = await invoke('GET', '/v2/a/%2e%2e/b/tags/list');
    expect(result.statusCode).toBe(400);
    expect(JSON.parse(result.body ?? '').errors[0].code).toBe('NAME_INVALID');
  });

  it('refuses a body beyond what a Lambda request carries with 413 SIZE_INVALID naming the fix', async () => {
    const started = await invoke('POST', '/v2/team/big/blobs/uploads/');
    const body = Buffer.alloc(4_500_000, 1);
    const result = await invoke('PATCH', String(started.headers?.location), {
      headers: { 'content-type': 'application/octet-stream' },
      body,
    });
    expect(result.statusCode).toBe(413);
    expect(result.headers?.['docker-distribution-api-version']).toBe('registry/2.0');
    const error = JSON.parse(result.body ?? '').errors[0];
    expect(error.code).toBe('SIZE_INVALID');
    expect(error.message).toContain('`berth relay --registry <this registry>`');
  });

  it('serves a Function URL event (same shape, cookies in their own field)', async () => {
    const event = apiEvent('GET', '/v2/', { cookies: ['a=1', 'b=2'] });
    const result = await handler(
      {
        ...event,
        requestContext: { ...event.requestContext, domainName: 'xyz.lambda-url.eu-west-1.on.aws' },
      },
      context(),
    );
    expect(result.statusCode).toBe(200);
  });
});
