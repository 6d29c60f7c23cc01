import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from '../logging/logger.ts';
import type { ConnectionLimits } from '../server/connections.ts';
import { loadHandler } from './invoke.ts';
import { startGateway, type GatewayRoute, type RunningGateway } from './http-api.ts';
import type { LocalStorage } from './storage.ts';
import { WEB_ROUTES } from '../web/routes.ts';

export interface BundleGatewayOptions {
  /** The built registry function (dist/registry/index.mjs); the ui function is looked for beside it. */
  readonly bundlePath: string;
  /**
   * The variables the function reads its configuration from, as on AWS: written into this
   * process's environment before the bundle is imported.
   */
  readonly env: Readonly<Record<string, string>>;
  readonly host: string;
  readonly port: number;
  readonly limits: ConnectionLimits;
  readonly logger: Logger;
  /** The filesystem store the gateway serves signed URLs of, standing in for S3. */
  readonly storage?: LocalStorage;
}

/**
 * `berth serve --lambda`: the built registry bundle behind the local gateway (lib/setup/gateway.ts
 * says with what).
 */
export async function startBundleGateway(options: BundleGatewayOptions): Promise<RunningGateway> {
  const { bundlePath } = options;
  if (!existsSync(bundlePath))
    throw new Error(`no Lambda bundle at ${bundlePath}: run \`npm run build\` first`);
  Object.assign(process.env, options.env);
  const handler = await loadHandler(bundlePath);
  return startGateway({
    handler,
    routes: await webRoutes(bundlePath),
    host: options.host,
    port: options.port,
    logger: options.logger,
    limits: options.limits,
    ...(options.storage && { storage: options.storage }),
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
