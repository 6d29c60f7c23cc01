import { mapLimit } from '../util/concurrency.ts';
import type { DetailedListPage, ListOptions, ListedObject, StorageDriver } from '../storage/port.ts';

const HEAD_CONCURRENCY = 16;

/**
 * A listing with each key's etag, size and time. S3 gives them with the listing itself
 * (`listObjects`); other stores are local, where a head per key costs what reading the directory
 * entry would, so they are headed.
 */
export async function listObjects(
  storage: StorageDriver,
  prefix: string,
  options: ListOptions,
): Promise<DetailedListPage> {
  if (storage.listObjects) return storage.listObjects(prefix, options);
  const page = await storage.list(prefix, options);
  const heads = await mapLimit(page.keys, HEAD_CONCURRENCY, (key) => storage.head(key));
  const objects = heads.filter((o): o is NonNullable<typeof o> => o !== undefined);
  return {
    objects: objects.map(({ key, size, etag, lastModified }) => ({ key, size, etag, lastModified })),
    truncated: page.truncated,
  };
}

/** Every object under `prefix`, at most `limit` of them; `complete` is false when more remain. */
export async function listAllObjects(
  storage: StorageDriver,
  prefix: string,
  limit: number,
): Promise<{ objects: ListedObject[]; complete: boolean }> {
  const objects: ListedObject[] = [];
  let startAfter: string | undefined;
  for (;;) {
    const page = await listObjects(storage, prefix, {
      startAfter,
      limit: Math.min(1000, limit - objects.length),
    });
    objects.push(...page.objects);
    const last = page.objects.at(-1)?.key;
    if (!page.truncated || last === undefined) return { objects, complete: true };
    if (objects.length >= limit) return { objects, complete: false };
    startAfter = last;
  }
}
