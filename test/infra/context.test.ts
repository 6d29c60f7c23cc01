import { describe, expect, it } from 'vitest';
import { propsFromContext } from '../../infra/context.ts';

const fromContext = (values: Record<string, unknown>) =>
  propsFromContext((key) => values[key], '/tmp/bundles');

describe('stack options from CDK context', () => {
  it('takes the SSM parameter for upstream credentials and a topic to page', () => {
    expect(
      fromContext({
        proxyUpstreams: 'https://registry-1.docker.io',
        proxyParameter: '/team/hub-credentials',
        alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:pager',
      }),
    ).toMatchObject({
      proxyUpstreams: ['https://registry-1.docker.io'],
      proxyParameter: '/team/hub-credentials',
      alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:pager',
    });
  });

  it('refuses the options that were replaced, rather than deploying something else than asked', () => {
    expect(() => fromContext({ proxySecretArn: 'arn:aws:secretsmanager:eu-west-1:1:secret:x' })).toThrow(
      /replaced by proxyParameter/,
    );
    expect(() => fromContext({ alarms: 'true' })).toThrow(/give alarmEmail or alarmTopicArn/);
  });
});
