import type { StorageDriver } from '../storage/port.ts';
import { keys } from './keys.ts';

/**
 * The store's own idea of "now": the lastModified of an object written this moment (one put, one
 * head). Every age the registry judges (garbage collection's grace period, stale upload sessions,
 * leftovers) compares this with other objects' lastModified, which the store stamped with the same
 * clock: the S3 service's, or the kernel's for the filesystem. The caller's clock may be far off
 * (a container's, a developer's laptop, a test's fake clock) without making anything look older or
 * newer than it is. The head is needed because S3's PutObject answers without a LastModified.
 */
export async function storeTime(storage: StorageDriver): Promise<number> {
  const written = await storage.put(keys.clock, new Uint8Array(0), { contentType: 'text/plain' });
  const info = await storage.head(keys.clock);
  return (info ?? written).lastModified.getTime();
}
