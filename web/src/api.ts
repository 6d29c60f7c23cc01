import type { Session } from './session.ts';

/** The registry's answers the page reads (docs/web-ui.md has the API). */
export interface Summary {
  kind: string;
  mediaType: string;
  artifactType?: string;
  size?: number;
  created?: string;
  platforms?: string[];
  children?: number;
}

export interface TagRow {
  name: string;
  digest?: string;
  pushedAt: string;
  immutable?: boolean;
  summary?: Summary;
}

export interface RepositoryRow {
  name: string;
  tags: number;
  tagsComplete: boolean;
  lastPush?: string;
  size?: number;
}

export interface RetentionRule {
  repositories: string;
  keepLast?: number;
  deleteOlderThanDays?: number;
  keepTags?: string[];
  untaggedAfterDays?: number;
}

export interface RepositorySummary extends RepositoryRow {
  access: string[];
  mirror: boolean;
  retention?: RetentionRule;
  immutableTags: string[];
}

export interface Info {
  name?: string;
  expiresAt?: string;
  authentication: boolean;
  account: string | null;
  admin: boolean;
  operations?: {
    version: string;
    storage: string;
    retention: RetentionRule[];
    immutableTags: string[];
    lastGc: {
      runId: string;
      startedAt: string;
      finishedAt: string;
      deleted: Record<string, number>;
      bytesFreed: number;
      restored: number;
    } | null;
    usageAt: string | null;
  };
}

export interface ManifestDetails {
  digest: string;
  mediaType: string;
  size: number;
  summary: Summary;
  manifest: string;
  subject?: string;
  annotations?: Record<string, string>;
  layers?: { digest: string; mediaType: string; size: number; title?: string }[];
  config?: {
    digest: string;
    mediaType: string;
    size: number;
    created?: string;
    author?: string;
    platform?: string;
    user?: string;
    workingDir?: string;
    env?: string[];
    entrypoint?: string[];
    cmd?: string[];
    exposedPorts?: string[];
    volumes?: string[];
    stopSignal?: string;
    labels?: Record<string, string>;
    history?: { created?: string; createdBy?: string; comment?: string; emptyLayer?: boolean }[];
    omitted?: string;
  };
  platforms?: { digest: string; mediaType: string; platform?: string; attestation: boolean; size?: number }[];
  referrers: {
    digest: string;
    mediaType: string;
    artifactType?: string;
    kind: string;
    size: number;
    created?: string;
    tag?: string;
  }[];
  referrersMore: boolean;
}

export interface Impact {
  digest: string;
  mediaType: string;
  removesTags: string[];
  otherTags: string[];
  untagged: string[];
  stillReferenced: string[];
  children: number;
  referrers: number;
  complete: boolean;
  immutableTags: string[];
}

export interface UsageReport {
  generatedAt: string;
  totalBlobs: number;
  totalBytes: number;
  repositories: {
    name: string;
    blobs: number;
    bytes: number;
    exclusiveBlobs: number;
    exclusiveBytes: number;
    manifests: number;
    tags: number;
  }[];
}

/** A refusal from the registry, with the message it gave (the spec's error body). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export const CATALOG_SCOPE = 'registry:catalog:*';
export const pullScope = (repo: string) => `repository:${repo}:pull`;
export const deleteScope = (repo: string) => `repository:${repo}:pull,delete`;

export class Api {
  constructor(private readonly session: Session) {}

  async get<T>(path: string, scope: string): Promise<T> {
    const res = await this.send(path, scope, { method: 'GET' });
    return (await res.json()) as T;
  }

  info = () => this.get<Info>('/v2/_berth/v1/info', CATALOG_SCOPE);

  repositories = (options: { n: number; last?: string; q?: string }) => {
    const query = new URLSearchParams({ n: String(options.n) });
    if (options.last) query.set('last', options.last);
    if (options.q) query.set('q', options.q);
    return this.get<{ repositories: RepositoryRow[]; next?: string; sizesAt?: string }>(
      `/v2/_berth/v1/repositories?${query}`,
      CATALOG_SCOPE,
    );
  };

  summary = (repo: string) => this.get<RepositorySummary>(`/v2/${repo}/_berth/v1/summary`, pullScope(repo));

  tags = (repo: string, options: { n: number; last?: string }) => {
    const query = new URLSearchParams({ n: String(options.n) });
    if (options.last) query.set('last', options.last);
    return this.get<{ tags: TagRow[]; next?: string; pending: number }>(
      `/v2/${repo}/_berth/v1/tags?${query}`,
      pullScope(repo),
    );
  };

  manifest = (repo: string, reference: string) =>
    this.get<ManifestDetails>(`/v2/${repo}/_berth/v1/manifests/${reference}`, pullScope(repo));

  impact = (repo: string, reference: string) =>
    this.get<Impact>(`/v2/${repo}/_berth/v1/manifests/${reference}/impact`, pullScope(repo));

  usage = () => this.get<UsageReport>('/v2/_berth/v1/usage', CATALOG_SCOPE);

  /** `DELETE /v2/<name>/manifests/<reference>`: a tag, or a manifest with every tag naming it. */
  async remove(repo: string, reference: string): Promise<void> {
    await this.send(`/v2/${repo}/manifests/${reference}`, deleteScope(repo), { method: 'DELETE' });
  }

  private async send(path: string, scope: string, init: RequestInit): Promise<Response> {
    const token = await this.session.token(scope);
    const res = await fetch(path, {
      ...init,
      headers: { Accept: 'application/json', ...(token && { Authorization: `Bearer ${token}` }) },
    });
    if (res.ok) return res;
    let message = `the registry answered ${res.status}`;
    let code: string | undefined;
    try {
      const body = (await res.json()) as { errors?: { code?: string; message?: string }[] };
      message = body.errors?.[0]?.message ?? message;
      code = body.errors?.[0]?.code;
    } catch {
      // not a spec error body: keep the status
    }
    throw new ApiError(res.status, message, code);
  }
}
