import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import type { Hono } from 'hono';
import type { HttpEnv } from '../http/context.ts';
import { errorResponse } from '../http/errors.ts';
import type { Logger } from '../logging/logger.ts';
import { RegistryError } from '../oci/errors.ts';
import { withInvocation } from './logging.ts';
import { metricLine } from './metrics.ts';

/**
 * The largest request body the function accepts, in raw bytes. A Lambda request payload is at most
 * 6,291,456 bytes of event JSON, and binary bodies arrive base64-encoded (4/3 larger): 4.4 MB leaves
 * room for headers and the event envelope, so the limit does not move with the client's headers.
 */
export const LAMBDA_BODY_LIMIT = 4_400_000;

export const TOO_LARGE_MESSAGE =
  'layer too large for the serverless path (a request through Lambda carries at most 4.4 MB): push through ' +
  '`berth relay --registry <this registry>` (any size, straight to storage), or in chunks (see docs/upload-extension.md)';

export type LambdaHttpHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyStructuredResultV2>;

export interface HandlerOptions {
  readonly logger: Logger;
  /** Where CloudWatch embedded-metric lines go (stdout, like the logs, by default); false: nowhere. */
  readonly writeMetric?: false | ((line: string) => void);
}

/**
 * The registry app as a handler of API Gateway HTTP API (payload 2.0) and Function URL events,
 * which share one shape. The event is in `env.event` (with `requestContext` and `lambdaContext`,
 * as Hono's own adapter puts them), where the app finds the raw path it routes on.
 */
export function createHttpHandler(app: Hono<HttpEnv>, options: HandlerOptions): LambdaHttpHandler {
  const writeMetric =
    options.writeMetric === false
      ? undefined
      : (options.writeMetric ?? ((line: string) => process.stdout.write(line + '\n')));
  return (event, context) => {
    const ids = { awsRequestId: context.awsRequestId, apiRequestId: event.requestContext.requestId };
    return withInvocation(ids, async () => {
      const started = performance.now();
      const result =
        (await refuseOversizedBody(event, options.logger)) ??
        (await serveEvent(app, event, context, options.logger));
      const body = typeof result.body === 'string' ? result.body : '';
      writeMetric?.(
        metricLine(
          {
            method: event.requestContext.http.method,
            rawPath: event.rawPath,
            status: result.statusCode ?? 200,
            latencyMs: performance.now() - started,
            responseBytes: result.isBase64Encoded ? base64Size(body) : Buffer.byteLength(body),
          },
          ids,
        ),
      );
      return result;
    });
  };
}

/**
 * One event through the app: the adapter Hono ships (`hono/aws-lambda`) does the same mapping, but
 * decodes a base64 body with `atob` and a loop over its characters, and Request then copies the
 * bytes again; on a push of the typical image through the gateway that was about 6% of the process's
 * CPU. Here the body is decoded by Buffer (native) and handed to the Request as a stream of that
 * one buffer (no copy); a response body is encoded by Buffer as well.
 */
export async function serveEvent(
  app: Hono<HttpEnv>,
  event: APIGatewayProxyEventV2,
  context: Context,
  logger: Logger,
): Promise<APIGatewayProxyStructuredResultV2> {
  let request: Request;
  try {
    request = toRequest(event);
  } catch (err) {
    // What the local server's connection guard answers to a request Node's parser refuses: the
    // spec's JSON error, 400, naming what could not be read.
    const error =
      err instanceof MalformedEvent
        ? new RegistryError('UNSUPPORTED', `malformed request: ${err.message}`, { status: 400 })
        : err;
    const method = event.requestContext.http.method;
    return toResult(errorResponse(error, method, logger));
  }
  const response = await app.fetch(request, {
    event,
    requestContext: event.requestContext,
    lambdaContext: context,
  });
  return toResult(response);
}

/** An event no Request can be made of; the message says what, for the client. */
class MalformedEvent extends Error {}

function toRequest(event: APIGatewayProxyEventV2): Request {
  const query = event.rawQueryString ? `?${event.rawQueryString}` : '';
  const host = event.requestContext.domainName ?? event.headers?.host;
  const url = `https://${host}${event.rawPath}${query}`;
  if (!URL.canParse(url)) {
    throw new MalformedEvent(
      'the request target is not a valid URL: percent-encode characters outside the URL grammar',
    );
  }
  const headers = new Headers();
  if (Array.isArray(event.cookies)) setHeader(headers, 'cookie', event.cookies.join('; '));
  // The API Gateway request id becomes the app's X-Request-Id, unless the client sent its own.
  headers.set('x-request-id', event.requestContext.requestId);
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (value) setHeader(headers, name, headerValue(value));
  }
  const method = event.requestContext.http.method;
  // A GET or HEAD carries no body to the app, as on the local server (@hono/node-server drops it):
  // the body means nothing there, and a Request cannot hold one.
  if (!event.body || method === 'GET' || method === 'HEAD') return new Request(url, { method, headers });
  const bytes = event.isBase64Encoded ? Buffer.from(event.body, 'base64') : Buffer.from(event.body, 'utf8');
  headers.set('content-length', String(bytes.byteLength));
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      if (bytes.byteLength > 0) controller.enqueue(bytes);
      controller.close();
    },
  });
  return new Request(url, { method, headers, body, duplex: 'half' } as RequestInit);
}

/** Sets a header, or says which one a Request cannot carry (a control character in its value). */
function setHeader(headers: Headers, name: string, value: string): void {
  try {
    headers.set(name, value);
  } catch {
    throw new MalformedEvent(
      `the header ${JSON.stringify(name.slice(0, 64))} has a name or value HTTP does not allow`,
    );
  }
}

/** Header values must be ASCII in a Request: others are percent-encoded (as Hono's adapter does). */
function headerValue(value: string): string {
  // eslint-disable-next-line no-control-regex -- the ASCII range is what is tested
  return /[^\x00-\x7f]/.test(value) ? encodeURIComponent(value) : value;
}

async function toResult(response: Response): Promise<APIGatewayProxyStructuredResultV2> {
  const type = response.headers.get('content-type');
  const encoding = response.headers.get('content-encoding');
  const binary =
    (type !== null && isContentTypeBinary(type)) || (!!encoding && !/^identity$/i.test(encoding));
  const body = binary ? Buffer.from(await response.arrayBuffer()).toString('base64') : await response.text();
  const result: APIGatewayProxyStructuredResultV2 & { headers: Record<string, string> } = {
    body,
    statusCode: response.status,
    isBase64Encoded: binary,
    headers: {},
  };
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) {
    result.cookies = cookies;
    response.headers.delete('set-cookie');
  }
  response.headers.forEach((value, name) => (result.headers[name] = value));
  return result;
}

/**
 * Every body is sent base64 except our own JSON: manifests must reach the client byte for byte
 * (a digest covers them), which a UTF-8 round trip does not promise for arbitrary bytes.
 */
function isContentTypeBinary(contentType: string): boolean {
  return !/^application\/json\s*(;|$)/i.test(contentType);
}

/**
 * A body that reached the function but would not have fitted had it been binary and base64-encoded
 * (e.g. sent as text, or through a route with other limits) gets the spec error that names the fix,
 * so the limit is the same whatever the encoding. Larger bodies never get here on AWS: API Gateway
 * or Lambda refuses them first, without a spec error body (see docs/lambda.md).
 */
async function refuseOversizedBody(
  event: APIGatewayProxyEventV2,
  logger: Logger,
): Promise<APIGatewayProxyStructuredResultV2 | undefined> {
  if (!event.body) return undefined;
  const size = event.isBase64Encoded ? base64Size(event.body) : Buffer.byteLength(event.body);
  if (size <= LAMBDA_BODY_LIMIT) return undefined;
  const method = event.requestContext.http.method;
  const error = new RegistryError('SIZE_INVALID', TOO_LARGE_MESSAGE, {
    status: 413,
    detail: { size, limit: LAMBDA_BODY_LIMIT },
  });
  const response = errorResponse(error, method, logger, {
    'Docker-Distribution-Api-Version': 'registry/2.0',
    'X-Request-Id': event.headers['x-request-id'] ?? event.requestContext.requestId,
  });
  logger.warn('request body too large for Lambda', { method, path: event.rawPath, size });
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => (headers[name] = value));
  return { statusCode: response.status, headers, body: await response.text(), isBase64Encoded: false };
}

function base64Size(encoded: string): number {
  const padding = encoded.endsWith('==') ? 2 : encoded.endsWith('=') ? 1 : 0;
  return Math.floor((encoded.length * 3) / 4) - padding;
}
