/** Deploy time: creates and fills the auth parameters (signing key, first administrator); a CDK custom resource. */
import { SSMClient } from '@aws-sdk/client-ssm';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { bootstrapAuth } from '../lib/auth/bootstrap.ts';
import { createLambdaLogger } from '../lib/lambda/logging.ts';
import { maintenanceLogLevel } from '../lib/setup/maintenance.ts';

const client = new SSMClient({ maxAttempts: 5 });
const logger = createLambdaLogger(maintenanceLogLevel(process.env));

export const handler = (event: CloudFormationCustomResourceEvent) => bootstrapAuth(client, event, logger);
