/** The end of a registry: empties its bucket on stack deletion, and deletes the stack when its TTL is up. */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { createLambdaLogger, withInvocation } from '../lib/lambda/logging.ts';
import { teardown, type TeardownEvent } from '../lib/teardown/teardown.ts';

const env = process.env;
const s3 = new S3Client({ maxAttempts: 5 });
const cloudformation = new CloudFormationClient({ maxAttempts: 5 });
const logger = createLambdaLogger(env.BERTH_LOG_LEVEL === 'debug' ? 'debug' : 'info');
const settings = {
  bucket: env.BERTH_S3_BUCKET ?? '',
  ...(env.BERTH_STACK_ID && { stackId: env.BERTH_STACK_ID }),
  ...(env.BERTH_STACK_DELETION_ROLE && { deletionRoleArn: env.BERTH_STACK_DELETION_ROLE }),
  ...(env.BERTH_EXPIRES_AT && { expiresAt: new Date(env.BERTH_EXPIRES_AT) }),
};

export const handler = (event: TeardownEvent, context: Context) =>
  withInvocation({ awsRequestId: context.awsRequestId }, () =>
    teardown(
      { s3, cloudformation, logger, settings, remainingMs: () => context.getRemainingTimeInMillis() },
      event,
    ),
  );
