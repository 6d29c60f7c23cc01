import { RegistryError } from '../../oci/errors.ts';
import { parseDigest } from '../../oci/digest.ts';
import { MediaType } from '../../oci/media-types.ts';
import type { RepositoryName } from '../../oci/names.ts';
import type { NamePage } from '../../registry/listing.ts';
import type { HttpContext, HttpOptions } from '../context.ts';
import { allowedActions } from '../../auth/grants.ts';
import type { Caller } from '../context.ts';

/** Pages larger than this are cut short (with a Link to the rest): bounded work per request. */
export const MAX_PAGE = 10_000;

/** GET `/v2/<name>/tags/list?n=&last=`. */
export async function handleTags(
  c: HttpContext,
  options: HttpOptions,
  repo: RepositoryName,
): Promise<Response> {
  const paging = pagingOf(c);
  const page = await options.registry.listTags(repo, paging);
  return listing({ name: repo, tags: page.names }, page, paging, `/v2/${repo}/tags/list`);
}

/** GET `/v2/_catalog?n=&last=`. */
export async function handleCatalog(c: HttpContext, options: HttpOptions): Promise<Response> {
  const paging = pagingOf(c);
  const page = await options.registry.catalog(paging);
  const visible = await catalogFilter(c, options);
  const names = visible ? page.names.filter(visible) : page.names;
  return listing(
    { repositories: names },
    { names, more: page.more, last: page.names.at(-1) },
    paging,
    '/v2/_catalog',
  );
}

/**
 * With authentication on, the catalog shows only the repositories the caller may pull, unless its
 * token carries `registry:catalog:*`.
 */
export async function catalogFilter(
  c: HttpContext,
  options: HttpOptions,
): Promise<((name: string) => boolean) | undefined> {
  const caller = c.get('caller');
  if (!caller || !options.auth) return undefined;
  if (hasCatalogGrant(caller)) return undefined;
  const { grants } = await options.auth.accounts.permissionsOf(caller.subject);
  return (name) => allowedActions(grants, name).has('pull');
}

/** Whether the caller's token carries `registry:catalog:*` (every repository, registry-wide reports). */
export function hasCatalogGrant(caller: Caller): boolean {
  return caller.access.some((a) => a.type === 'registry' && a.name === 'catalog' && a.actions.includes('*'));
}

/** GET `/v2/<name>/referrers/<digest>?artifactType=`: an OCI index, empty for an unknown subject. */
export async function handleReferrers(
  c: HttpContext,
  options: HttpOptions,
  repo: RepositoryName,
  digestParam: string,
): Promise<Response> {
  const subject = parseDigest(digestParam);
  const artifactType = c.req.query('artifactType') || undefined;
  const after = c.req.query('last') || undefined;
  const page = await options.registry.referrers.list(repo, subject, { artifactType, after });
  const headers: Record<string, string> = { 'Content-Type': MediaType.OciIndex };
  if (artifactType !== undefined) headers['OCI-Filters-Applied'] = 'artifactType';
  if (page.next) {
    const query = new URLSearchParams({ ...(artifactType ? { artifactType } : {}), last: page.next });
    headers.Link = `</v2/${repo}/referrers/${subject.digest}?${query}>; rel="next"`;
  }
  return jsonResponse(
    { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: page.descriptors },
    headers,
  );
}

interface Paging {
  n?: number;
  last?: string;
}

function pagingOf(c: HttpContext): Paging {
  const nParam = c.req.query('n');
  const last = c.req.query('last') || undefined;
  if (nParam === undefined || nParam === '') return { last };
  if (!/^\d{1,9}$/.test(nParam)) {
    throw new RegistryError(
      'PAGINATION_NUMBER_INVALID',
      `n must be a whole number from 0 to ${MAX_PAGE}, not "${nParam.slice(0, 20)}"`,
      {
        detail: { n: nParam.slice(0, 20) },
      },
    );
  }
  return { n: Math.min(Number(nParam), MAX_PAGE), last };
}

function jsonResponse(body: object, headers: Record<string, string>): Response {
  const text = JSON.stringify(body);
  return new Response(text, {
    status: 200,
    headers: { ...headers, 'Content-Length': String(Buffer.byteLength(text)) },
  });
}

function listing(body: object, page: NamePage & { last?: string }, paging: Paging, path: string): Response {
  const headers: Record<string, string> = { 'Content-Type': 'application/json; charset=utf-8' };
  const last = page.last ?? page.names[page.names.length - 1];
  if (page.more && last !== undefined) {
    const query = new URLSearchParams({ n: String(paging.n ?? page.names.length), last });
    headers.Link = `<${path}?${query}>; rel="next"`;
  }
  return jsonResponse(body, headers);
}
