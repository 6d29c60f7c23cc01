import { RegistryError } from '../oci/errors.ts';
import { parseDigest, tryParseDigest, type ParsedDigest } from '../oci/digest.ts';
import { parseManifest, type Descriptor, type ParsedManifest } from '../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';
import { PreconditionFailed, type ObjectInfo, type StorageDriver } from '../storage/port.ts';
import { describeImmutableRule, immutableRuleFor, type ImmutableRule } from '../gc/policy.ts';
import type { Blobs } from './blobs.ts';
import { mapLimit } from './concurrency.ts';
import { parseStoredJson } from './json.ts';
import { keys, meta } from './keys.ts';
import type { Referrers } from './referrers.ts';
import { tagSummaryMetadata } from './tag-summary-store.ts';

export interface ManifestHead {
  readonly digest: ParsedDigest;
  readonly mediaType: string;
  readonly size: number;
}

export interface StoredManifest extends ManifestHead {
  readonly bytes: Uint8Array;
}

export interface PutManifestResult {
  readonly digest: ParsedDigest;
  readonly subject?: ParsedDigest;
}

const CHECK_CONCURRENCY = 8;

/**
 * The longest a manifest PUT may take from checking its references to starting to write the
 * manifest; slower, it refuses (503, retry). Garbage collection waits longer than this, plus the
 * store's own retry time, before it trusts that no push checked a blob it is removing (docs/gc.md).
 */
export const MANIFEST_CHECK_WINDOW_MS = 60_000;

/**
 * Manifests live under their digest; a tag is a copy of its manifest's bytes with the digest in
 * the object's metadata, so HEAD or GET by tag is one storage read, as by digest.
 */
export class Manifests {
  constructor(
    private readonly storage: StorageDriver,
    private readonly blobs: Blobs,
    private readonly referrers: Referrers,
    private readonly immutable: readonly ImmutableRule[] = [],
  ) {}

  async head(repo: RepositoryName, ref: Reference): Promise<ManifestHead> {
    const info = await this.storage.head(this.keyOf(repo, ref));
    if (!info) throw unknown(repo, ref);
    return toHead(ref, info);
  }

  async get(repo: RepositoryName, ref: Reference): Promise<StoredManifest> {
    const object = await this.storage.get(this.keyOf(repo, ref));
    if (!object) throw unknown(repo, ref);
    return { ...toHead(ref, object), bytes: object.body };
  }

  /**
   * Validates and stores a manifest, then points the tags at it. Nothing is written until every
   * referenced blob and child manifest is known to exist in the repository.
   */
  async put(
    repo: RepositoryName,
    ref: Reference,
    bytes: Uint8Array,
    contentType: string | null,
    extraTags: readonly Tag[] = [],
  ): Promise<PutManifestResult> {
    const manifest = parseManifest(
      bytes,
      contentType,
      ref.kind === 'digest' ? ref.digest.algorithm : 'sha256',
    );
    if (ref.kind === 'digest' && ref.digest.digest !== manifest.digest.digest) {
      throw new RegistryError(
        'DIGEST_INVALID',
        `manifest content has digest ${manifest.digest.digest}, not ${ref.digest.digest} as in the URL`,
      );
    }
    const digest = manifest.digest;
    const tags = [...new Set(ref.kind === 'tag' ? [ref.tag, ...extraTags] : extraTags)];
    const pinned = await this.checkImmutable(repo, tags, digest);
    const checkedAt = Date.now();
    await this.checkReferences(repo, manifest);
    if (Date.now() - checkedAt > MANIFEST_CHECK_WINDOW_MS) {
      throw new RegistryError(
        'UNAVAILABLE',
        "checking the manifest's blobs took too long for them to be trusted still to exist; push the manifest again",
      );
    }
    await this.storage.put(keys.manifest(repo, digest), bytes, { contentType: manifest.mediaType });
    // The web UI's tag listings read this instead of each manifest and config (docs/web-ui.md).
    const summary = tags.length > 0 ? await tagSummaryMetadata(this.storage, repo, manifest) : {};
    await Promise.all(
      tags.map(async (tag) => {
        const rule = pinned.get(tag);
        // An immutable tag already pointing here needs no write; a new one is created only if no
        // racing push created it first.
        if (rule === 'same') return;
        try {
          await this.storage.put(keys.tag(repo, tag), bytes, {
            contentType: manifest.mediaType,
            metadata: { [meta.digest]: digest.digest, ...summary },
            ...(rule ? { ifNoneMatch: '*' as const } : {}),
          });
        } catch (err) {
          if (!(err instanceof PreconditionFailed) || !rule) throw err;
          const now = await this.storage.head(keys.tag(repo, tag));
          const current = now?.metadata[meta.digest];
          if (current !== digest.digest) throw immutableTag(repo, tag, current ?? 'another manifest', rule);
        }
      }),
    );
    let subject: ParsedDigest | undefined;
    if (manifest.subject) {
      subject = parseDigest(manifest.subject.digest);
      await this.referrers.add(repo, subject, digest, referrerDescriptor(manifest));
    }
    await this.storage.put(keys.catalog(repo), new Uint8Array(0));
    return { digest, subject };
  }

  /** Deletes a tag (the manifest stays) or a manifest (its tags and referrer entry go with it). */
  async delete(repo: RepositoryName, ref: Reference): Promise<void> {
    if (ref.kind === 'tag') {
      if (!(await this.storage.head(keys.tag(repo, ref.tag)))) throw unknown(repo, ref);
      await this.storage.delete(keys.tag(repo, ref.tag));
      return;
    }
    const stored = await this.get(repo, ref);
    await this.deleteTagsOf(repo, ref.digest);
    const subject = subjectOf(stored.bytes);
    if (subject) await this.referrers.remove(repo, subject, ref.digest);
    await this.storage.delete(keys.manifest(repo, ref.digest));
  }

  /**
   * Refuses to move an immutable tag (BERTH_IMMUTABLE_TAGS) to another manifest. Returns, per
   * immutable tag, 'same' when it already names this manifest, or the rule that pins it.
   */
  private async checkImmutable(
    repo: RepositoryName,
    tags: readonly Tag[],
    digest: ParsedDigest,
  ): Promise<Map<Tag, ImmutableRule | 'same'>> {
    const pinned = new Map<Tag, ImmutableRule | 'same'>();
    for (const tag of tags) {
      const rule = immutableRuleFor(this.immutable, repo, tag);
      if (!rule) continue;
      const existing = await this.storage.head(keys.tag(repo, tag));
      const current = existing?.metadata[meta.digest];
      if (existing && current !== digest.digest)
        throw immutableTag(repo, tag, current ?? 'another manifest', rule);
      pinned.set(tag, existing ? 'same' : rule);
    }
    return pinned;
  }

  private keyOf(repo: RepositoryName, ref: Reference): string {
    return ref.kind === 'tag' ? keys.tag(repo, ref.tag) : keys.manifest(repo, ref.digest);
  }

  private async checkReferences(repo: RepositoryName, manifest: ParsedManifest): Promise<void> {
    const missingBlobs = await mapLimit(manifest.blobs, CHECK_CONCURRENCY, async (d) =>
      (await this.blobs.stat(repo, parseDigest(d.digest))) ? undefined : d,
    );
    const blob = missingBlobs.find((d) => d !== undefined);
    if (blob && (await this.storage.head(keys.verifying(repo, parseDigest(blob.digest))))) {
      throw new RegistryError(
        'MANIFEST_BLOB_UNKNOWN',
        `blob ${blob.digest} was uploaded directly and its content is still being verified; push the manifest again once HEAD /v2/${repo}/blobs/${blob.digest} answers 200`,
        { detail: { digest: blob.digest, verification: 'in progress' } },
      );
    }
    if (blob) {
      throw new RegistryError(
        'MANIFEST_BLOB_UNKNOWN',
        `blob ${blob.digest} (${blob.mediaType}) is not in repository ${repo}; push it before the manifest`,
        { detail: { digest: blob.digest } },
      );
    }
    const missingChildren = await mapLimit(manifest.children, CHECK_CONCURRENCY, async (d) =>
      (await this.storage.head(keys.manifest(repo, parseDigest(d.digest)))) ? undefined : d,
    );
    const child = missingChildren.find((d) => d !== undefined);
    if (child) {
      throw new RegistryError(
        'MANIFEST_BLOB_UNKNOWN',
        `manifest ${child.digest} listed in the index is not in repository ${repo}; push it before the index`,
        { detail: { digest: child.digest } },
      );
    }
  }

  private async deleteTagsOf(repo: RepositoryName, digest: ParsedDigest): Promise<void> {
    const prefix = keys.tagsPrefix(repo);
    let startAfter: string | undefined;
    for (;;) {
      const page = await this.storage.list(prefix, { startAfter, limit: 1000 });
      await mapLimit(page.keys, CHECK_CONCURRENCY, async (key) => {
        const info = await this.storage.head(key);
        if (info?.metadata[meta.digest] === digest.digest) await this.storage.delete(key);
      });
      if (!page.truncated || page.keys.length === 0) return;
      startAfter = page.keys[page.keys.length - 1];
    }
  }
}

function toHead(ref: Reference, info: ObjectInfo): ManifestHead {
  const digest = ref.kind === 'digest' ? ref.digest : parseDigest(info.metadata[meta.digest] ?? '');
  return { digest, mediaType: info.contentType ?? 'application/octet-stream', size: info.size };
}

function immutableTag(repo: RepositoryName, tag: Tag, current: string, rule: ImmutableRule): RegistryError {
  return new RegistryError(
    'TAG_INVALID',
    `tag ${tag} of repository ${repo} is immutable (rule "${describeImmutableRule(rule)}" in BERTH_IMMUTABLE_TAGS) and already points to ${current}; push this image under a new tag, e.g. a new version`,
    { detail: { tag, current, rule: describeImmutableRule(rule) } },
  );
}

function unknown(repo: RepositoryName, ref: Reference): RegistryError {
  const what = ref.kind === 'tag' ? `tag ${ref.tag}` : `manifest ${ref.digest.digest}`;
  return new RegistryError('MANIFEST_UNKNOWN', `${what} is not in repository ${repo}`);
}

function referrerDescriptor(manifest: ParsedManifest): Descriptor {
  return {
    mediaType: manifest.mediaType,
    digest: manifest.digest.digest,
    size: manifest.bytes.byteLength,
    ...(manifest.artifactType ? { artifactType: manifest.artifactType } : {}),
    ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
  };
}

function subjectOf(bytes: Uint8Array): ParsedDigest | undefined {
  const json = parseStoredJson(bytes) as { subject?: { digest?: unknown } } | undefined;
  return typeof json?.subject?.digest === 'string' ? tryParseDigest(json.subject.digest) : undefined;
}
