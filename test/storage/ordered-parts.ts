import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { S3_LIMITS, type StorageDriver } from '../../lib/storage/port.ts';
import type { DriverFactory } from './contract.ts';

/**
 * What the drivers that lay parts end to end (filesystem, and memory, which mimics it so that fast
 * tests catch a registry that relies on more) add to the contract: parts go in order, and uploading
 * part n again drops the parts after it. S3 keeps parts independent, so it does not run this.
 */
export function runOrderedPartsSuite(name: string, makeDriver: DriverFactory): void {
  describe(`ordered parts: ${name}`, () => {
    let store: StorageDriver;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ driver: store, cleanup } = await makeDriver());
    });
    afterEach(async () => {
      await cleanup();
    });

    it('takes part n only after part n-1', async () => {
      const id = await store.multipart.create('data/order');
      await expect(store.multipart.uploadPart('data/order', id, 2, Buffer.from('x'), 1)).rejects.toThrow(
        /part 1/,
      );
      await store.multipart.uploadPart('data/order', id, 1, Buffer.from('x'), 1);
      await expect(store.multipart.uploadPart('data/order', id, 3, Buffer.from('x'), 1)).rejects.toThrow(
        /part 2/,
      );
    });

    it('drops the later parts when a part is uploaded again', async () => {
      const size = S3_LIMITS.minPartSize;
      const id = await store.multipart.create('data/order');
      const one = await store.multipart.uploadPart('data/order', id, 1, Buffer.alloc(size, 1), size);
      const two = await store.multipart.uploadPart('data/order', id, 2, Buffer.alloc(size, 2), size);
      const three = await store.multipart.uploadPart('data/order', id, 3, Buffer.from('3'), 1);
      const again = await store.multipart.uploadPart('data/order', id, 2, Buffer.from('2'), 1);
      await expect(store.multipart.uploadPart('data/order', id, 4, Buffer.from('4'), 1)).rejects.toThrow(
        /part 3/,
      );
      await expect(store.multipart.complete('data/order', id, [one, two, three])).rejects.toThrow();
      await expect(store.multipart.complete('data/order', id, [one, again, three])).rejects.toThrow();
      await store.multipart.complete('data/order', id, [one, again]);
      const stored = await store.get('data/order');
      expect(stored?.size).toBe(size + 1);
      expect(Buffer.from(stored?.body ?? []).subarray(size - 1)).toEqual(Buffer.from([1, '2'.charCodeAt(0)]));
    });
  });
}
