import type { StorageDriver } from '../storage/port.ts';

export interface NamePage {
  readonly names: string[];
  /** True when more names follow the last one. */
  readonly more: boolean;
}

/**
 * Lists the names stored under `prefix` in lexical order, after `last` (exclusive), at most `n`
 * (all when n is undefined), paging through the store as needed.
 */
export async function listNames(
  storage: StorageDriver,
  prefix: string,
  options: { n?: number; last?: string },
): Promise<NamePage> {
  const names: string[] = [];
  if (options.n === 0) return { names, more: false };
  let startAfter = options.last !== undefined ? prefix + options.last : undefined;
  for (;;) {
    const want = options.n === undefined ? 1000 : Math.min(1000, options.n - names.length);
    const page = await storage.list(prefix, { startAfter, limit: want });
    for (const key of page.keys) names.push(key.slice(prefix.length));
    const last = page.keys[page.keys.length - 1];
    if (!page.truncated || last === undefined) return { names, more: false };
    if (options.n !== undefined && names.length >= options.n) return { names, more: true };
    startAfter = last;
  }
}
