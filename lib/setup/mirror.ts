import { parameterRegion, ssmClient, type SsmClient } from '../auth/auth-store.ts';
import { awsRegionOf, type Config } from '../config/config.ts';
import type { Logger } from '../logging/logger.ts';
import type { Registry } from '../registry/registry.ts';
import { Mirror } from '../mirror/mirror.ts';
import { UpstreamClient, type CredentialSource, type UpstreamCredentials } from '../mirror/upstream.ts';

/** How long a parameter's credentials are used before it is read again (so a rotation is picked up). */
const SECRET_REFRESH_MS = 15 * 60 * 1000;

/**
 * The pull-through cache the configuration asks for, or undefined without upstreams. `stream` for
 * the local server, `fill` for Lambda (see Mirror).
 */
export function createMirror(
  config: Config,
  registry: Registry,
  logger: Logger,
  mode: 'stream' | 'fill',
): Mirror | undefined {
  const specs = config.proxyUpstream ?? [];
  if (specs.length === 0) return undefined;
  const credentials = credentialSource(config, logger);
  return new Mirror({
    registry,
    upstreams: specs.map((spec) => new UpstreamClient(spec, credentials, logger)),
    tagTtlMs: config.proxyTagTtlSeconds * 1000,
    mode,
    fillTimeoutMs: config.proxyFillSeconds * 1000,
    maxBlobSize: config.maxBlobSize,
    partSize: config.partSize,
    logger,
  });
}

/**
 * Upstream credentials from BERTH_PROXY_USERNAME/PASSWORD, or from the BERTH_PROXY_PARAMETER SSM
 * SecureString (read on first use, then every 15 minutes; the SDK's SSM client is loaded then).
 */
export function credentialSource(
  config: Config,
  logger: Logger,
  connect: (region: string) => () => Promise<SsmClient> = ssmClient,
): CredentialSource {
  if (config.proxyUsername && config.proxyPassword) {
    const fixed = { username: config.proxyUsername, password: config.proxyPassword };
    return async () => fixed;
  }
  const name = config.proxyParameter;
  if (!name) return async () => undefined;
  const client = connect(parameterRegion(name) ?? awsRegionOf(config));
  let ssm: Promise<SsmClient> | undefined;
  let cached: { value: UpstreamCredentials; readAt: number } | undefined;
  return async () => {
    if (cached && Date.now() - cached.readAt < SECRET_REFRESH_MS) return cached.value;
    try {
      ssm ??= client();
      const { GetParameterCommand } = await import('../aws/ssm.ts');
      const out = await (await ssm).send(new GetParameterCommand({ Name: name, WithDecryption: true }));
      cached = { value: parseSecret(out.Parameter?.Value), readAt: Date.now() };
      return cached.value;
    } catch (err) {
      // The name of the parameter is no secret; its value never reaches a log line.
      logger.error('the upstream credentials parameter could not be read', {
        parameter: name,
        error: err instanceof Error ? err.name : typeof err,
      });
      if (cached) return cached.value;
      throw new Error('the upstream credentials parameter could not be read', { cause: err });
    }
  };
}

function parseSecret(text: string | undefined): UpstreamCredentials {
  let value: unknown;
  try {
    value = JSON.parse(text ?? '');
  } catch {
    throw new Error('the upstream credentials parameter is not JSON');
  }
  const { username, password } = (value ?? {}) as { username?: unknown; password?: unknown };
  if (typeof username !== 'string' || typeof password !== 'string' || !username || !password) {
    throw new Error('the upstream credentials parameter must be {"username": "...", "password": "..."}');
  }
  return { username, password };
}
