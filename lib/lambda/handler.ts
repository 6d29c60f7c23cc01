import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import type { Hono } from 'hono';
import { handle } from 'hono/aws-lambda';
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
 * which share one shape. Hono's adapter puts the event in `env.event`, where the app finds the raw
 * path it routes on.
 */
export function createHttpHandler(app: Hono<HttpEnv>, options: HandlerOptions): LambdaHttpHandler {
  const serve = handle(app, { isContentTypeBinary });
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
        ((await serve(withRequestId(event) as never, context)) as APIGatewayProxyStructuredResultV2);
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
 * Every body is sent base64 except our own JSON: manifests must reach the client byte for byte
 * (a digest covers them), which a UTF-8 round trip does not promise for arbitrary bytes.
 */
function isContentTypeBinary(contentType: string): boolean {
  return !/^application\/json\s*(;|$)/i.test(contentType);
}

/** The API Gateway request id becomes the app's X-Request-Id, unless the client sent its own. */
function withRequestId(event: APIGatewayProxyEventV2): APIGatewayProxyEventV2 {
  return { ...event, headers: { 'x-request-id': event.requestContext.requestId, ...event.headers } };
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
