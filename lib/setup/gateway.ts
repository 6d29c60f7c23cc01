import { randomBytes } from 'node:crypto';
import type { Config } from '../config/config.ts';
import { environmentOf } from '../config/sources.ts';
import { startBundleGateway } from '../gateway/local.ts';
import type { RunningGateway } from '../gateway/http-api.ts';
import type { LocalStorage } from '../gateway/storage.ts';
import type { Logger } from '../logging/logger.ts';
import { connectionLimits } from '../server/connections.ts';
import { FilesystemDriver } from '../storage/filesystem/index.ts';
import { LocalStorageUrls } from '../storage/local-urls.ts';

/**
 * `berth serve --lambda`: the built registry bundle behind the local gateway, on the address the
 * configuration names. The bundle reads its settings from the environment, as on AWS, so the
 * parsed configuration (flags included) is written there for it.
 */
export async function startLambdaGateway(
  config: Config,
  logger: Logger,
  bundlePath: string,
): Promise<RunningGateway> {
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
  return startBundleGateway({
    bundlePath,
    env: {
      // The listening address is the gateway's, not the function's.
      ...environmentOf(config, ['host', 'port']),
      ...storageEnv,
      // The gateway listens only where `berth serve` allows, so without an auth file it is on loopback.
      ...(config.authFile || config.authParameter ? {} : { BERTH_INSECURE_NO_AUTH: 'true' }),
    },
    host: config.host,
    port: config.port,
    limits: connectionLimits(config, logger),
    logger,
    ...(storage && { storage }),
  });
}
