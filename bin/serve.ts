import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, parseConfig } from '../lib/config/config.ts';
import { environmentHelp, flagHelp } from '../lib/config/docs.ts';
import { configFlags, configInput, environmentOf, flagInput } from '../lib/config/sources.ts';
import { createLogger } from '../lib/logging/logger.ts';
import type { RunningServer } from '../lib/server/local-registry.ts';
import { trustInstructions } from '../lib/server/tls.ts';
import { startLocalRegistry } from '../lib/setup/local-server.ts';

/** The help of `berth serve`, from the option table (lib/config/options.ts). */
export function serveUsage(): string {
  return `Options for serve (environment variable in brackets; flags win over the environment):
${flagHelp('serve')}
  --lambda              Serve the built Lambda bundle (dist/registry/index.mjs, \`npm run build\`)
                        behind a local API Gateway HTTP API, with AWS's limits; on the filesystem
                        store, blob GETs redirect to signed storage URLs the gateway serves, as to S3

Set in the environment only (the same for --lambda; some apply on AWS only):
${environmentHelp('serve')}
`;
}

/** `berth serve`: runs until SIGTERM or SIGINT. */
export async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...configFlags('serve'), lambda: { type: 'boolean' } },
  });
  const config = parseConfig(configInput(process.env, flagInput('serve', values)));
  if (values.lambda && (config.tlsCert || config.tlsSelfSigned)) {
    throw new ConfigError([
      'tls: the local gateway (--lambda) serves plain HTTP on loopback; leave out --tls-*',
    ]);
  }
  const logger = createLogger(config.logLevel);
  const server = values.lambda
    ? // The gateway emulator is loaded only for --lambda.
      await (await import('../lib/setup/gateway.ts')).startLambdaGateway(config, logger, registryBundle())
    : await startLocalRegistry(config, logger);
  logger.info('berth listening', {
    url: server.url,
    dataDir: config.dataDir,
    storage: config.storage,
    ...(config.proxyUpstream?.length ? { mirrorOf: environmentOf(config).BERTH_PROXY_UPSTREAM } : {}),
    ...(config.corsOrigins ? { corsOrigins: environmentOf(config).BERTH_CORS_ORIGINS } : {}),
    auth:
      config.authFile || config.authParameter
        ? 'on'
        : 'off: listening on loopback only, anyone on this machine can push and delete (--auth-file turns it on)',
  });
  const tls = 'tls' in server ? (server as RunningServer).tls : undefined;
  if (tls?.selfSigned) {
    process.stderr.write(
      trustInstructions(tls.selfSigned.caCertFile, tls.selfSigned.hosts, portOf(server.url)),
    );
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info('shutting down', { signal });
      void server.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  logger.info('stopped');
  return 0;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/**
 * The registry function's bundle: `dist/registry/index.mjs` from bin/serve.ts (tsx), or from the
 * bundled command that `npm start` runs, whose code is in dist/cli/ or (split) in dist/cli/chunks/.
 * The first that exists; the gateway says what to do when none does.
 */
function registryBundle(): string {
  const candidates = ['../dist/registry/index.mjs', '../registry/index.mjs', '../../registry/index.mjs'].map(
    (path) => fileURLToPath(new URL(path, import.meta.url)),
  );
  return candidates.find((path) => existsSync(path)) ?? candidates[0]!;
}
