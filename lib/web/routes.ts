/**
 * The HTTP API routes that reach the web UI function instead of the registry's `$default` route
 * (infra/api.ts creates them; the local gateway, lib/gateway/local.ts, follows the same list).
 */
export const WEB_ROUTES = ['GET /', 'GET /ui/{proxy+}'] as const;
