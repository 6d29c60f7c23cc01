import type { Logger } from '../logging/logger.ts';
import { describeError } from '../logging/logger.ts';
import { tryParseDigest, type ParsedDigest } from '../oci/digest.ts';
import { RegistryError } from '../oci/errors.ts';
import { computeDigest, MAX_MANIFEST_BYTES, parseManifest, type ParsedManifest } from '../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';
import type { BlobInfo } from '../registry/blobs.ts';
import { UploadUnknown } from '../registry/errors.ts';
import type { ManifestHead, StoredManifest } from '../registry/manifests.ts';
import { readLimited } from '../util/read-body.ts';
import type { Registry } from '../registry/registry.ts';
import { UpstreamUnavailable, type UpstreamClient } from './upstream.ts';
import { UpstreamContentInvalid, verifiedCopy } from './verified-copy.ts';

export interface MirrorOptions {
  readonly registry: Registry;
  /** One client per upstream, each for the repositories under its prefix. */
  readonly upstreams: readonly UpstreamClient[];
  /** A cached tag is served without asking the upstream for this long after it was last confirmed. */
  readonly tagTtlMs: number;
  /**
   * `stream`: a blob miss streams to the client while it is stored (the local server).
   * `fill`: the blob is stored first and then served like any other, a redirect to presigned storage
   * on S3 (Lambda, whose responses cannot carry more than ~6 MB).
   */
  readonly mode: 'stream' | 'fill';
  /** `fill` mode: how long a request may spend copying a blob from the upstream. */
  readonly fillTimeoutMs: number;
  readonly maxBlobSize: number;
  /** Blobs up to this size are stored with one write; larger ones go through an upload session. */
  readonly partSize: number;
  readonly logger: Logger;
  readonly now?: () => number;
}

/**
 * What a blob read on a mirrored repository gives: the stored blob (served like any other); the
 * upstream's answer (its size, and for a GET the bytes as they arrive while being stored); or where
 * the client can fetch the bytes itself.
 */
export type MirroredBlob =
  | { readonly kind: 'stored'; readonly info: BlobInfo }
  | { readonly kind: 'upstream'; readonly size?: number; readonly body?: ReadableStream<Uint8Array> }
  | { readonly kind: 'redirect'; readonly location: string };

/**
 * The pull-through cache. Repositories under an upstream's prefix are read-only copies of the
 * upstream: what is not stored yet is fetched on the first pull and kept. Manifests by digest and
 * blobs never change, so once stored they are served from storage without asking the upstream; tags
 * are confirmed with a HEAD to the upstream once `tagTtlMs` has passed. When the upstream cannot be
 * reached, what is stored is still served.
 */
export class Mirror {
  /** Blob copies in progress in this process, so concurrent misses fetch a blob once. */
  private readonly fills = new Map<string, Promise<unknown>>();
  private readonly now: () => number;
  private readonly byPrefix: readonly UpstreamClient[];

  constructor(private readonly options: MirrorOptions) {
    this.now = options.now ?? Date.now;
    // Longest prefix first, so `hub/x=...` wins over the catch-all.
    this.byPrefix = [...options.upstreams].sort((a, b) => b.spec.prefix.length - a.spec.prefix.length);
  }

  /** The upstream mirroring `repo`, if any. */
  upstreamOf(repo: string): UpstreamClient | undefined {
    return this.byPrefix.find((u) => u.spec.prefix === '' || repo.startsWith(`${u.spec.prefix}/`));
  }

  /** Mirrored repositories are read-only: pushes and deletes are refused with a message saying so. */
  refuseWrites(repo: string, action: 'push' | 'delete'): void {
    const upstream = this.upstreamOf(repo);
    if (!upstream) return;
    const local = this.byPrefix.filter((u) => u.spec.prefix !== '').map((u) => `${u.spec.prefix}/`);
    const where =
      upstream.spec.prefix === ''
        ? local.length > 0
          ? `every repository outside ${local.join(', ')} mirrors it`
          : 'this registry mirrors it for every repository'
        : `repositories under ${upstream.spec.prefix}/ mirror it`;
    throw new RegistryError(
      'DENIED',
      `repository ${repo} is a read-only pull-through cache of ${upstream.url} (${where}); ${action} to a repository that is not mirrored`,
      { detail: { repository: repo, upstream: upstream.url } },
    );
  }

  async manifestHead(repo: RepositoryName, ref: Reference): Promise<ManifestHead> {
    return this.manifest(repo, ref, false);
  }

  async manifestGet(repo: RepositoryName, ref: Reference): Promise<StoredManifest> {
    return (await this.manifest(repo, ref, true)) as StoredManifest;
  }

  private async manifest(
    repo: RepositoryName,
    ref: Reference,
    withBody: boolean,
  ): Promise<ManifestHead | StoredManifest> {
    const upstream = this.requireUpstream(repo);
    const name = this.upstreamName(upstream, repo);
    const local = await this.options.registry.manifests.cached(repo, ref, withBody);
    if (ref.kind === 'digest') {
      if (local) return local.manifest;
      return this.fetchManifest(upstream, repo, name, ref.digest.digest, ref.digest);
    }
    if (local && this.now() - local.checkedAt < this.options.tagTtlMs) return local.manifest;
    try {
      return await this.revalidate(upstream, repo, name, ref.tag, local?.manifest, withBody);
    } catch (err) {
      if (!(err instanceof UpstreamUnavailable) || !local) throw this.explain(err, upstream, repo);
      this.options.logger.warn('mirror serving a cached tag: upstream unavailable', {
        repository: repo,
        tag: ref.tag,
        ...describeError(err),
      });
      return local.manifest;
    }
  }

  /** Asks the upstream (HEAD) what the tag points at now; refetches only when that changed. */
  private async revalidate(
    upstream: UpstreamClient,
    repo: RepositoryName,
    name: string,
    tag: Tag,
    local: ManifestHead | undefined,
    withBody: boolean,
  ): Promise<ManifestHead | StoredManifest> {
    const manifests = this.options.registry.manifests;
    const { response } = await upstream.headManifest(name, tag);
    if (response.status === 404) {
      // Gone upstream: the mirror forgets the tag too (its manifest stays, by digest).
      if (local) await manifests.untag(repo, tag);
      throw notFoundUpstream(upstream, `tag ${tag} of ${name}`);
    }
    if (response.status === 401 || response.status === 403) throw refused(upstream, name, response.status);
    const current = response.ok ? response.headers.get('Docker-Content-Digest') : null;
    if (local && current && current === local.digest.digest) {
      const confirmed = await manifests.confirmTag(repo, tag, current, this.now());
      if (confirmed) return withBody ? confirmed : local;
    }
    const expected = current ? tryParseDigest(current) : undefined;
    return this.fetchManifest(upstream, repo, name, expected?.digest ?? tag, expected, tag);
  }

  /** GETs a manifest from the upstream, checks it, stores it (and the tag), returns it. */
  private async fetchManifest(
    upstream: UpstreamClient,
    repo: RepositoryName,
    name: string,
    reference: string,
    expected: ParsedDigest | undefined,
    tag?: Tag,
  ): Promise<StoredManifest> {
    let response: Response;
    try {
      ({ response } = await upstream.getManifest(name, reference));
    } catch (err) {
      throw this.explain(err, upstream, repo);
    }
    if (response.status === 404) {
      await response.body?.cancel();
      throw notFoundUpstream(upstream, `manifest ${reference} of ${name}`);
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw refused(upstream, name, response.status);
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new RegistryError(
        'UNAVAILABLE',
        `upstream ${upstream.url} answered ${response.status} for manifest ${reference} of ${name}`,
      );
    }
    const bytes = await readLimited(response.body, MAX_MANIFEST_BYTES, () =>
      invalidUpstream(
        upstream,
        `the manifest ${reference} of ${name} is larger than ${MAX_MANIFEST_BYTES} bytes`,
      ),
    ).catch((err: unknown) => {
      throw err instanceof RegistryError
        ? err
        : this.explain(
            new UpstreamUnavailable(upstream.url, 'the manifest body was cut off'),
            upstream,
            repo,
          );
    });
    const digest = computeDigest(bytes, expected?.algorithm ?? 'sha256');
    if (expected && digest.digest !== expected.digest) {
      throw invalidUpstream(
        upstream,
        `it sent content with digest ${digest.digest} for manifest ${expected.digest}`,
      );
    }
    let manifest: ParsedManifest;
    try {
      manifest = parseManifest(bytes, response.headers.get('Content-Type'), digest.algorithm);
    } catch (err) {
      const why = err instanceof RegistryError ? err.message : 'unreadable';
      throw invalidUpstream(upstream, `its manifest ${reference} of ${name} cannot be served: ${why}`);
    }
    // As a push stores it: the manifest, its catalog and referrer entries, then the tag.
    await this.options.registry.manifests.putFetched(repo, manifest, tag, this.now());
    this.options.logger.info('mirror cached a manifest', {
      repository: repo,
      upstream: upstream.url,
      reference: tag ?? digest.digest,
      digest: digest.digest,
    });
    return { digest, mediaType: manifest.mediaType, size: bytes.byteLength, bytes };
  }

  /**
   * A blob HEAD or GET on a mirrored repository. Stored: its info (served as any other blob).
   * Stored for another repository: linked here once the upstream confirms this repository has it.
   * Not stored: HEAD asks the upstream; GET copies it from the upstream (once per process however
   * many ask at the same time) and streams it to the client as it arrives, or stores it first
   * (`fill` mode, and ranged GETs).
   */
  async blob(
    repo: RepositoryName,
    digest: ParsedDigest,
    method: string,
    ranged: boolean,
  ): Promise<MirroredBlob> {
    const upstream = this.requireUpstream(repo);
    const name = this.upstreamName(upstream, repo);
    const blobs = this.options.registry.blobs;
    const key = `${repo}@${digest.digest}`;
    // The copy in progress is looked up before the link is read, not after: a copy that links the blob
    // and ends while the read is under way would otherwise be missed both ways (the read answers
    // "no link", the copy is no longer in progress) and the upstream asked again for a stored blob.
    let pending = this.fills.get(key);
    const linked = await blobs.stat(repo, digest);
    if (linked) return { kind: 'stored', info: linked };
    try {
      // Joins a copy in progress; when that one failed, this request makes the next attempt.
      while (pending) {
        const joined = pending;
        // Its failure is logged by store() and answered to the request that started it; this one
        // only needs to know it ended.
        await joined.catch(() => undefined);
        pending = this.fills.get(key);
        const filled = await blobs.stat(repo, digest);
        if (filled) return { kind: 'stored', info: filled };
        if (pending === joined) break;
      }
      const global = await blobs.statGlobal(digest);
      if (global) {
        const { response } = await upstream.headBlob(name, digest.digest);
        await response.body?.cancel();
        if (response.status !== 200) throw blobNotFoundUpstream(upstream, name, digest, response.status);
        await blobs.link(repo, global);
        return { kind: 'stored', info: global };
      }
      if (method === 'HEAD') return await this.headUpstream(upstream, name, digest);
      if (this.fills.has(key)) return await this.blob(repo, digest, method, ranged);
      if (this.options.mode === 'stream' && !ranged) {
        return await this.streamMiss(upstream, repo, name, digest, key);
      }
      return await this.fillMiss(upstream, repo, name, digest, key);
    } catch (err) {
      throw this.explain(err, upstream, repo);
    }
  }

  private async headUpstream(
    upstream: UpstreamClient,
    name: string,
    digest: ParsedDigest,
  ): Promise<MirroredBlob> {
    const { response } = await upstream.headBlob(name, digest.digest);
    await response.body?.cancel();
    if (response.status !== 200) throw blobNotFoundUpstream(upstream, name, digest, response.status);
    return { kind: 'upstream', size: lengthOf(response) };
  }

  /** Starts the copy; the client reads the same bytes as they are stored. */
  private async streamMiss(
    upstream: UpstreamClient,
    repo: RepositoryName,
    name: string,
    digest: ParsedDigest,
    key: string,
  ): Promise<MirroredBlob> {
    // Registered before the first await, so that a request arriving meanwhile joins this copy.
    const opening = this.openUpstreamBlob(upstream, name, digest).then((opened) => ({
      length: opened.length,
      copy: verifiedCopy(opened.response.body!, digest, opened.length, this.options.maxBlobSize),
    }));
    const stored = this.track(
      key,
      opening.then(({ length, copy }) => this.store(repo, digest, copy.store, length, upstream)),
    );
    // Nobody awaits the store (the client reads copy.client); store() logs its failure, and this
    // keeps it from being an unhandled rejection.
    stored.catch(() => undefined);
    const { length, copy } = await opening;
    return { kind: 'upstream', size: length, body: copy.client };
  }

  /**
   * Stores the blob before answering. On Lambda the copy must end within the request's time: when it
   * cannot, it is abandoned and the client is sent to where the upstream itself serves the bytes (a CDN
   * or presigned storage URL), when the upstream gave one.
   */
  private async fillMiss(
    upstream: UpstreamClient,
    repo: RepositoryName,
    name: string,
    digest: ParsedDigest,
    key: string,
  ): Promise<MirroredBlob> {
    const controller = new AbortController();
    // Only a Lambda request has a deadline; the local server waits for the copy however long it takes.
    const timer =
      this.options.mode === 'fill'
        ? setTimeout(() => controller.abort(new FillTimeout()), this.options.fillTimeoutMs)
        : undefined;
    let redirectedTo: string | undefined;
    try {
      const copy = this.track(
        key,
        (async () => {
          const opened = await this.openUpstreamBlob(upstream, name, digest, controller.signal);
          redirectedTo = opened.redirectedTo;
          const { client, store } = verifiedCopy(
            opened.response.body!,
            digest,
            opened.length,
            this.options.maxBlobSize,
          );
          await client.cancel();
          return this.store(repo, digest, store, opened.length, upstream);
        })(),
      );
      return { kind: 'stored', info: await copy };
    } catch (err) {
      if (!controller.signal.aborted) throw err;
      const seconds = Math.round(this.options.fillTimeoutMs / 1000);
      this.options.logger.warn('mirror could not copy a blob within the request time', {
        repository: repo,
        digest: digest.digest,
        upstream: upstream.url,
        seconds,
      });
      if (redirectedTo) {
        return { kind: 'redirect', location: redirectedTo };
      }
      throw new RegistryError(
        'UNAVAILABLE',
        `blob ${digest.digest} could not be copied from upstream ${upstream.url} within ${seconds} s; pull it once through a berth serve mirror on the same storage, or retry`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  private async openUpstreamBlob(
    upstream: UpstreamClient,
    name: string,
    digest: ParsedDigest,
    signal?: AbortSignal,
  ): Promise<{ response: Response; length: number | undefined; redirectedTo?: string }> {
    const { response, redirectedTo } = await upstream.getBlob(name, digest.digest, signal);
    if (response.status !== 200 || !response.body) {
      await response.body?.cancel();
      throw blobNotFoundUpstream(upstream, name, digest, response.status);
    }
    const length = lengthOf(response);
    if (length !== undefined && length > this.options.maxBlobSize) {
      await response.body.cancel();
      throw new RegistryError(
        'SIZE_INVALID',
        `blob ${digest.digest} is ${length} bytes, over this registry's limit of ${this.options.maxBlobSize}`,
        { status: 413 },
      );
    }
    return { response, length, redirectedTo };
  }

  /** Stores the verified bytes and links them into the repository; nothing is kept if they prove wrong. */
  private async store(
    repo: RepositoryName,
    digest: ParsedDigest,
    body: ReadableStream<Uint8Array>,
    length: number | undefined,
    upstream: UpstreamClient,
  ): Promise<BlobInfo> {
    const uploads = this.options.registry.uploads;
    const started = this.now();
    let info: BlobInfo;
    try {
      if (length !== undefined && length <= this.options.partSize) {
        info = await uploads.upload(repo, digest, body, { length });
      } else {
        const session = await uploads.start(repo, digest.algorithm);
        try {
          info = await uploads.complete(repo, session.id, digest, body, { length });
        } catch (err) {
          await uploads.cancel(repo, session.id).catch((cancelErr: unknown) => {
            // Unknown: the failed completion already discarded the session (a refused digest), and
            // nothing is left behind. Anything else leaves the session to the upload expiry.
            if (cancelErr instanceof UploadUnknown) return;
            this.options.logger.warn('mirror could not cancel the upload session of a failed copy', {
              repository: repo,
              digest: digest.digest,
              session: session.id,
              ...describeError(cancelErr),
            });
          });
          throw err;
        }
      }
    } catch (err) {
      // The copy already failed and is logged next; a failed cancel of its source adds nothing.
      await body.cancel().catch(() => undefined);
      this.options.logger.warn('mirror could not store a blob', {
        repository: repo,
        digest: digest.digest,
        upstream: upstream.url,
        ...describeError(err),
      });
      throw err;
    }
    this.options.logger.info('mirror cached a blob', {
      repository: repo,
      digest: digest.digest,
      upstream: upstream.url,
      bytes: info.size,
      durationMs: this.now() - started,
    });
    return info;
  }

  private track<T>(key: string, work: Promise<T>): Promise<T> {
    this.fills.set(key, work);
    const forget = () => {
      if (this.fills.get(key) === work) this.fills.delete(key);
    };
    work.then(forget, forget);
    return work;
  }

  private requireUpstream(repo: RepositoryName): UpstreamClient {
    const upstream = this.upstreamOf(repo);
    if (!upstream) throw new Error(`repository ${repo} is not mirrored`);
    return upstream;
  }

  /** The name the upstream knows: the prefix removed, and Docker Hub's `library/` for official images. */
  upstreamName(upstream: UpstreamClient, repo: string): string {
    const name = upstream.spec.prefix ? repo.slice(upstream.spec.prefix.length + 1) : repo;
    return upstream.spec.dockerHub && !name.includes('/') ? `library/${name}` : name;
  }

  /** Upstream failures as the client should see them: 503 naming the upstream, never a 500. */
  private explain(err: unknown, upstream: UpstreamClient, repo: string): unknown {
    if (err instanceof UpstreamUnavailable) {
      return new RegistryError(
        'UNAVAILABLE',
        `${err.message}; ${repo} has no cached copy of what was asked for, retry when the upstream is reachable`,
        { headers: { 'Retry-After': '10' } },
      );
    }
    if (err instanceof UpstreamContentInvalid)
      return invalidUpstream(upstream, err.message.replace(/^the upstream /, 'it '));
    return err;
  }
}

class FillTimeout extends Error {
  constructor() {
    super('the blob copy took longer than the request may');
    this.name = 'FillTimeout';
  }
}

function lengthOf(response: Response): number | undefined {
  const header = response.headers.get('Content-Length');
  return header !== null && /^\d+$/.test(header) ? Number(header) : undefined;
}

function notFoundUpstream(upstream: UpstreamClient, what: string): RegistryError {
  return new RegistryError(
    'MANIFEST_UNKNOWN',
    `${what} is not in this registry nor in upstream ${upstream.url}`,
  );
}

function blobNotFoundUpstream(
  upstream: UpstreamClient,
  name: string,
  digest: ParsedDigest,
  status: number,
): RegistryError {
  if (status === 401 || status === 403) return refused(upstream, name, status);
  return new RegistryError(
    'BLOB_UNKNOWN',
    `blob ${digest.digest} is not in this registry, and upstream ${upstream.url} answered ${status} for it in ${name}`,
  );
}

function refused(upstream: UpstreamClient, name: string, status: number): RegistryError {
  return new RegistryError(
    'NAME_UNKNOWN',
    `upstream ${upstream.url} refused to serve ${name} (${status}): the repository does not exist there, or it needs credentials (BERTH_PROXY_USERNAME and BERTH_PROXY_PASSWORD, or BERTH_PROXY_PARAMETER)`,
  );
}

function invalidUpstream(upstream: UpstreamClient, why: string): RegistryError {
  return new RegistryError(
    'UNKNOWN',
    `upstream ${upstream.url} sent invalid content, nothing of it was kept: ${why}`,
    {
      status: 502,
    },
  );
}
