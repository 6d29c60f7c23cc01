import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { createLambdaLogger } from '../../lib/lambda/logging.ts';
import { lambdaVerificationDispatch } from '../../lib/lambda/verification-dispatch.ts';
import { createVerifierHandler } from '../../lib/lambda/verifier.ts';
import type { Registry } from '../../lib/registry/registry.ts';

const context = { awsRequestId: 'req-1' } as Context;

describe('the verifier function', () => {
  it('is invoked asynchronously (an Event) with the job', async () => {
    const lambda = mockClient(LambdaClient);
    lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
    const dispatch = lambdaVerificationDispatch('berth-verifier', 'eu-west-1');
    await dispatch({ repo: 'team/app', id: 'abc', token: 't' });
    const call = lambda.commandCalls(InvokeCommand)[0]!;
    // The client is made on the first dispatch, in the region the configuration names.
    expect(await (call.thisValue as LambdaClient).config.region()).toBe('eu-west-1');
    const input = call.args[0].input;
    expect(input.FunctionName).toBe('berth-verifier');
    expect(input.InvocationType).toBe('Event');
    expect(JSON.parse(new TextDecoder().decode(input.Payload as Uint8Array))).toEqual({
      repo: 'team/app',
      id: 'abc',
      token: 't',
    });
    lambda.restore();
  });

  it('runs the job, logs the outcome, and rethrows a failure so that Lambda retries it', async () => {
    const lines: string[] = [];
    const logger = createLambdaLogger('info', (line) => lines.push(line));
    let fail = false;
    const registry = {
      direct: {
        verify: async () => {
          if (fail) throw new Error('S3 unavailable');
          return 'verified' as const;
        },
      },
    } as unknown as Registry;
    const handler = createVerifierHandler(registry, logger);
    expect((await handler({ repo: 'team/app', id: 'abc', token: 't' }, context)).outcome).toBe('verified');
    expect(JSON.parse(lines[0]!)).toMatchObject({ msg: 'verification finished', awsRequestId: 'req-1' });
    fail = true;
    await expect(handler({ repo: 'team/app', id: 'abc', token: 't' }, context)).rejects.toThrow(
      'S3 unavailable',
    );
    expect((await handler({ something: 'else' }, context)).outcome).toBe('skipped');
  });
});
