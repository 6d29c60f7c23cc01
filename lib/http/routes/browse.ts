import {
  allowedActions,
  matchesPattern,
  REPOSITORY_ACTIONS,
  type RepositoryAction,
} from '../../auth/grants.ts';
import { immutableRuleFor, retentionFor, describeImmutableRule } from '../../registry/tag-policy.ts';
import { RegistryError } from '../../oci/errors.ts';
import { parseReference, type RepositoryName } from '../../oci/names.ts';
import type { HttpContext, HttpOptions } from '../context.ts';
import { catalogFilter, hasCatalogGrant } from './listings.ts';

/** The web UI's pages are small: at most this many rows per request. */
export const BROWSE_MAX_PAGE = 100;
const BROWSE_DEFAULT_PAGE = 50;

/**
 * The web UI's read-only JSON API under `/v2/_berth/v1/` and `/v2/<name>/_berth/v1/`
 * (docs/web-ui.md): repositories with tag counts, tags with summaries, a manifest's details, what a
 * delete would untag, and the registry's information. Authorized like the registry API (access.ts);
 * every answer depends on the caller, so none is cached.
 */
export class BrowseRoutes {
  constructor(private readonly options: HttpOptions) {}

  private get settings() {
    return this.options.browse.settings;
  }

  /** `GET /v2/_berth/v1/info`: who the caller is and what the registry is; operations for admins. */
  async info(c: HttpContext): Promise<Response> {
    const caller = c.get('caller');
    const admin = this.isAdmin(c);
    const { name, expiresAt } = this.settings;
    const body = {
      ...(name && { name }),
      ...(expiresAt && { expiresAt }),
      authentication: this.options.auth !== undefined,
      account: caller ? caller.subject || null : null,
      admin,
      ...(admin && {
        operations: {
          version: this.settings.version,
          storage: this.settings.storage,
          retention: this.settings.retention,
          immutableTags: this.settings.immutable.map(describeImmutableRule),
          lastGc: (await this.options.browse.lastGc()) ?? null,
          usageAt: (await this.options.browse.usageAt()) ?? null,
        },
      }),
    };
    return json(body);
  }

  /** `GET /v2/_berth/v1/repositories?n=&last=&q=`. */
  async repositories(c: HttpContext): Promise<Response> {
    const n = pageSize(c);
    const last = c.req.query('last') || undefined;
    const query = c.req.query('q')?.trim().slice(0, 255) || undefined;
    const visible = await catalogFilter(c, this.options);
    const page = await this.options.browse.repositories({ n, last, query, visible });
    const headers: Record<string, string> = {};
    if (page.next !== undefined) {
      const params = new URLSearchParams({ n: String(n), last: page.next, ...(query && { q: query }) });
      headers.Link = `</v2/_berth/v1/repositories?${params}>; rel="next"`;
    }
    return json(page, headers);
  }

  /** `GET /v2/<name>/_berth/v1/summary`: counts, rules that apply, and what the caller may do. */
  async summary(c: HttpContext, repo: RepositoryName): Promise<Response> {
    const row = await this.options.browse.repository(repo);
    if (!row) {
      throw new RegistryError('NAME_UNKNOWN', `repository ${repo} is not known to this registry`);
    }
    const retention = retentionFor(this.settings.retention, repo);
    const immutable = this.settings.immutable
      .filter((rule) => matchesPattern(rule.repositories, repo))
      .map(describeImmutableRule);
    return json({
      ...row,
      access: await this.actionsOf(c, repo),
      mirror: this.options.mirror?.upstreamOf(repo) !== undefined,
      ...(retention && { retention }),
      immutableTags: immutable,
    });
  }

  /** `GET /v2/<name>/_berth/v1/tags?n=&last=`: tags with digest, kind, size, time and platforms. */
  async tags(c: HttpContext, repo: RepositoryName): Promise<Response> {
    const n = pageSize(c);
    const last = c.req.query('last') || undefined;
    const page = await this.options.browse.tags(repo, { n, last });
    const tags = page.tags.map((t) => ({
      ...t,
      ...(immutableRuleFor(this.settings.immutable, repo, t.name) && { immutable: true }),
    }));
    const headers: Record<string, string> = {};
    const end = page.tags.at(-1)?.name;
    const next = page.more && end !== undefined ? end : undefined;
    if (next !== undefined) {
      const params = new URLSearchParams({ n: String(n), last: next });
      headers.Link = `</v2/${repo}/_berth/v1/tags?${params}>; rel="next"`;
    }
    return json({ name: repo, tags, pending: page.pending, ...(next !== undefined && { next }) }, headers);
  }

  /** `GET /v2/<name>/_berth/v1/manifests/<reference>`: layers, config, platforms, referrers, raw JSON. */
  async manifest(c: HttpContext, repo: RepositoryName, reference: string): Promise<Response> {
    return json(await this.options.browse.manifest(repo, parseReference(reference)));
  }

  /** `GET /v2/<name>/_berth/v1/manifests/<reference>/impact`: what deleting it removes and untags. */
  async impact(c: HttpContext, repo: RepositoryName, reference: string): Promise<Response> {
    const ref = parseReference(reference);
    const impact = await this.options.browse.impact(repo, ref);
    const immutable = impact.removesTags.filter((t) => immutableRuleFor(this.settings.immutable, repo, t));
    return json({ ...impact, immutableTags: immutable });
  }

  /** The repository actions the caller's account has (not only its current token): the UI asks for them. */
  private async actionsOf(c: HttpContext, repo: string): Promise<RepositoryAction[]> {
    const caller = c.get('caller');
    if (!caller || !this.options.auth) return [...REPOSITORY_ACTIONS];
    const { grants } = await this.options.auth.accounts.permissionsOf(caller.subject);
    return [...allowedActions(grants, repo)];
  }

  private isAdmin(c: HttpContext): boolean {
    const caller = c.get('caller');
    return !this.options.auth || (caller !== undefined && hasCatalogGrant(caller));
  }
}

function pageSize(c: HttpContext): number {
  const value = c.req.query('n');
  if (value === undefined || value === '') return BROWSE_DEFAULT_PAGE;
  if (!/^\d{1,4}$/.test(value) || Number(value) < 1) {
    throw new RegistryError(
      'PAGINATION_NUMBER_INVALID',
      `n must be a whole number from 1 to ${BROWSE_MAX_PAGE}, not "${value.slice(0, 20)}"`,
      { detail: { n: value.slice(0, 20) } },
    );
  }
  return Math.min(Number(value), BROWSE_MAX_PAGE);
}

function json(body: object, headers: Record<string, string> = {}): Response {
  const text = JSON.stringify(body);
  return new Response(text, {
    status: 200,
    headers: {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(text)),
      'Cache-Control': 'no-store',
      ...headers,
    },
  });
}
