import type { Hono } from 'hono';
import { awsRegionOf, type Config } from '../config/config.ts';
import { createApp } from '../http/app.ts';
import type { HttpEnv } from '../http/context.ts';
import type { Logger } from '../logging/logger.ts';
import { SerializedHashStates } from '../registry/hashing.ts';
import type { RegistryStore } from '../registry/registry.ts';
import { openAuthStore } from '../auth/auth-store.ts';
import { loadAuth } from './auth.ts';
import { lambdaVerificationDispatch } from '../lambda/verification-dispatch.ts';
import { openStore } from './registry.ts';
import { invocationFields } from '../lambda/logging.ts';
import { loginMetricLine } from '../lambda/metrics.ts';
import { Browse } from '../browse/browse.ts';
import { browseSettingsOf } from './browse.ts';
import { immutableTagsOf, retentionOf } from './gc.ts';

/**
 * The registry as a Lambda runs it, and its store (for the web UI's read model and the janitor). The
 * next request of an upload may land in another container, so the running digest is serialized into
 * the session instead of kept in memory.
 */
export function createLambdaStore(config: Config, logger?: Logger): Promise<RegistryStore> {
  return openStore(config, {
    hashes: new SerializedHashStates(),
    // Large direct uploads are verified by the verifier function when there is one (on AWS); without
    // it (the local gateway), in the background of this process.
    ...(config.verifierFunction && {
      dispatch: lambdaVerificationDispatch(config.verifierFunction, awsRegionOf(config)),
    }),
    ...(logger && { logger }),
  });
}

/**
 * The app, with token authentication from the auth parameter (BERTH_AUTH_PARAMETER, on AWS) or an auth
 * file (BERTH_AUTH_FILE). A function on a public
 * endpoint must refuse strangers, so it does not start without one unless told it is a test.
 */
export async function createLambdaApp(
  config: Config,
  registryStore: RegistryStore,
  logger: Logger,
  writeMetric: false | ((line: string) => void) = config.logLevel === 'silent'
    ? false
    : (line) => process.stdout.write(line + '\n'),
): Promise<Hono<HttpEnv>> {
  const store = openAuthStore(config, awsRegionOf(config));
  if (!store && !config.insecureNoAuth) {
    throw new Error(
      'the registry function needs BERTH_AUTH_PARAMETER or BERTH_AUTH_FILE (accounts and signing key); BERTH_INSECURE_NO_AUTH=true runs it open, for tests only',
    );
  }
  const { registry } = registryStore;
  return createApp({
    registry,
    logger,
    // Responses cannot carry more than ~6 MB here: a blob miss is stored first, then redirected to.
    // The pull-through cache's code is loaded only when upstreams are configured (a shorter init).
    mirror:
      (config.proxyUpstream ?? []).length > 0
        ? (await import('./mirror.ts')).createMirror(config, registry, logger, 'fill')
        : undefined,
    auth: store
      ? await loadAuth(store, config.tokenTtlSeconds, logger, {
          // Failed and throttled logins become CloudWatch metrics (alarm on a guessing campaign).
          ...(writeMetric && {
            onLoginEvent: (event) => writeMetric(loginMetricLine(event, invocationFields())),
          }),
        })
      : undefined,
    redirect: { enabled: config.redirect, ttlSeconds: config.presignTtlSeconds },
    cors: config.corsOrigins,
    // The web UI's pages are served by a function of their own (functions/ui.ts); its API is here.
    browse: new Browse(
      registryStore,
      browseSettingsOf(config, { retention: retentionOf(config), immutable: immutableTagsOf(config) }),
    ),
  });
}
