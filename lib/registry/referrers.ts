import * as z from 'zod';
import type { ParsedDigest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import type { RepositoryName } from '../oci/names.ts';
import type { StorageDriver } from '../storage/port.ts';
import { mapLimit } from '../util/concurrency.ts';
import { parseStoredJson } from '../util/json.ts';
import { ImmutableFacts } from './immutable-facts.ts';
import { keys } from './keys.ts';

const descriptorSchema = z.object({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number(),
  artifactType: z.string().optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export interface ReferrersPage {
  readonly descriptors: Descriptor[];
  /** Where the next page starts, when there is one. */
  readonly next?: string;
}

const READ_CONCURRENCY = 16;

/**
 * The referrers of a subject, one small object per referrer holding its descriptor. Kept on
 * manifest PUT whether or not the subject exists yet, as the spec requires.
 *
 * An entry's bytes never change (its key names the referrer's digest, and the descriptor is made
 * from that manifest's bytes), so this process keeps those it wrote or read (`ImmutableFacts`): a
 * list is one storage listing when it has seen every entry listed, a listing and then the reads of
 * the others otherwise. Which entries exist is always the listing's word.
 */
export class Referrers {
  constructor(
    private readonly storage: StorageDriver,
    private readonly pageSize: number,
    private readonly facts: ImmutableFacts = new ImmutableFacts(),
  ) {}

  async add(
    repo: RepositoryName,
    subject: ParsedDigest,
    referrer: ParsedDigest,
    descriptor: Descriptor,
  ): Promise<void> {
    const key = keys.referrer(repo, subject, referrer);
    const bytes = new TextEncoder().encode(JSON.stringify(descriptor));
    await this.storage.put(key, bytes, { contentType: 'application/json' });
    this.facts.rememberEntry(key, bytes);
  }

  async remove(repo: RepositoryName, subject: ParsedDigest, referrer: ParsedDigest): Promise<void> {
    await this.storage.delete(keys.referrer(repo, subject, referrer));
  }

  async list(
    repo: RepositoryName,
    subject: ParsedDigest,
    options: { artifactType?: string; after?: string },
  ): Promise<ReferrersPage> {
    const prefix = keys.referrersPrefix(repo, subject);
    const page = await this.storage.list(prefix, {
      startAfter: options.after ? prefix + options.after : undefined,
      limit: this.pageSize,
    });
    const read = await mapLimit(page.keys, READ_CONCURRENCY, async (key) => {
      let bytes = this.facts.entry(key);
      if (!bytes) {
        const object = await this.storage.get(key);
        if (!object) return undefined;
        bytes = object.body;
      }
      const parsed = descriptorSchema.safeParse(parseStoredJson(bytes));
      if (!parsed.success) return undefined;
      this.facts.rememberEntry(key, bytes);
      return parsed.data;
    });
    const descriptors = read.filter(
      (d): d is Descriptor =>
        d !== undefined && (options.artifactType === undefined || d.artifactType === options.artifactType),
    );
    const last = page.keys[page.keys.length - 1];
    return { descriptors, next: page.truncated && last ? last.slice(prefix.length) : undefined };
  }
}
