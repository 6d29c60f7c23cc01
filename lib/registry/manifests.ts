import { RegistryError } from '../oci/errors.ts';
import { parseDigest, tryParseDigest, type ParsedDigest } from '../oci/digest.ts';
import { parseManifest, type Descriptor, type ParsedManifest } from '../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';
import type { ObjectInfo, StorageDriver } from '../storage/port.ts';
import type { Blobs } from './blobs.ts';
import { mapLimit } from './concurrency.ts';
import { parseStoredJson } from './json.ts';
import { keys, meta } from './keys.ts';
import type { Referrers } from './referrers.ts';

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
 * Manifests live under their digest; a tag is a copy of its manifest's bytes with the digest in
 * the object's metadata, so HEAD or GET by tag is one storage read, as by digest.
 */
export class Manifests {
  constructor(
    private readonly storage: StorageDriver,
    private readonly blobs: Blobs,
    private readonly referrers: Referrers,
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
    await this.checkReferences(repo, manifest);
    const digest = manifest.digest;
    await this.storage.put(keys.manifest(repo, digest), bytes, { contentType: manifest.mediaType });
    const tags = ref.kind === 'tag' ? [ref.tag, ...extraTags] : extraTags;
    await Promise.all(
      [...new Set(tags)].map((tag) =>
        this.storage.put(keys.tag(repo, tag), bytes, {
          contentType: manifest.mediaType,
          metadata: { [meta.digest]: digest.digest },
        }),
      ),
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
