import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { RegistryError } from '../oci/errors.ts';
import { parseName } from '../oci/names.ts';
import type { HttpContext, HttpEnv, HttpOptions } from './context.ts';
import type { Route } from './route.ts';
import { rawPathOf } from './context.ts';
import { decorate, isPreflight, preflight } from './cors.ts';
import { errorResponse } from './errors.ts';
import { needOf } from './access.ts';
import { authorize, handleToken } from './auth.ts';
import { ALLOWED, NATIVE_HEAD, matchRoute, notFound } from './route.ts';
import { handleBlob } from './routes/blobs.ts';
import { handleCatalog, handleReferrers, handleTags } from './routes/listings.ts';
import { handleManifest } from './routes/manifests.ts';
import { handleUpload, handleUploadStart } from './routes/uploads.ts';
import { handleDirectUpload } from './routes/direct-uploads.ts';
import { handleUsage } from './routes/usage.ts';
import { BrowseRoutes } from './routes/browse.ts';
import { isWebPath, toResponse } from '../web/assets.ts';

const COMMON_HEADERS = {
  'Docker-Distribution-Api-Version': 'registry/2.0',
  'X-Content-Type-Options': 'nosniff',
};

/** The registry's HTTP API as one Hono app, served by the Node server, the Lambda handler and tests alike. */
export function createApp(options: HttpOptions): Hono<HttpEnv> {
  const app = new Hono<HttpEnv>();

  app.use('*', async (c, next) => {
    const started = performance.now();
    const requestId = c.req.header('X-Request-Id')?.slice(0, 64) || randomUUID();
    const log = options.logger.child({ requestId });
    c.set('requestId', requestId);
    c.set('log', log);
    try {
      await next();
    } catch (err) {
      c.res = renderFailure(c, err);
    }
    for (const [name, value] of Object.entries(COMMON_HEADERS)) c.res.headers.set(name, value);
    if (!isPreflight(c.req.raw)) decorate(c.res.headers, c.req.raw, options.cors);
    c.res.headers.set('X-Request-Id', requestId);
    log.info('request', {
      method: c.req.method,
      path: rawPathOf(c),
      ...queryOf(c),
      status: c.res.status,
      bytes: c.req.method === 'HEAD' ? 0 : Number(c.res.headers.get('Content-Length') ?? 0),
      durationMs: Math.round((performance.now() - started) * 10) / 10,
    });
  });

  app.onError((err, c) => renderFailure(c, err));
  const browse = new BrowseRoutes(options);
  app.all('*', (c) => dispatch(c, options, browse));
  return app;
}

function renderFailure(c: HttpContext, err: unknown): Response {
  // A client that hangs up mid-body is not a server fault: no 500, no error log.
  const failure = clientGone(c, err)
    ? new RegistryError('BLOB_UPLOAD_INVALID', 'the client disconnected before the request body was complete')
    : err;
  return errorResponse(failure, c.req.method, c.get('log'));
}

/** The client closed the connection mid-request (Node fails the body stream with ECONNRESET). */
function clientGone(c: HttpContext, err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return (
    code === 'ECONNRESET' ||
    (c.env?.incoming?.destroyed === true && c.env.incoming.complete !== true) ||
    c.req.raw.signal.aborted
  );
}

function queryOf(c: HttpContext): { query?: string } {
  const url = c.req.url;
  const at = url.indexOf('?');
  return at < 0 ? {} : { query: url.slice(at + 1, at + 1 + 500) };
}

/**
 * Routes the request. A HEAD on a route whose handler has no HEAD of its own runs the GET and
 * answers its status and headers without the body, so every GET route answers HEAD alike.
 */
async function dispatch(c: HttpContext, options: HttpOptions, browse: BrowseRoutes): Promise<Response> {
  const path = rawPathOf(c);
  const method = c.req.method;
  // A browser's preflight carries no credentials: answered before routing and authentication.
  if (isPreflight(c.req.raw)) return preflight(c.req.raw, options.cors);
  if (options.web && isWebPath(path)) {
    const headers = {
      acceptEncoding: c.req.header('Accept-Encoding'),
      ifNoneMatch: c.req.header('If-None-Match'),
    };
    return toResponse(options.web.serve(method, path, headers));
  }
  if (path === '/token' && options.auth) {
    if (method !== 'GET' && method !== 'POST' && method !== 'HEAD') {
      throw new RegistryError('UNSUPPORTED', `${method} is not supported on /token`, {
        status: 405,
        headers: { Allow: 'GET, HEAD, POST' },
      });
    }
    const response = await handleToken(c, options.auth);
    return method === 'HEAD' ? withoutBody(response) : response;
  }
  const route = matchRoute(path);
  if (route && method === 'HEAD' && !NATIVE_HEAD.has(route.kind) && ALLOWED[route.kind].includes('GET')) {
    c.set('method', 'GET');
    return withoutBody(await routeRequest(c, options, path, route, browse));
  }
  return routeRequest(c, options, path, route, browse);
}

/** The status and headers of a GET's response (Content-Length included), for a HEAD. */
function withoutBody(response: Response): Response {
  void response.body?.cancel();
  return new Response(null, { status: response.status, headers: response.headers });
}

async function routeRequest(
  c: HttpContext,
  options: HttpOptions,
  path: string,
  route: Route | undefined,
  browse: BrowseRoutes,
): Promise<Response> {
  const method = c.req.method;
  if (!route) throw notFound(path);
  const allowed = ALLOWED[route.kind];
  if (!allowed.includes(method)) {
    throw new RegistryError('UNSUPPORTED', `${method} is not supported on ${path.slice(0, 200)}`, {
      status: 405,
      headers: { Allow: allowed.join(', ') },
    });
  }
  const need = needOf(route, method, c.req.query('from'));
  c.set('caller', options.auth ? await authorize(c, options.auth, need) : undefined);
  if (need.kind === 'repository' && need.action !== 'pull')
    options.mirror?.refuseWrites(need.name, need.action);
  switch (route.kind) {
    case 'base':
      return new Response(method === 'HEAD' ? null : '{}', {
        status: 200,
        headers: { 'Content-Type': 'application/json', 'Content-Length': '2' },
      });
    case 'catalog':
      return handleCatalog(c, options);
    case 'tags':
      return handleTags(c, options, parseName(route.name));
    case 'manifest':
      return handleManifest(c, options, parseName(route.name), route.reference);
    case 'uploads':
      return handleUploadStart(c, options, parseName(route.name));
    case 'upload':
      return handleUpload(c, options, parseName(route.name), route.id);
    case 'blob':
      return handleBlob(c, options, parseName(route.name), route.digest);
    case 'referrers':
      return handleReferrers(c, options, parseName(route.name), route.digest);
    case 'direct':
      return handleDirectUpload(c, options, parseName(route.name), route.id, route.action);
    case 'usage':
      return handleUsage(options);
    case 'browse':
      return route.what === 'info' ? browse.info(c) : browse.repositories(c);
    case 'browse-repository': {
      const name = parseName(route.name);
      return route.what === 'tags' ? browse.tags(c, name) : browse.summary(c, name);
    }
    case 'browse-manifest': {
      const name = parseName(route.name);
      return route.impact
        ? browse.impact(c, name, route.reference)
        : browse.manifest(c, name, route.reference);
    }
  }
}
