import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { HttpEnv } from '../../lib/http/context.ts';
import { serveEvent } from '../../lib/lambda/handler.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import { apiEvent, context } from './events.ts';

/** An app that tells what the adapter made of the event. */
function echoApp(): Hono<HttpEnv> {
  const app = new Hono<HttpEnv>();
  app.get('/binary', (c) => {
    c.header('set-cookie', 'a=1; Path=/', { append: true });
    c.header('set-cookie', 'b=2', { append: true });
    return c.body(new Uint8Array([0, 0xff, 0x80, 10]), 200, { 'content-type': 'application/octet-stream' });
  });
  app.all('*', async (c) => {
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    return c.json({
      url: c.req.url,
      method: c.req.method,
      cookie: c.req.header('cookie') ?? null,
      requestId: c.req.header('x-request-id') ?? null,
      label: c.req.header('x-label') ?? null,
      contentLength: c.req.header('content-length') ?? null,
      body: Buffer.from(bytes).toString('hex'),
      rawPath: c.env.event?.rawPath ?? null,
    });
  });
  return app;
}

type Echo = Record<string, string | null>;

const silent = createLogger('silent');

describe('payload-2.0 adapter (serveEvent)', () => {
  it('passes a base64 body through byte for byte, with its length, query and cookies', async () => {
    const bytes = new Uint8Array(300_000).map((_, i) => (i * 31) % 256);
    const event = apiEvent('PATCH', '/v2/a/b/blobs/uploads/x?state=1&s=%2F', {
      headers: { 'content-type': 'application/octet-stream', 'x-label': 'caf\u00e9' },
      body: bytes,
      cookies: ['a=1', 'b=2'],
    });
    const result = await serveEvent(echoApp(), event, context(), silent);
    expect(result.statusCode).toBe(200);
    expect(result.isBase64Encoded).toBe(false);
    const echo = JSON.parse(result.body ?? '') as Echo;
    expect(echo.url).toBe(`https://${event.requestContext.domainName}/v2/a/b/blobs/uploads/x?state=1&s=%2F`);
    expect(echo.body).toBe(Buffer.from(bytes).toString('hex'));
    expect(echo.contentLength).toBe('300000');
    expect(echo.cookie).toBe('a=1; b=2');
    expect(echo.requestId).toBe(event.requestContext.requestId);
    expect(echo.label).toBe('caf%C3%A9');
    expect(echo.rawPath).toBe('/v2/a/b/blobs/uploads/x');
  });

  it('passes a text body as UTF-8, and keeps the client its own X-Request-Id', async () => {
    const event = apiEvent('PUT', '/m', {
      headers: { 'content-type': 'application/json', 'x-request-id': 'mine' },
      body: '{"a":"\u00e9"}',
    });
    const echo = JSON.parse((await serveEvent(echoApp(), event, context(), silent)).body ?? '') as Echo;
    expect(Buffer.from(echo.body ?? '', 'hex').toString('utf8')).toBe('{"a":"\u00e9"}');
    expect(echo.contentLength).toBe('10');
    expect(echo.requestId).toBe('mine');
  });

  it('answers binary bodies base64 and Set-Cookie headers as cookies', async () => {
    const result = await serveEvent(echoApp(), apiEvent('GET', '/binary'), context(), silent);
    expect(result.isBase64Encoded).toBe(true);
    expect(Buffer.from(result.body ?? '', 'base64')).toEqual(Buffer.from([0, 0xff, 0x80, 10]));
    expect(result.cookies).toEqual(['a=1; Path=/', 'b=2']);
    expect(result.headers?.['set-cookie']).toBeUndefined();
    expect(result.headers?.['content-type']).toBe('application/octet-stream');
  });

  it('serves a GET that carries a body as the local server does: without the body', async () => {
    const event = apiEvent('GET', '/x', { body: new Uint8Array([1, 2, 3]) });
    const result = await serveEvent(echoApp(), event, context(), silent);
    expect(result.statusCode).toBe(200);
    const echo = JSON.parse(result.body ?? '') as Echo;
    expect(echo.method).toBe('GET');
    expect(echo.body).toBe('');
  });

  it('answers a request target that is not a URL with the spec JSON error, 400', async () => {
    const event = apiEvent('GET', '/v2/');
    event.requestContext.domainName = 'not a host';
    const result = await serveEvent(echoApp(), event, context(), silent);
    expect(result.statusCode).toBe(400);
    const body = JSON.parse(result.body ?? '') as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('UNSUPPORTED');
    expect(body.errors[0]!.message).toMatch(/not a valid URL/);
  });

  it('answers a header HTTP does not allow with the spec JSON error, 400, naming the header', async () => {
    const event = apiEvent('GET', '/x', { headers: { 'x-label': 'a\u0000b' } });
    const result = await serveEvent(echoApp(), event, context(), silent);
    expect(result.statusCode).toBe(400);
    expect(result.headers?.['content-type']).toMatch(/^application\/json/);
    const body = JSON.parse(result.body ?? '') as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('UNSUPPORTED');
    expect(body.errors[0]!.message).toContain('"x-label"');
  });
});
