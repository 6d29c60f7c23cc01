/** The end of a registry: empties its bucket on stack deletion, and deletes the stack when its TTL is up. */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { createLambdaLogger, withInvocation } from '../lib/lambda/logging.ts';
import { maintenanceLogLevel, teardownSettingsOf } from '../lib/setup/maintenance.ts';
import { teardown, type TeardownEvent } from '../lib/teardown/teardown.ts';

const s3 = new S3Client({ maxAttempts: 5 });
const cloudformation = new CloudFormationClient({ maxAttempts: 5 });
const logger = createLambdaLogger(maintenanceLogLevel(process.env));
const settings = teardownSettingsOf(process.env);

export const handler = (event: TeardownEvent, context: Context) =>
  withInvocation({ awsRequestId: context.awsRequestId }, () =>
    teardown(
      { s3, cloudformation, logger, settings, remainingMs: () => context.getRemainingTimeInMillis() },
      event,
    ),
  );
