import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config/config.ts';
import { environmentOf } from '../config/sources.ts';
import type { Logger } from '../logging/logger.ts';
import { connectionLimits } from '../server/connections.ts';
import { FilesystemDriver } from '../storage/filesystem/index.ts';
import { LocalStorageUrls } from '../storage/local-urls.ts';
import { loadHandler } from './invoke.ts';
import { startGateway, type GatewayRoute, type RunningGateway } from './http-api.ts';
import type { LocalStorage } from './storage.ts';
import { WEB_ROUTES } from '../web/routes.ts';

/**
 * `berth serve --lambda`: the built registry bundle behind the local gateway, on the address the
 * configuration names. The bundle reads its settings from the environment, as on AWS, so the
 * parsed configuration (flags included) is written there before it is imported.
 */
export async function startLambdaGateway(
  config: Config,
  logger: Logger,
  bundlePath: string,
): Promise<RunningGateway> {
  if (!existsSync(bundlePath))
    throw new Error(`no Lambda bundle at ${bundlePath}: run \`npm run build\` first`);
  // On AWS blob GETs are redirected to S3, beyond the 6 MB a Lambda response may carry. On the
  // filesystem store the gateway stands in for S3: it serves signed storage URLs, and the function
  // signs them with a key made here (BERTH_LOCAL_STORAGE_KEY).
  let storage: LocalStorage | undefined;
  let storageEnv = {};
  if (config.storage === 'filesystem') {
    const key = randomBytes(32).toString('hex');
    storage = {
      driver: new FilesystemDriver({ root: config.dataDir }),
      urls: LocalStorageUrls.fromHex(key),
    };
    storageEnv = { BERTH_LOCAL_STORAGE_KEY: key };
  }
  if (!config.redirect) {
    logger.warn(
      'blob GETs stream through the function (BERTH_REDIRECT=off): blobs above 6 MB get 502, as they would on AWS',
    );
  }
  // The gateway listens only where `berth serve` allows, so without an auth file it is on loopback.
  Object.assign(
    process.env,
    // The listening address is the gateway's, not the function's.
    environmentOf(config, ['host', 'port']),
    storageEnv,
    config.authFile || config.authParameter ? {} : { BERTH_INSECURE_NO_AUTH: 'true' },
  );
  const handler = await loadHandler(bundlePath);
  return startGateway({
    handler,
    routes: await webRoutes(bundlePath),
    host: config.host,
    port: config.port,
    logger,
    limits: connectionLimits(config, logger),
    ...(storage && { storage }),
  });
}

/**
 * The web UI's routes, to the ui function built beside the registry's (dist/ui/index.mjs), as the
 * stack routes them (infra/api.ts, WEB_ROUTES). Without that bundle, those paths reach the registry.
 */
async function webRoutes(registryBundle: string): Promise<GatewayRoute[]> {
  const bundle = join(dirname(dirname(registryBundle)), 'ui', 'index.mjs');
  if (!existsSync(bundle)) return [];
  const handler = await loadHandler(bundle);
  return WEB_ROUTES.map((key) => {
    const [method, path] = key.split(' ') as [string, string];
    return { method, path: path.replace('{proxy+}', ''), handler, functionName: 'ui' };
  });
}
