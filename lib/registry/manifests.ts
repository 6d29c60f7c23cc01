import { parseDigest, tryParseDigest, type ParsedDigest } from '../oci/digest.ts';
import { computeDigest, parseManifest, type Descriptor, type ParsedManifest } from '../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';
import { PreconditionFailed, type ObjectInfo, type StorageDriver } from '../storage/port.ts';
import { describeImmutableRule, immutableRuleFor, type ImmutableRule } from './tag-policy.ts';
import type { BlobInfo, Blobs } from './blobs.ts';
import {
  BlobBeingVerified,
  DigestMismatch,
  ManifestBlobUnknown,
  ManifestCheckExpired,
  ManifestUnknown,
  TagImmutable,
  TooManyTags,
} from './errors.ts';
import { ImmutableFacts } from './immutable-facts.ts';
import { checkIndexEntries } from './index-entries.ts';
import { mapLimit } from '../util/concurrency.ts';
import { parseStoredJson } from '../util/json.ts';
import { keys, meta } from './keys.ts';
import type { Referrers } from './referrers.ts';
import { summaryConfigOf, tagSummaryMetadata } from './tag-summary-store.ts';
import { SUMMARY_CONFIG_LIMIT } from './tag-summary.ts';

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

/**
 * How many references a PUT looks up at once: every one of an image of up to 127 layers (Docker's
 * limit) and its config in a single round trip. The S3 client's socket pool (50) may queue some.
 */
const CHECK_CONCURRENCY = 128;

/** The most tags one manifest PUT may set (the URL's and `?tag=` ones together). */
export const MAX_TAGS_PER_PUT = 100;
/** Every tag holds a copy of the manifest: the most bytes of copies one PUT may write. */
export const MAX_TAG_BYTES_PER_PUT = 64 * 1024 * 1024;

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
    /** This process's recent sight of links and manifests, and image configs' bytes. */
    readonly facts: ImmutableFacts = new ImmutableFacts(),
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
   * A stored manifest as the pull-through cache reads it, or undefined: by digest, or by tag with
   * when the upstream last confirmed the tag (`checkedAt`, 0 when never).
   */
  async cached(
    repo: RepositoryName,
    ref: Reference,
    withBody: boolean,
  ): Promise<{ readonly manifest: ManifestHead | StoredManifest; readonly checkedAt: number } | undefined> {
    const key = this.keyOf(repo, ref);
    const object: (ObjectInfo & { body?: Uint8Array }) | undefined = withBody
      ? await this.storage.get(key)
      : await this.storage.head(key);
    if (!object) return undefined;
    const digest =
      ref.kind === 'digest'
        ? ref.digest
        : (tryParseDigest(object.metadata[meta.digest] ?? '') ??
          (object.body ? computeDigest(object.body) : undefined));
    // A tag object without its digest was not written by this registry: fetched again, not served.
    if (!digest) return undefined;
    const head = { digest, mediaType: object.contentType ?? 'application/octet-stream', size: object.size };
    return {
      manifest: object.body ? { ...head, bytes: object.body } : head,
      checkedAt: Number(object.metadata[meta.checked] ?? 0) || 0,
    };
  }

  /**
   * Records that the upstream confirmed a mirrored tag at `checkedAt`, when the tag still names
   * `digest`: returns its manifest, or undefined when the tag is gone, names another manifest, or
   * was rewritten meanwhile (the caller then fetches it again).
   */
  async confirmTag(
    repo: RepositoryName,
    tag: Tag,
    digest: string,
    checkedAt: number,
  ): Promise<StoredManifest | undefined> {
    const key = keys.tag(repo, tag);
    const object = await this.storage.get(key);
    const stored = object && tryParseDigest(object.metadata[meta.digest] ?? '');
    if (!object || stored?.digest !== digest) return undefined;
    try {
      await this.storage.put(key, object.body, {
        ...(object.contentType !== undefined && { contentType: object.contentType }),
        metadata: { ...object.metadata, [meta.checked]: String(checkedAt) },
        ifMatch: object.etag,
      });
    } catch (err) {
      if (err instanceof PreconditionFailed) return undefined;
      throw err;
    }
    return {
      digest: stored,
      mediaType: object.contentType ?? 'application/octet-stream',
      size: object.size,
      bytes: object.body,
    };
  }

  /** Deletes a tag (the manifest stays), if it is there: what a mirror does when its upstream lost it. */
  async untag(repo: RepositoryName, tag: Tag): Promise<boolean> {
    if (!(await this.storage.head(keys.tag(repo, tag)))) return false;
    await this.storage.delete(keys.tag(repo, tag));
    return true;
  }

  /**
   * Validates and stores a manifest, then points the tags at it. Nothing is written until every
   * referenced blob and child manifest is known to exist in the repository.
   *
   * Four storage round trips one after another at most, whatever the number of references (up to
   * CHECK_CONCURRENCY): (1) every read at once: the links and child manifests the manifest names
   * (or this process's recent sight of them, `ImmutableFacts`, in which case this round makes no
   * request) and the immutable tags' current state; (2) the manifest, its catalog entry and its
   * referrer entry, with the image config's bytes for the tags' summary read alongside; (3) the
   * tags; (4) the look at the manifest after the tags landed (a DELETE racing this push).
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
      throw new DigestMismatch('manifest', ref.digest.digest, manifest.digest.digest);
    }
    const digest = manifest.digest;
    const tags = [...new Set(ref.kind === 'tag' ? [ref.tag, ...extraTags] : extraTags)];
    checkTagCount(tags, bytes.byteLength);

    // Round 1: every read at once.
    const seen = new SeenLinks();
    const [pinned] = await Promise.all([
      this.checkImmutable(repo, tags, digest),
      this.checkReferences(repo, manifest, seen),
    ]);
    // The window counts from the oldest read the check relies on: a fact this process saw earlier
    // (ImmutableFacts) is as old as the read that saw it, not as this request.
    if (Date.now() - seen.oldest > MANIFEST_CHECK_WINDOW_MS) {
      throw new ManifestCheckExpired();
    }

    return this.write(repo, manifest, tags, pinned, { linkOf: (d) => seen.links.get(d.digest) });
  }

  /**
   * Stores a manifest the pull-through cache fetched from its upstream and checked (lib/mirror),
   * through the same writes as a push (`write`): the manifest, its catalog entry and its referrer
   * entry, then the tag, then the look again. What a push checks first does not apply: the blobs of
   * a mirrored manifest are fetched when they are pulled, and a mirrored tag follows its upstream
   * whatever the immutable-tag rules say (they govern pushes, which mirrored repositories refuse).
   * The tag records when it was confirmed upstream (`meta.checked`, `checkedAt` ms since the epoch).
   */
  async putFetched(
    repo: RepositoryName,
    manifest: ParsedManifest,
    tag: Tag | undefined,
    checkedAt: number,
  ): Promise<PutManifestResult> {
    return this.write(repo, manifest, tag ? [tag] : [], new Map(), {
      linkOf: (d) => this.blobs.stat(repo, d),
      tagMetadata: { [meta.checked]: String(checkedAt) },
      // The config of a mirrored image is often not fetched yet: a summary without it would lack
      // the image's time and platform for good, so the tag gets none and readers fall back.
      summaryNeedsConfig: true,
    });
  }

  /**
   * Rounds 2 to 4 of a PUT, shared by pushes and the pull-through cache: the manifest, its catalog
   * entry and its referrer entry; then the tags, each with its summary; then the look at the manifest
   * after the tags landed.
   */
  private async write(
    repo: RepositoryName,
    manifest: ParsedManifest,
    tags: readonly Tag[],
    pinned: ReadonlyMap<Tag, ImmutableRule | 'same'>,
    options: {
      /** The link of the image config in `repo`, to read it for the tags' summary. */
      readonly linkOf: (digest: ParsedDigest) => BlobInfo | undefined | Promise<BlobInfo | undefined>;
      /** More metadata for each tag object. */
      readonly tagMetadata?: Record<string, string>;
      /** An image whose config cannot be read gets no summary (instead of one without the config). */
      readonly summaryNeedsConfig?: boolean;
    },
  ): Promise<PutManifestResult> {
    const { digest, bytes } = manifest;
    // The web UI's tag listings read a summary kept with each tag instead of each manifest and
    // config (docs/web-ui.md). An image's summary needs its config: from this process's cache, or
    // read in round 2, alongside the writes that do not need it.
    const written = tags.filter((tag) => pinned.get(tag) !== 'same');
    const wanted = written.length > 0 ? summaryConfigOf(bytes) : undefined;
    const cachedConfig = wanted && this.facts.bytes(wanted.digest);
    const readConfig = async (): Promise<Uint8Array | undefined> => {
      if (!wanted || cachedConfig) return cachedConfig;
      try {
        const link = await options.linkOf(wanted.digest);
        return link ? await this.readConfig(link) : undefined;
      } catch {
        return undefined; // a summary is never a reason to fail a push
      }
    };

    // Round 2: the manifest, its catalog entry and its referrer entry, at once. Nothing names the
    // manifest yet, so a failure here (told 503, or a crash) leaves at most an untagged manifest,
    // which garbage collection removes; no tag moves until the manifest is readable by digest.
    const subject = manifest.subject ? parseDigest(manifest.subject.digest) : undefined;
    const writeManifest = async () => {
      const read = this.facts.begin();
      await this.storage.put(keys.manifest(repo, digest), bytes, { contentType: manifest.mediaType });
      this.facts.remember(keys.manifest(repo, digest), true, read);
    };
    const writeReferrer = () => this.addReferrer(repo, digest, manifest);
    const [config] = await Promise.all([
      readConfig(),
      writeManifest(),
      this.storage.put(keys.catalog(repo), new Uint8Array(0)),
      writeReferrer(),
    ]);
    if (written.length === 0) return { digest, subject };

    // Round 3: the tags, each with its whole summary. A pull by tag then by digest (containerd's
    // way) never meets a tag whose manifest is not stored yet, even while this request runs.
    const summary =
      wanted && !config && options.summaryNeedsConfig ? {} : tagSummaryMetadata(manifest, config);
    const metadata = { ...summary, ...options.tagMetadata };
    await Promise.all(written.map((tag) => this.writeTag(repo, tag, manifest, pinned.get(tag), metadata)));

    // Round 4: a DELETE of this manifest may have run while our writes were in flight: it deletes
    // the manifest, then the tags naming it, and may have swept before our tags landed. Looking
    // after the tags closes that: the manifest is written again if it is gone (this push then counts
    // as after the delete), so a tag never names a manifest that is not there. When every link the
    // manifest names is a fact this process read in the last 20 s (`ImmutableFacts`: a PUT of the same
    // image again, or of another naming the same blobs), round 1 makes no request and the PUT takes
    // three round trips; otherwise four.
    await this.lookAgain(repo, digest, writeManifest, writeReferrer);
    return { digest, subject };
  }

  /** Round 4 of a PUT: writes the manifest (and its referrer entry) again if a DELETE removed it. */
  private async lookAgain(
    repo: RepositoryName,
    digest: ParsedDigest,
    writeManifest: () => Promise<void>,
    writeReferrer: () => Promise<void>,
  ): Promise<void> {
    if (await this.storage.head(keys.manifest(repo, digest))) return;
    await writeManifest();
    await writeReferrer();
  }

  /** An image config's bytes for the tags' summary (read through its link), when they hash right. */
  private async readConfig(link: BlobInfo): Promise<Uint8Array | undefined> {
    try {
      const object = await this.storage.get(link.dataKey);
      if (!object || object.size > SUMMARY_CONFIG_LIMIT) return undefined;
      return this.facts.rememberBytes(link.digest, object.body) ? object.body : undefined;
    } catch {
      return undefined; // a summary is never a reason to fail a push
    }
  }

  private async writeTag(
    repo: RepositoryName,
    tag: Tag,
    manifest: ParsedManifest,
    rule: ImmutableRule | 'same' | undefined,
    summary: Record<string, string>,
  ): Promise<string | undefined> {
    const digest = manifest.digest;
    // A new immutable tag is created only if no racing push created it first.
    const immutable = rule !== undefined && rule !== 'same' ? rule : undefined;
    try {
      const info = await this.storage.put(keys.tag(repo, tag), manifest.bytes, {
        contentType: manifest.mediaType,
        metadata: { [meta.digest]: digest.digest, ...summary },
        ...(immutable ? { ifNoneMatch: '*' as const } : {}),
      });
      return info.etag;
    } catch (err) {
      if (!(err instanceof PreconditionFailed) || !immutable) throw err;
      const now = await this.storage.head(keys.tag(repo, tag));
      const current = now?.metadata[meta.digest];
      if (current !== digest.digest) throw immutableTag(repo, tag, current ?? 'another manifest', immutable);
      return undefined;
    }
  }

  /**
   * Deletes a tag (the manifest stays) or a manifest (its tags and referrer entry go with it). A
   * manifest goes first, then the tags naming it: a push of one of those tags racing the delete
   * either lands after the sweep (and, finding the manifest gone, writes it again) or is swept.
   */
  async delete(repo: RepositoryName, ref: Reference): Promise<void> {
    if (ref.kind === 'tag') {
      if (!(await this.storage.head(keys.tag(repo, ref.tag)))) throw unknown(repo, ref);
      await this.storage.delete(keys.tag(repo, ref.tag));
      return;
    }
    const stored = await this.get(repo, ref);
    const subject = subjectOf(stored.bytes);
    if (subject) await this.referrers.remove(repo, subject, ref.digest);
    // Tags first: if this request fails half way, the manifest is still there for them. Then again
    // after the manifest, for a tag pushed meanwhile (see put).
    await this.deleteTagsOf(repo, ref.digest);
    this.facts.forget(keys.manifest(repo, ref.digest));
    await this.storage.delete(keys.manifest(repo, ref.digest));
    this.facts.forget(keys.manifest(repo, ref.digest));
    await this.deleteTagsOf(repo, ref.digest);
  }

  /**
   * Writes a manifest's referrer entry under its subject again, when it is missing (a PUT whose
   * entry write failed after the manifest was written, told 503): what garbage collection does for a
   * manifest with a `subject` that its subject's referrers list does not show. Returns whether it wrote.
   */
  async restoreReferrer(repo: RepositoryName, digest: ParsedDigest): Promise<boolean> {
    const object = await this.storage.get(keys.manifest(repo, digest));
    if (!object) return false;
    let manifest: ParsedManifest;
    try {
      manifest = parseManifest(object.body, object.contentType ?? null, digest.algorithm);
    } catch {
      return false;
    }
    if (!manifest.subject) return false;
    await this.addReferrer(repo, digest, manifest);
    return true;
  }

  /** The entry of `manifest` under its subject (the referrers API), when it has one. */
  private async addReferrer(
    repo: RepositoryName,
    digest: ParsedDigest,
    manifest: ParsedManifest,
  ): Promise<void> {
    if (!manifest.subject) return;
    await this.referrers.add(
      repo,
      parseDigest(manifest.subject.digest),
      digest,
      referrerDescriptor(manifest),
    );
  }

  /**
   * Writes a manifest back from a tag's copy of it, when its own object is gone (a DELETE that failed
   * between the manifest and its tags): what garbage collection does for a tag that names nothing.
   * Create-only, so a manifest written meanwhile is left as it is. Returns whether it wrote.
   */
  async restoreFromTag(repo: RepositoryName, tag: Tag): Promise<boolean> {
    const copy = await this.storage.get(keys.tag(repo, tag));
    const digest = copy && tryParseDigest(copy.metadata[meta.digest] ?? '');
    if (!copy || !digest) return false;
    let manifest: ParsedManifest;
    try {
      manifest = parseManifest(copy.body, copy.contentType ?? null, digest.algorithm);
    } catch {
      return false; // not a manifest this registry accepts any more: leave it for fsck to report
    }
    if (manifest.digest.digest !== digest.digest) return false;
    try {
      await this.storage.put(keys.manifest(repo, digest), copy.body, {
        contentType: manifest.mediaType,
        ifNoneMatch: '*',
      });
    } catch (err) {
      if (err instanceof PreconditionFailed) return false;
      throw err;
    }
    await this.addReferrer(repo, digest, manifest);
    return true;
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
    await Promise.all(
      tags.map(async (tag) => {
        const rule = immutableRuleFor(this.immutable, repo, tag);
        if (!rule) return;
        const existing = await this.storage.head(keys.tag(repo, tag));
        const current = existing?.metadata[meta.digest];
        if (existing && current !== digest.digest)
          throw immutableTag(repo, tag, current ?? 'another manifest', rule);
        pinned.set(tag, existing ? 'same' : rule);
      }),
    );
    return pinned;
  }

  private keyOf(repo: RepositoryName, ref: Reference): string {
    return ref.kind === 'tag' ? keys.tag(repo, ref.tag) : keys.manifest(repo, ref.digest);
  }

  private async checkReferences(
    repo: RepositoryName,
    manifest: ParsedManifest,
    seen: SeenLinks,
  ): Promise<void> {
    const unique = [...new Map(manifest.blobs.map((d) => [d.digest, d])).values()];
    const missingBlobs = await mapLimit(unique, CHECK_CONCURRENCY, async (d) =>
      (await this.linkOf(repo, parseDigest(d.digest), seen)) ? undefined : d,
    );
    const blob = missingBlobs.find((d) => d !== undefined);
    if (blob && (await this.storage.head(keys.verifying(repo, parseDigest(blob.digest))))) {
      throw new BlobBeingVerified(repo, blob.digest, 'manifest');
    }
    if (blob) throw new ManifestBlobUnknown(repo, blob.digest, blob.mediaType);
    // Index entries: manifests, or blobs linked here (BuildKit's registry cache; lib/registry/index-entries.ts).
    const children = [...new Map(manifest.children.map((d) => [d.digest, d])).values()];
    await checkIndexEntries(
      {
        blob: async (d) => (await this.linkOf(repo, d, seen)) !== undefined,
        manifest: (d) => this.manifestExists(repo, d, seen),
        verifying: async (d) => (await this.storage.head(keys.verifying(repo, d))) !== undefined,
      },
      repo,
      children,
      CHECK_CONCURRENCY,
    );
  }

  /** A blob's link in `repo`: as this process saw it within FACT_TTL_MS, or read now. */
  private async linkOf(
    repo: RepositoryName,
    digest: ParsedDigest,
    seen: SeenLinks,
  ): Promise<BlobInfo | undefined> {
    const key = keys.layerLink(repo, digest);
    const fact = this.facts.existence<BlobInfo>(key);
    if (fact) {
      seen.add(fact.value, fact.seenAt);
      return fact.value;
    }
    const read = this.facts.begin();
    const info = await this.blobs.stat(repo, digest);
    if (info) {
      this.facts.remember(key, info, read);
      seen.add(info, read.at);
    }
    return info;
  }

  /** Whether a manifest is in `repo`: as this process saw or wrote it within FACT_TTL_MS, or read now. */
  private async manifestExists(
    repo: RepositoryName,
    digest: ParsedDigest,
    seen: SeenLinks,
  ): Promise<boolean> {
    const key = keys.manifest(repo, digest);
    const fact = this.facts.existence<true>(key);
    if (fact) {
      seen.relyOn(fact.seenAt);
      return true;
    }
    const read = this.facts.begin();
    if (!(await this.storage.head(key))) return false;
    this.facts.remember(key, true, read);
    seen.relyOn(read.at);
    return true;
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

/** What a PUT's reference check relied on: the links it found, and the oldest read among its facts. */
class SeenLinks {
  readonly links = new Map<string, BlobInfo>();
  oldest = Date.now();

  add(info: BlobInfo, seenAt: number): void {
    this.links.set(info.digest.digest, info);
    this.relyOn(seenAt);
  }

  relyOn(seenAt: number): void {
    this.oldest = Math.min(this.oldest, seenAt);
  }
}

function checkTagCount(tags: readonly Tag[], manifestSize: number): void {
  const byBytes = Math.max(1, Math.floor(MAX_TAG_BYTES_PER_PUT / Math.max(1, manifestSize)));
  const allowed = Math.min(MAX_TAGS_PER_PUT, byBytes);
  if (tags.length > allowed) {
    throw new TooManyTags(tags.length, allowed, manifestSize, MAX_TAGS_PER_PUT, MAX_TAG_BYTES_PER_PUT);
  }
}

function toHead(ref: Reference, info: ObjectInfo): ManifestHead {
  const digest = ref.kind === 'digest' ? ref.digest : parseDigest(info.metadata[meta.digest] ?? '');
  return { digest, mediaType: info.contentType ?? 'application/octet-stream', size: info.size };
}

function immutableTag(repo: RepositoryName, tag: Tag, current: string, rule: ImmutableRule): TagImmutable {
  return new TagImmutable(repo, tag, current, describeImmutableRule(rule));
}

function unknown(repo: RepositoryName, ref: Reference): ManifestUnknown {
  return new ManifestUnknown(repo, ref);
}

/** The descriptor a referrer entry holds for `manifest` (what the referrers API lists). */
export function referrerDescriptor(manifest: ParsedManifest): Descriptor {
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
