import type { LambdaClient } from '@aws-sdk/client-lambda';
import type { VerificationJob } from '../registry/direct-uploads.ts';

/**
 * Hands a verification to the verifier function (asynchronous invoke: Lambda queues the event,
 * retries a failed run twice, and the registry function answers at once). The job is tiny; the
 * verifier reads the session itself. The AWS SDK's Lambda client is loaded on the first dispatch,
 * not at init: only uploads above BERTH_VERIFY_SYNC_LIMIT ever need it.
 */
export function lambdaVerificationDispatch(
  functionName: string,
  region: string | undefined,
  client?: Pick<LambdaClient, 'send'>,
): (job: VerificationJob) => Promise<void> {
  let lambda: Promise<Pick<LambdaClient, 'send'>> | undefined;
  return async (job) => {
    const { InvokeCommand, LambdaClient } = await import('../aws/lambda.ts');
    lambda ??= Promise.resolve(client ?? new LambdaClient(region ? { region } : {}));
    await (
      await lambda
    ).send(
      new InvokeCommand({
        FunctionName: functionName,
        InvocationType: 'Event',
        Payload: new TextEncoder().encode(JSON.stringify(job)),
      }),
    );
  };
}
