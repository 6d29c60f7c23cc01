import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { ServerResponse } from 'node:http';
import type { GatewayError } from './limits.ts';

/** Hop-by-hop and framing headers: the gateway frames the response itself, as API Gateway does. */
const FRAMING = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);

/**
 * Writes a payload-2.0 result the way API Gateway interprets it: a result without `statusCode`
 * is itself the JSON body of a 200; `cookies` become Set-Cookie headers; a base64 body is decoded.
 */
export function writeResult(res: ServerResponse, result: unknown, method: string, requestId: string): void {
  const structured = asStructured(result);
  const body = structured.body
    ? Buffer.from(structured.body, structured.isBase64Encoded ? 'base64' : 'utf8')
    : Buffer.alloc(0);
  res.statusCode = structured.statusCode ?? 200;
  for (const [name, value] of Object.entries(structured.headers ?? {})) {
    if (!FRAMING.has(name.toLowerCase())) res.setHeader(name, String(value));
  }
  const multi = (structured as { multiValueHeaders?: Record<string, (string | number | boolean)[]> })
    .multiValueHeaders;
  for (const [name, values] of Object.entries(multi ?? {})) {
    if (!FRAMING.has(name.toLowerCase())) res.appendHeader(name, values.map(String));
  }
  if (structured.cookies?.length) res.appendHeader('set-cookie', structured.cookies);
  res.setHeader('apigw-requestid', requestId);
  if (method === 'HEAD') {
    // A HEAD answer has no body to measure: the function's Content-Length describes the GET.
    const length = headerValue(structured.headers, 'content-length');
    if (length !== undefined) res.setHeader('content-length', length);
    res.end();
    return;
  }
  res.setHeader('content-length', body.length);
  res.end(body);
}

export function writeGatewayError(res: ServerResponse, error: GatewayError, requestId: string): void {
  const body = JSON.stringify({ message: error.message });
  res.writeHead(error.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'apigw-requestid': requestId,
  });
  res.end(body);
}

function asStructured(result: unknown): APIGatewayProxyStructuredResultV2 {
  if (result !== null && typeof result === 'object' && 'statusCode' in result)
    return result as APIGatewayProxyStructuredResultV2;
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: typeof result === 'string' ? result : JSON.stringify(result ?? null),
  };
}

function headerValue(
  headers: Record<string, string | number | boolean> | undefined,
  name: string,
): string | undefined {
  for (const [key, value] of Object.entries(headers ?? {})) {
    if (key.toLowerCase() === name) return String(value);
  }
  return undefined;
}
