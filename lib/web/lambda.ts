import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { WebAssets } from './assets.ts';

/**
 * The web UI function (functions/ui.ts): API Gateway's `GET /` and `GET /ui/{proxy+}` routes,
 * answered from the files bundled beside it. It has no storage, no AWS SDK and no registry code,
 * so its cold start is a few milliseconds, and the registry function's is unchanged.
 */
export function createWebHandler(
  assets: WebAssets | undefined,
): (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2> {
  return async (event) => {
    const header = (name: string) => event.headers?.[name] ?? undefined;
    if (!assets) {
      return {
        statusCode: 500,
        headers: { 'Content-Type': 'text/plain' },
        body: 'the web UI files are missing from this function\n',
      };
    }
    const res = assets.serve(event.requestContext.http.method, event.rawPath, {
      acceptEncoding: header('accept-encoding'),
      ifNoneMatch: header('if-none-match'),
    });
    return {
      statusCode: res.status,
      headers: res.headers,
      body: Buffer.from(res.body).toString('base64'),
      isBase64Encoded: true,
    };
  };
}
