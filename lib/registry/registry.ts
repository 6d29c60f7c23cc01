import type { ParsedDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import type { StorageDriver } from '../storage/port.ts';
import { Blobs, type BlobInfo } from './blobs.ts';
import { RepositoryUnknown } from './errors.ts';
import type { HashStates } from './hashing.ts';
import { keys } from './keys.ts';
import { listNames, type NamePage } from './listing.ts';
import { ImmutableFacts } from './immutable-facts.ts';
import { Manifests } from './manifests.ts';
import { Referrers } from './referrers.ts';
import { DirectUploads, type DirectUploadOptions } from './direct-uploads.ts';
import { Uploads, type UploadLimits } from './uploads.ts';
import { SessionStore } from './upload-session.ts';
import { UploadStateSigner } from './upload-state.ts';
import { UploadQuota, type UploadQuotaLimits } from './upload-quota.ts';
import { Usage } from './usage.ts';
import type { Logger } from '../logging/logger.ts';
import type { ImmutableRule } from './tag-policy.ts';

export interface RegistryOptions {
  readonly storage: StorageDriver;
  readonly hashes: HashStates;
  readonly limits: UploadLimits;
  /** Mount a blob the registry holds in any repository when the client names no `from` repository. */
  readonly mountWithoutFrom: boolean;
  readonly referrersPageSize?: number;
  /** The direct-upload extension (S3 only); defaults below. */
  readonly direct?: Partial<DirectUploadOptions>;
  /** Tags that a push may not move to another manifest (BERTH_IMMUTABLE_TAGS). */
  readonly immutableTags?: readonly ImmutableRule[];
  /** For what happens outside a request (background verifications) and cleanups that failed. */
  readonly logger?: Logger;
  /** Caps on what one client holds in open upload sessions; absent, none (lib/registry/upload-quota.ts). */
  readonly uploadQuota?: UploadQuotaLimits;
}

/** Direct-upload defaults: see docs/upload-extension.md for how the sync limit was measured. */
export const DIRECT_UPLOAD_DEFAULTS = {
  presignTtlSeconds: 900,
  syncVerifyLimit: 1024 * 1024 * 1024,
  verifyLeaseMs: 15 * 60 * 1000,
} as const;

/** The part sizes of the store's multipart uploads, which a direct upload's client must keep to. */
export interface PartLimits {
  /** Every part but the last has at least this many bytes. */
  readonly minPartSize: number;
  readonly maxPartSize: number;
  readonly maxParts: number;
}

/**
 * A registry and the store it runs on, as lib/setup hands them to the modules that work on the
 * store's layout directly: garbage collection, fsck, the web UI's read model (lib/browse) and the
 * maintenance loops (the janitor, the local server's purge). Nothing else gets the storage port: the
 * routes and the mirror go through the registry's operations (docs/architecture.md, "Who touches
 * storage").
 */
export interface RegistryStore {
  readonly registry: Registry;
  readonly storage: StorageDriver;
}

/** The registry operations, free of HTTP: what lib/http calls. */
export class Registry {
  /** Private: whoever needs the raw store gets it from lib/setup beside the registry (RegistryStore). */
  readonly #storage: StorageDriver;
  readonly blobs: Blobs;
  readonly uploads: Uploads;
  readonly direct: DirectUploads;
  /** The upload sessions both lifecycles (through the registry, direct to the store) keep. */
  readonly sessions: SessionStore;
  readonly referrers: Referrers;
  readonly manifests: Manifests;
  /** The usage report: computed by garbage collection and `berth usage`, read by the admin API. */
  readonly usage: Usage;
  /**
   * What this process recently saw of the store, for manifest PUTs (lib/registry/immutable-facts.ts).
   * Whatever deletes a link or manifest through this process forgets it here first and after.
   */
  readonly facts = new ImmutableFacts();
  /** What the store's multipart uploads accept (the direct-upload extension tells its clients). */
  readonly partLimits: PartLimits;
  private readonly mountWithoutFrom: boolean;

  constructor(options: RegistryOptions) {
    this.#storage = options.storage;
    this.blobs = new Blobs(options.storage, this.facts);
    this.sessions = new SessionStore(options.storage, {
      leaseMs: options.limits.leaseMs,
      ...(options.limits.publishWindowMs !== undefined && {
        publishWindowMs: options.limits.publishWindowMs,
      }),
      exclusive: options.storage.exclusive ?? false,
      ...(options.uploadQuota && { quota: new UploadQuota(options.uploadQuota) }),
      ...(options.logger && { logger: options.logger }),
    });
    const signer = new UploadStateSigner(options.storage);
    this.uploads = new Uploads(
      options.storage,
      this.blobs,
      options.hashes,
      options.limits,
      this.sessions,
      signer,
    );
    this.direct = new DirectUploads(
      options.storage,
      this.blobs,
      this.sessions,
      options.limits.maxBlobSize,
      { ...DIRECT_UPLOAD_DEFAULTS, ...options.direct },
      options.logger,
      signer,
    );
    this.referrers = new Referrers(options.storage, options.referrersPageSize ?? 500, this.facts);
    this.manifests = new Manifests(
      options.storage,
      this.blobs,
      this.referrers,
      options.immutableTags,
      this.facts,
    );
    this.usage = new Usage(options.storage);
    const { minPartSize, maxPartSize, maxParts } = options.storage.multipart;
    this.partLimits = { minPartSize, maxPartSize, maxParts };
    this.mountWithoutFrom = options.mountWithoutFrom;
  }

  /**
   * Links a blob into `repo` without moving bytes, if `from` (or, when allowed, any repository)
   * holds it. Undefined means the client must upload it.
   */
  async mount(
    repo: RepositoryName,
    digest: ParsedDigest,
    from?: RepositoryName,
  ): Promise<BlobInfo | undefined> {
    const source = from
      ? await this.blobs.stat(from, digest)
      : this.mountWithoutFrom
        ? await this.blobs.statGlobal(digest)
        : undefined;
    if (!source) return undefined;
    await this.blobs.link(repo, source);
    // Garbage collection may be removing the blob right now (docs/gc.md): mount only what is still
    // stored after the link is written, otherwise take the link back and let the client upload.
    const still = await this.blobs.statGlobal(digest);
    if (still?.dataKey === source.dataKey) return source;
    this.facts.forget(keys.layerLink(repo, digest));
    await this.#storage.delete(keys.layerLink(repo, digest));
    this.facts.forget(keys.layerLink(repo, digest));
    return undefined;
  }

  /**
   * A blob's link in `repo`, for a blob HEAD or GET. With `seen`, a link this process read or wrote
   * within FACT_TTL_MS (20 s) is answered from the cache of facts without a storage read
   * (`remembered`); otherwise it is read, and remembered. A link deleted through this process is
   * never answered from there (`unlinkBlob` forgets it); one deleted through another process (another
   * Lambda container, the janitor, `berth gc`) may be, for at most FACT_TTL_MS after this process saw it
   * (docs/architecture.md, "The cache of facts").
   */
  async blobLink(
    repo: RepositoryName,
    digest: ParsedDigest,
    options: { readonly seen: boolean },
  ): Promise<{ readonly info: BlobInfo; readonly remembered: boolean }> {
    const key = keys.layerLink(repo, digest);
    const fact = options.seen ? this.facts.existence<BlobInfo>(key) : undefined;
    if (fact) return { info: fact.value, remembered: true };
    const read = this.facts.begin();
    const info = await this.blobs.require(repo, digest);
    this.facts.remember(key, info, read);
    return { info, remembered: false };
  }

  /**
   * Removes a blob's link from `repo` (DELETE of a blob). This process's manifest PUTs stop relying
   * on having seen the link from the moment the delete starts (ImmutableFacts).
   */
  async unlinkBlob(repo: RepositoryName, digest: ParsedDigest): Promise<void> {
    const key = keys.layerLink(repo, digest);
    this.facts.forget(key);
    try {
      await this.blobs.unlink(repo, digest);
    } finally {
      this.facts.forget(key);
    }
  }

  /**
   * A page of the repository's tags. The catalog entry is looked at in parallel with the listing (a
   * HEAD more per list, no round trip more), for the answer of an empty page: RepositoryUnknown for a
   * repository this registry does not know, an empty list for one it does.
   */
  async listTags(repo: RepositoryName, options: { n?: number; last?: string }): Promise<NamePage> {
    const [page, entry] = await Promise.all([
      listNames(this.#storage, keys.tagsPrefix(repo), options),
      this.#storage.head(keys.catalog(repo)),
    ]);
    if (page.names.length === 0 && !entry) throw new RepositoryUnknown(repo);
    return page;
  }

  async catalog(options: { n?: number; last?: string }): Promise<NamePage> {
    return listNames(this.#storage, keys.catalogPrefix, options);
  }
}
