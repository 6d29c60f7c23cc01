import { App, Validations } from 'aws-cdk-lib';
import cdkNag from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { acknowledgeFindings } from '../../infra/nag.ts';
import type { BerthProps } from '../../infra/props.ts';
import { BerthStack } from '../../infra/stack.ts';
import { NOW, placeholderBundles } from './synth.ts';

const bundlesDir = placeholderBundles();

/** Synthesizes with cdk-nag's AwsSolutions pack, as infra/app.ts does; returns what synthesis threw. */
function synthWithNag(props: Partial<BerthProps>, acknowledge: boolean): Error | undefined {
  const app = new App({ stackTraces: false, analyticsReporting: false });
  const stack = new BerthStack(app, 'berth-nag', { team: 'nag', bundlesDir, now: NOW, ...props });
  if (acknowledge) acknowledgeFindings(stack);
  Validations.of(app).addPlugins(new cdkNag.AwsSolutionsChecks(app));
  try {
    app.synth();
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

describe('cdk-nag AwsSolutions', () => {
  it('finds nothing unacknowledged in a stack with every option on', () => {
    const error = synthWithNag(
      {
        ttl: '2d',
        encryption: 'kms',
        alarmEmail: 'ops@example.com',
        domain: { domainName: 'registry.example.com', hostedZone: { id: 'Z0123', name: 'example.com' } },
        versioned: true,
        intelligentTiering: true,
        anonymousPull: ['public/*'],
      },
      true,
    );
    expect(error?.message).toBeUndefined();
  });

  it('does find the accepted findings when they are not acknowledged (the check runs)', () => {
    const error = synthWithNag({}, false);
    expect(error?.message).toMatch(/AwsSolutions-APIG4/);
    expect(error?.message).toMatch(/AwsSolutions-IAM5/);
  });
});
