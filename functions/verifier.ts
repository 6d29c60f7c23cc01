/** Verifies large direct uploads asynchronously (invoked by the registry function with an Event). */
import { lambdaConfig } from '../lib/lambda/config.ts';
import { createLambdaLogger } from '../lib/lambda/logging.ts';
import { createLambdaStore } from '../lib/lambda/registry.ts';
import { createVerifierHandler } from '../lib/lambda/verifier.ts';

// Built once per container, at init.
const config = lambdaConfig(process.env);
const logger = createLambdaLogger(config.logLevel);

export const handler = createVerifierHandler((await createLambdaStore(config, logger)).registry, logger);
