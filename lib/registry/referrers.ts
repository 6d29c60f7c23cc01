import * as z from 'zod';
import type { ParsedDigest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import type { RepositoryName } from '../oci/names.ts';
import type { StorageDriver } from '../storage/port.ts';
import { mapLimit } from '../util/concurrency.ts';
import { parseStoredJson } from '../util/json.ts';
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
 */
export class Referrers {
  constructor(
    private readonly storage: StorageDriver,
    private readonly pageSize: number,
  ) {}

  async add(
    repo: RepositoryName,
    subject: ParsedDigest,
    referrer: ParsedDigest,
    descriptor: Descriptor,
  ): Promise<void> {
    await this.storage.put(
      keys.referrer(repo, subject, referrer),
      new TextEncoder().encode(JSON.stringify(descriptor)),
      {
        contentType: 'application/json',
      },
    );
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
      const object = await this.storage.get(key);
      if (!object) return undefined;
      const parsed = descriptorSchema.safeParse(parseStoredJson(object.body));
      return parsed.success ? parsed.data : undefined;
    });
    const descriptors = read.filter(
      (d): d is Descriptor =>
        d !== undefined && (options.artifactType === undefined || d.artifactType === options.artifactType),
    );
    const last = page.keys[page.keys.length - 1];
    return { descriptors, next: page.truncated && last ? last.slice(prefix.length) : undefined };
  }
}
