/**
 * The CDK app (`npx cdk synth|deploy|destroy` from the repository root; see docs/deployment.md).
 * Bundles the functions first, so what is deployed is the code in this checkout.
 */
import { App, Validations } from 'aws-cdk-lib';
import cdkNag from 'cdk-nag';
import { resolve } from 'node:path';
import { bundleFunctions } from '../build/bundle.ts';
import { propsFromContext } from './context.ts';
import { acknowledgeFindings } from './nag.ts';
import { BerthStack } from './stack.ts';

const app = new App();
const context = (key: string): unknown => app.node.tryGetContext(key);
const bundlesDir = resolve(String(context('bundles') ?? 'dist'));
if (context('bundles') === undefined) await bundleFunctions(bundlesDir);

const props = propsFromContext(context, bundlesDir);
const stack = new BerthStack(app, `berth-${props.team}`, {
  ...props,
  description: `Berth OCI registry for team ${props.team}`,
});
acknowledgeFindings(stack);
Validations.of(app).addPlugins(new cdkNag.AwsSolutionsChecks(app, { verbose: true }));
