import { RegistryError } from '../oci/errors.ts';

export type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'referrers'; name: string; digest: string }
  | { kind: 'direct'; name: string; id: string; action: 'status' | 'parts' | 'object' | 'complete' }
  | { kind: 'usage' }
  /** The web UI's read-only API (docs/web-ui.md). */
  | { kind: 'browse'; what: 'info' | 'repositories' }
  | { kind: 'browse-repository'; name: string; what: 'tags' | 'summary' }
  | { kind: 'browse-manifest'; name: string; reference: string; impact: boolean };

/**
 * The methods each route answers; anything else is 405 with an Allow header. Every route with a
 * GET answers HEAD too, with the GET's status and headers (routes not in NATIVE_HEAD run their GET).
 */
export const ALLOWED: Record<Route['kind'], readonly string[]> = {
  base: ['GET', 'HEAD'],
  catalog: ['GET', 'HEAD'],
  tags: ['GET', 'HEAD'],
  manifest: ['GET', 'HEAD', 'PUT', 'DELETE'],
  uploads: ['POST'],
  upload: ['GET', 'HEAD', 'PATCH', 'PUT', 'DELETE'],
  blob: ['GET', 'HEAD', 'DELETE'],
  referrers: ['GET', 'HEAD'],
  direct: ['GET', 'HEAD', 'POST'],
  usage: ['GET', 'HEAD'],
  browse: ['GET', 'HEAD'],
  'browse-repository': ['GET', 'HEAD'],
  'browse-manifest': ['GET', 'HEAD'],
};

/** Routes whose handlers answer HEAD themselves (cheaper than their GET: no body is read). */
export const NATIVE_HEAD: ReadonlySet<Route['kind']> = new Set(['base', 'manifest', 'blob']);

// Most specific first: a repository name may itself contain "blobs" or "manifests" components.
const PATTERNS: [RegExp, (m: RegExpExecArray) => Route][] = [
  [/^\/v2\/?$/, () => ({ kind: 'base' })],
  // The direct-upload extension (docs/upload-extension.md). No repository name component may start
  // with `_`, so `/_berth/` cannot be part of a name: these paths never shadow a spec route.
  [
    /^\/v2\/(.+)\/_berth\/v1\/uploads\/([^/]+)(?:\/(parts|object|complete))?$/,
    (m) => ({
      kind: 'direct',
      name: m[1]!,
      id: m[2]!,
      action: (m[3] as 'parts' | 'object' | 'complete' | undefined) ?? 'status',
    }),
  ],
  [
    /^\/v2\/(.+)\/_berth\/v1\/(tags|summary)$/,
    (m) => ({ kind: 'browse-repository', name: m[1]!, what: m[2] as 'tags' | 'summary' }),
  ],
  [
    /^\/v2\/(.+)\/_berth\/v1\/manifests\/([^/]+)(\/impact)?$/,
    (m) => ({ kind: 'browse-manifest', name: m[1]!, reference: m[2]!, impact: m[3] !== undefined }),
  ],
  [/^\/v2\/_catalog$/, () => ({ kind: 'catalog' })],
  [
    /^\/v2\/_berth\/v1\/(info|repositories)$/,
    (m) => ({ kind: 'browse', what: m[1] as 'info' | 'repositories' }),
  ],
  // Storage usage for cost reports (docs/gc.md); `_berth` cannot be a repository name either.
  [/^\/v2\/_berth\/v1\/usage$/, () => ({ kind: 'usage' })],
  [/^\/v2\/(.+)\/tags\/list$/, (m) => ({ kind: 'tags', name: m[1]! })],
  [/^\/v2\/(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [/^\/v2\/(.+)\/blobs\/uploads\/?$/, (m) => ({ kind: 'uploads', name: m[1]! })],
  [/^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, (m) => ({ kind: 'upload', name: m[1]!, id: m[2]! })],
  [/^\/v2\/(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
  [/^\/v2\/(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: 'referrers', name: m[1]!, digest: m[2]! })],
];

/**
 * Matches a raw (undecoded) request path. Percent-escapes are not decoded: nothing in the spec's
 * grammars needs them, so `%2e%2e` stays a NAME_INVALID name instead of becoming `..`.
 */
export function matchRoute(rawPath: string): Route | undefined {
  for (const [pattern, build] of PATTERNS) {
    const match = pattern.exec(rawPath);
    if (match) return build(match);
  }
  return undefined;
}

export function notFound(path: string): RegistryError {
  return new RegistryError(
    'UNSUPPORTED',
    `no registry API at ${path.slice(0, 200)}; the API lives under /v2/`,
    {
      status: 404,
    },
  );
}
