import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { createHash, randomUUID } from 'node:crypto';

export interface EventInit {
  readonly headers?: Record<string, string>;
  readonly body?: Uint8Array | string;
  readonly cookies?: string[];
}

/**
 * An API Gateway HTTP API (payload 2.0) event in the shape AWS records them: lower-case header
 * names, the query string raw and parsed (repeated values comma-joined), binary bodies base64.
 */
export function apiEvent(method: string, url: string, init: EventInit = {}): APIGatewayProxyEventV2 {
  const [rawPath = '/', rawQueryString = ''] = url.split('?');
  const requestId = `${Math.random().toString(36).slice(2, 12)}=`;
  const headers: Record<string, string> = { host: 'abc123.execute-api.eu-west-1.amazonaws.com' };
  for (const [name, value] of Object.entries(init.headers ?? {})) headers[name.toLowerCase()] = value;
  const query: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(rawQueryString)) {
    query[name] = query[name] === undefined ? value : `${query[name]},${value}`;
  }
  const binary = init.body instanceof Uint8Array;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    ...(init.cookies ? { cookies: init.cookies } : {}),
    headers,
    ...(rawQueryString ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: headers.host!,
      domainPrefix: 'abc123',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'test' },
      requestId,
      routeKey: '$default',
      stage: '$default',
      time: '28/Nov/2026:03:00:00 +0000',
      timeEpoch: Date.now(),
    },
    ...(init.body !== undefined
      ? { body: binary ? Buffer.from(init.body).toString('base64') : String(init.body) }
      : {}),
    isBase64Encoded: binary,
  };
}

export function context(): Context {
  const fail = () => {
    throw new Error('not used');
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'registry',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:registry',
    memoryLimitInMB: '1024',
    awsRequestId: randomUUID(),
    logGroupName: '/aws/lambda/registry',
    logStreamName: 'test',
    getRemainingTimeInMillis: () => 30_000,
    done: fail,
    fail,
    succeed: fail,
  };
}

export function digestOf(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A valid image manifest for a config and one layer. */
export function imageManifest(config: Uint8Array, layer: Uint8Array): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: digestOf(config),
      size: config.length,
    },
    layers: [
      {
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: digestOf(layer),
        size: layer.length,
      },
    ],
  });
}
