import type { ManifestRefs } from '../gc/references.ts';
import type { RepositoryName } from '../oci/names.ts';
import type { RepoKeys } from '../registry/layout.ts';
import type { Affected } from './findings.ts';

/** A manifest as fsck sees it: what it references, and where it was read from. */
export interface ManifestNode {
  readonly refs: ManifestRefs;
  /**
   * The manifest's own object, or the tag whose copy stands in for it while its object is missing
   * (pulls by tag still work; `fsck --repair` writes the object back).
   */
  readonly source: { readonly kind: 'manifest' } | { readonly kind: 'tag'; readonly tag: string };
}

/** One repository as the checks share it: what its listing holds and what was read of it. */
export class RepoView {
  readonly name: RepositoryName;
  readonly manifests: ReadonlySet<string>;
  readonly links: ReadonlySet<string>;
  /** Referrer entries, as `<subject> <digest>`. */
  readonly referrers: ReadonlySet<string>;
  /** Tag -> the digest it names (tags whose object names none are left out). */
  readonly tags = new Map<string, string>();
  /** Manifests read (objects, and tag copies standing in for missing ones), by digest. */
  readonly graph = new Map<string, ManifestNode>();
  private reached: Map<string, Set<string>> | undefined;

  constructor(readonly keys: RepoKeys) {
    this.name = keys.name as RepositoryName;
    this.manifests = new Set(keys.manifests);
    this.links = new Set(keys.links);
    this.referrers = new Set(keys.referrers.map((e) => `${e.subject} ${e.digest}`));
  }

  get hasContent(): boolean {
    return this.keys.tags.length > 0 || this.keys.manifests.length > 0;
  }

  /** Whether a manifest is there: its object, or a tag's copy that `--repair` writes back. */
  holds(digest: string): boolean {
    return this.manifests.has(digest) || this.graph.get(digest)?.source.kind === 'tag';
  }

  /** The tags whose pull reaches `digest` (directly, or as an index's entry, at any depth). */
  tagsReaching(digest: string): string[] {
    if (!this.reached) {
      this.reached = new Map();
      for (const [tag, root] of this.tags) {
        const seen = new Set<string>();
        const stack = [root];
        while (stack.length > 0) {
          const d = stack.pop()!;
          if (seen.has(d)) continue;
          seen.add(d);
          const set = this.reached.get(d) ?? new Set<string>();
          set.add(tag);
          this.reached.set(d, set);
          stack.push(...(this.graph.get(d)?.refs.children ?? []));
        }
      }
    }
    return [...(this.reached.get(digest) ?? [])].sort();
  }

  /** What a broken object referenced by `manifests` breaks here. */
  affects(manifests: readonly string[]): Affected {
    const tags = new Set<string>();
    for (const m of manifests) for (const t of this.tagsReaching(m)) tags.add(t);
    return { repository: this.name, tags: [...tags].sort(), manifests: [...manifests].sort() };
  }

  /** Manifests read here that need blob `digest` from the repository (config, layers, blob entries). */
  manifestsNeeding(digest: string): string[] {
    const found: string[] = [];
    for (const [m, node] of this.graph) {
      const refs = node.refs;
      if (requiredBlobs(refs).includes(digest) || (entryMayBeBlob(refs, digest) && !this.holds(digest)))
        found.push(m);
    }
    return found;
  }
}

/**
 * The blobs a manifest needs linked in its repository: config and layers but foreign ones, and an
 * index's entries that may name a blob (those are also in `children`: such an entry may be a
 * manifest of the repository instead, see entryMayBeBlob).
 */
export function requiredBlobs(refs: ManifestRefs): string[] {
  const children = new Set(refs.children);
  const foreign = new Set(refs.foreign);
  return refs.blobs.filter((d) => !children.has(d) && !foreign.has(d));
}

/** Whether an index entry may be satisfied by a blob linked in the repository (its media type says so). */
export function entryMayBeBlob(refs: ManifestRefs, entry: string): boolean {
  return refs.blobs.includes(entry);
}
