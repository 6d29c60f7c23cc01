/** Deploy time: fills the auth secret with a signing key and the first administrator (a CDK custom resource). */
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { bootstrapAuth } from '../lib/auth/bootstrap.ts';
import { createLambdaLogger } from '../lib/lambda/logging.ts';

const client = new SecretsManagerClient({});
const logger = createLambdaLogger(process.env.BERTH_LOG_LEVEL === 'debug' ? 'debug' : 'info');

export const handler = (event: CloudFormationCustomResourceEvent) => bootstrapAuth(client, event, logger);
