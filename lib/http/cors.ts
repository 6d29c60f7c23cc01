import { RegistryError } from '../oci/errors.ts';

/**
 * Which web pages may call the registry from a browser (CORS). Off unless origins are configured
 * (`--cors-origin`, BERTH_CORS_ORIGINS). `*` lets any page read responses but never with the
 * browser's credentials (cookies, cached HTTP auth): a page then sends its token itself, in
 * `Authorization`. Named origins are answered with their own origin and may send credentials.
 */
export interface CorsPolicy {
  /** `*`, or the exact origins (`https://ui.example.com`) allowed. */
  readonly origins: '*' | ReadonlySet<string>;
}

/** Response headers a page may read besides the CORS-safelisted ones: what registry clients use. */
export const EXPOSED_HEADERS = [
  'Docker-Content-Digest',
  'Link',
  'Location',
  'Range',
  'WWW-Authenticate',
  'Content-Range',
  'Docker-Distribution-Api-Version',
  'Docker-Upload-UUID',
  'OCI-Subject',
  'OCI-Filters-Applied',
  'X-Request-Id',
];

export const ALLOWED_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** Request headers a page may send: the registry API's (Authorization for tokens, Range for blobs). */
export const ALLOWED_HEADERS = [
  'Authorization',
  'Accept',
  'Content-Type',
  'Content-Range',
  'Range',
  'X-Request-Id',
];

/** How long a browser may reuse a preflight's answer, in seconds (Chromium caps it at 7200). */
const PREFLIGHT_MAX_AGE = 600;

/**
 * Parses a comma-separated list of origins: `*` alone, or `scheme://host[:port]` each, exactly as a
 * browser sends it in `Origin` (lower-case, no path, no trailing slash). Throws a message naming the
 * problem; an empty list means CORS is off.
 */
export function parseCorsOrigins(text: string): CorsPolicy | undefined {
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) return undefined;
  if (items.includes('*')) {
    if (items.length > 1) {
      throw new Error(
        `CORS origin "*" allows every page and cannot be combined with named origins (${items.filter((o) => o !== '*').join(', ')})`,
      );
    }
    return { origins: '*' };
  }
  for (const origin of items) checkOrigin(origin);
  return { origins: new Set(items) };
}

function checkOrigin(origin: string): void {
  let url: URL | undefined;
  try {
    url = new URL(origin);
  } catch {
    url = undefined;
  }
  const ok = url && (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === origin;
  if (!ok) {
    const hint =
      url && (url.protocol === 'http:' || url.protocol === 'https:') ? ` (did you mean ${url.origin}?)` : '';
    throw new Error(
      `CORS origin "${origin.slice(0, 200)}" must be written as a browser sends it: http(s)://host[:port], lower-case, with no path or trailing slash${hint}; or * alone`,
    );
  }
}

/** The `Access-Control-Allow-Origin` value for a request's Origin, or undefined when it is not allowed. */
function allowedOrigin(policy: CorsPolicy, origin: string | undefined): string | undefined {
  if (!origin) return undefined;
  if (policy.origins === '*') return '*';
  return policy.origins.has(origin) ? origin : undefined;
}

/** Whether a request is a CORS preflight: OPTIONS with Origin and Access-Control-Request-Method. */
export function isPreflight(req: Request): boolean {
  return (
    req.method === 'OPTIONS' && req.headers.has('Origin') && req.headers.has('Access-Control-Request-Method')
  );
}

/**
 * Answers a preflight: 204 with what the page may do when its origin is allowed; 403 DENIED naming
 * the origin when not; without a policy, 405 saying how to turn CORS on.
 */
export function preflight(req: Request, policy: CorsPolicy | undefined): Response {
  const origin = req.headers.get('Origin') ?? undefined;
  if (!policy) {
    throw new RegistryError(
      'UNSUPPORTED',
      'this registry does not answer browsers from other origins (CORS is off): start it with --cors-origin <origin> (BERTH_CORS_ORIGINS)',
      { status: 405, headers: { Allow: ALLOWED_METHODS.join(', ') } },
    );
  }
  const allowed = allowedOrigin(policy, origin);
  if (!allowed) {
    throw new RegistryError(
      'DENIED',
      `origin ${String(origin).slice(0, 200)} may not call this registry from a browser; add it with --cors-origin (BERTH_CORS_ORIGINS)`,
      { status: 403, detail: { origin: String(origin).slice(0, 200) } },
    );
  }
  const headers = new Headers({
    'Access-Control-Allow-Origin': allowed,
    'Access-Control-Allow-Methods': ALLOWED_METHODS.join(', '),
    'Access-Control-Allow-Headers': ALLOWED_HEADERS.join(', '),
    'Access-Control-Max-Age': String(PREFLIGHT_MAX_AGE),
  });
  if (allowed !== '*') {
    headers.set('Access-Control-Allow-Credentials', 'true');
    headers.set('Vary', 'Origin');
  }
  return new Response(null, { status: 204, headers });
}

/** Adds the CORS headers of an actual (non-preflight) response, errors included. */
export function decorate(headers: Headers, req: Request, policy: CorsPolicy | undefined): void {
  if (!policy) return;
  const allowed = allowedOrigin(policy, req.headers.get('Origin') ?? undefined);
  if (allowed !== '*') appendVary(headers, 'Origin');
  if (!allowed) return;
  headers.set('Access-Control-Allow-Origin', allowed);
  headers.set('Access-Control-Expose-Headers', EXPOSED_HEADERS.join(', '));
  if (allowed !== '*') headers.set('Access-Control-Allow-Credentials', 'true');
}

function appendVary(headers: Headers, name: string): void {
  const current = headers.get('Vary');
  if (!current) headers.set('Vary', name);
  else if (!current.split(',').some((v) => v.trim().toLowerCase() === name.toLowerCase()))
    headers.set('Vary', `${current}, ${name}`);
}
