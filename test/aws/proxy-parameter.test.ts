import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { lambdaConfig } from '../../lib/config/lambda.ts';
import { createLambdaLogger } from '../../lib/lambda/logging.ts';
import { credentialSource } from '../../lib/setup/mirror.ts';

const ssm = mockClient(SSMClient);
afterEach(() => ssm.reset());

const config = (env: Record<string, string> = {}) =>
  lambdaConfig({
    BERTH_S3_BUCKET: 'team-registry',
    BERTH_PROXY_UPSTREAM: 'https://registry-1.docker.io',
    BERTH_PROXY_PARAMETER: '/berth/hub-credentials',
    AWS_REGION: 'eu-west-1',
    ...env,
  });

describe('upstream credentials from an SSM parameter (BERTH_PROXY_PARAMETER)', () => {
  it('reads the SecureString decrypted, in the AWS region, once per 15 minutes', async () => {
    ssm.on(GetParameterCommand).resolves({
      Parameter: { Value: JSON.stringify({ username: 'hub-user', password: 'hub-token-123' }), Version: 1 },
    });
    const lines: string[] = [];
    const source = credentialSource(
      config({ BERTH_AWS_REGION: 'eu-central-1', BERTH_S3_REGION: 'us-east-2' }),
      createLambdaLogger('debug', (line) => lines.push(line)),
    );
    expect(await source()).toEqual({ username: 'hub-user', password: 'hub-token-123' });
    expect(await source()).toEqual({ username: 'hub-user', password: 'hub-token-123' });
    const calls = ssm.commandCalls(GetParameterCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toEqual({ Name: '/berth/hub-credentials', WithDecryption: true });
    // BERTH_AWS_REGION, not the bucket's region.
    expect(await (calls[0]!.thisValue as SSMClient).config.region()).toBe('eu-central-1');
    expect(lines.join('\n')).not.toContain('hub-token-123');
  });

  it('fails with a message naming the parameter, never its value, when it is missing or malformed', async () => {
    const lines: string[] = [];
    const logger = createLambdaLogger('info', (line) => lines.push(line));
    ssm.on(GetParameterCommand).rejects(new ParameterNotFound({ message: 'not found', $metadata: {} }));
    await expect(credentialSource(config(), logger)()).rejects.toThrow(
      'the upstream credentials parameter could not be read',
    );
    expect(lines.join('\n')).toContain('/berth/hub-credentials');
    ssm.reset();
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: '{"username":"u","pass":"s3cret-value"}' } });
    const source = credentialSource(config(), logger);
    await expect(source()).rejects.toThrow('could not be read');
    expect(lines.join('\n')).not.toContain('s3cret-value');
  });
});
