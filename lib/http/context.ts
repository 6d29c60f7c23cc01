import type { Context } from 'hono';
import type { Accounts } from '../auth/accounts.ts';
import type { Access } from '../auth/scope.ts';
import type { TokenService } from '../auth/tokens.ts';
import type { Logger } from '../logging/logger.ts';
import type { Mirror } from '../mirror/mirror.ts';
import type { Registry } from '../registry/registry.ts';
import type { CorsPolicy } from './cors.ts';
import type { Browse } from '../browse/browse.ts';
import type { WebAssets } from '../web/assets.ts';

/** Token authentication (the Docker token spec): the token service and the accounts it serves. */
export interface HttpAuth {
  readonly tokens: TokenService;
  readonly accounts: Accounts;
}

/** Who a request acts as, once its token is verified. */
export interface Caller {
  readonly subject: string;
  readonly access: readonly Access[];
}

export interface HttpOptions {
  /** Token authentication; absent, every request is allowed (a loopback-only server). */
  readonly auth?: HttpAuth;
  readonly registry: Registry;
  readonly logger: Logger;
  /** Answer blob GETs with a redirect to a presigned storage URL, when the store can make one. */
  readonly redirect: { readonly enabled: boolean; readonly ttlSeconds: number };
  /** The pull-through cache, when upstreams are configured: mirrored repositories read through it. */
  readonly mirror?: Mirror;
  /** Which browser origins may call the API (CORS); absent, none (preflights get 405). */
  readonly cors?: CorsPolicy;
  /**
   * The web UI's read model and what it tells about this registry (lib/browse), built by the caller
   * with the registry's store: the routes themselves never touch storage.
   */
  readonly browse: Browse;
  /** The web UI's files, served at `/` and `/ui/` (the local server; on AWS a function of its own serves them). */
  readonly web?: WebAssets;
}

/** What the runtime adapters put in Hono's `env`: the raw request, to route on the undecoded path. */
export interface HttpBindings {
  incoming?: { url?: string; destroyed?: boolean; complete?: boolean; socket?: { remoteAddress?: string } };
  event?: { rawPath?: string; requestContext?: { http?: { sourceIp?: string } } };
}

export interface HttpVariables {
  requestId: string;
  log: Logger;
  /** Who the request acts as; undefined when authentication is off. */
  caller: Caller | undefined;
  /** The method a handler serves: GET for a HEAD on a route that answers HEAD with its GET. */
  method: string;
}

export type HttpEnv = { Bindings: HttpBindings; Variables: HttpVariables };
export type HttpContext = Context<HttpEnv>;

/** The path exactly as the client sent it (not normalized, not decoded), where the runtime keeps it. */
export function rawPathOf(c: HttpContext): string {
  const raw = c.env?.incoming?.url ?? c.env?.event?.rawPath;
  if (raw !== undefined) return raw.split('?')[0] ?? raw;
  return new URL(c.req.url).pathname;
}

/** The method the handler serves (see HttpVariables.method). */
export function methodOf(c: HttpContext): string {
  return c.get('method') ?? c.req.method;
}
