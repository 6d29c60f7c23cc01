import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export interface EventSource {
  readonly request: IncomingMessage;
  readonly body: Buffer;
  readonly requestId: string;
  readonly now?: Date;
}

/**
 * The payload-2.0 event API Gateway's HTTP API sends for a `$default` route: header names lower
 * case, repeated headers and query parameters joined with commas, cookies in their own field, the
 * path and query string exactly as the client sent them, binary bodies base64-encoded.
 */
export function toEvent({ request, body, requestId, now = new Date() }: EventSource): APIGatewayProxyEventV2 {
  const url = request.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  const rawQueryString = q === -1 ? '' : url.slice(q + 1);
  const { headers, cookies } = eventHeaders(request.rawHeaders);
  const sourceIp = request.socket.remoteAddress ?? '127.0.0.1';
  headers['x-forwarded-for'] = headers['x-forwarded-for']
    ? `${headers['x-forwarded-for']}, ${sourceIp}`
    : sourceIp;
  headers['x-forwarded-proto'] = 'http';
  headers['x-forwarded-port'] = String(request.socket.localPort ?? 80);
  headers['x-amzn-trace-id'] = traceId(now);
  const domainName = headers.host ?? 'localhost';
  const event: APIGatewayProxyEventV2 = {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    ...(cookies.length > 0 ? { cookies } : {}),
    headers,
    ...(rawQueryString ? { queryStringParameters: queryParameters(rawQueryString) } : {}),
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName,
      domainPrefix: domainName.split('.')[0] ?? domainName,
      http: {
        method: request.method ?? 'GET',
        path: rawPath,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: '$default',
      stage: '$default',
      time: clfTime(now),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: false,
  };
  if (body.length > 0) {
    const text = isTextual(headers['content-type']) ? utf8(body) : undefined;
    event.body = text ?? body.toString('base64');
    event.isBase64Encoded = text === undefined;
  }
  return event;
}

/** API Gateway's request ids look like `JKJaXmPLvHcESHA=`: 10 random bytes, base64. */
export function gatewayRequestId(): string {
  return randomBytes(10).toString('base64');
}

function eventHeaders(raw: string[]): { headers: Record<string, string>; cookies: string[] } {
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name === 'cookie') {
      cookies.push(
        ...value
          .split(';')
          .map((c) => c.trim())
          .filter(Boolean),
      );
      continue;
    }
    headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
  }
  return { headers, cookies };
}

/** Decoded names and values, repeated values joined with commas (`?tag=a&tag=b` is `tag: "a,b"`). */
function queryParameters(rawQueryString: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const pair of rawQueryString.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const name = decode(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? '' : decode(pair.slice(eq + 1));
    params[name] = params[name] === undefined ? value : `${params[name]},${value}`;
  }
  return params;
}

function decode(component: string): string {
  try {
    return decodeURIComponent(component.replace(/\+/g, ' '));
  } catch {
    return component;
  }
}

/**
 * HTTP APIs pass text media types as strings and base64-encode the rest. Bytes that are not valid
 * UTF-8 go base64 whatever their type, so no body is ever altered on the way.
 */
function isTextual(contentType: string | undefined): boolean {
  return (
    contentType !== undefined &&
    /^(text\/|application\/([\w.+-]*\+)?(json|xml|javascript)\b)/i.test(contentType)
  );
}

function utf8(body: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return undefined;
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `12/Mar/2020:19:03:58 +0000`, the format of requestContext.time. */
function clfTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

function traceId(now: Date): string {
  return `Root=1-${Math.floor(now.getTime() / 1000).toString(16)}-${randomBytes(12).toString('hex')}`;
}

/** Bodies shorter than this are serialized with the rest: not worth a second look. */
const LARGE_BODY = 64 * 1024;
/** Characters JSON escapes (besides `"` and `\`, looked for apart): controls. */
// eslint-disable-next-line no-control-regex -- the control characters are what is looked for
const CONTROL = /[\x00-\x1f]/;

/**
 * The size of an invoke payload (an event or a function's result) as Lambda measures it: the bytes
 * of its JSON. Equal to `Buffer.byteLength(JSON.stringify(value))`, without serializing a large
 * `body` only to measure it (on a push of 4 MiB layers that copy was the gateway's largest own
 * cost): a body of ASCII characters JSON does not escape counts its length, and every other field is
 * serialized as usual. `base64Body`: the caller made the body with `Buffer#toString('base64')`
 * (toEvent does), whose alphabet JSON never escapes, so it is not looked through.
 */
export function payloadBytes(value: unknown, base64Body = false): number {
  if (value !== null && typeof value === 'object' && 'body' in value) {
    const { body } = value as { body?: unknown };
    if (typeof body === 'string' && body.length >= LARGE_BODY && (base64Body || plainJson(body))) {
      // `"body":""` is in the rest; the body adds its characters (one byte each) between those quotes.
      return Buffer.byteLength(JSON.stringify({ ...value, body: '' })) + body.length;
    }
  }
  return Buffer.byteLength(JSON.stringify(value) ?? '');
}

/** Whether JSON writes `text` as it is, one byte per character: ASCII, no quote, backslash or control. */
function plainJson(text: string): boolean {
  return (
    Buffer.byteLength(text) === text.length &&
    !text.includes('"') &&
    !text.includes('\\') &&
    !CONTROL.test(text)
  );
}
