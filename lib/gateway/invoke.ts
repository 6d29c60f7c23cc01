import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';

/** A function handler as the gateway calls it; results are checked, so any shape is accepted. */
export type HttpFunction = (event: APIGatewayProxyEventV2, context: Context) => Promise<unknown>;

/** Imports a built bundle's `handler`, as the Lambda runtime would (`index.handler`). */
export async function loadHandler(bundlePath: string): Promise<HttpFunction> {
  const module = (await import(pathToFileURL(bundlePath).href)) as { handler?: unknown };
  if (typeof module.handler !== 'function') throw new Error(`${bundlePath} exports no handler function`);
  return module.handler as HttpFunction;
}

/** The Lambda context the runtime passes: ids, names, and the time left before the deadline. */
export function lambdaContext(functionName: string, timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  const unsupported = () => {
    throw new Error('callback-style completion is not supported; return a promise');
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}
