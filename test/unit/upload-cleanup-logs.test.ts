import { describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/logging/logger.ts';
import { parseName } from '../../lib/oci/names.ts';
import { InMemoryHashStates } from '../../lib/registry/hashing.ts';
import { Registry } from '../../lib/registry/registry.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { PreconditionFailed, StorageUnavailable, type StorageDriver } from '../../lib/storage/port.ts';

/**
 * A cleanup that fails after an upload request has failed leaves something behind; the operator
 * learns of it from the log (what was left, of which session), while the client is told the
 * request's own failure.
 */

interface Faults {
  /** Writes of session state fail: 'refused' as a lost conditional write, true as an unanswered request. */
  sessionWrites: boolean | 'refused';
  /** Deletes of tail objects fail. */
  tailDeletes: boolean;
}

function faultyStore(faults: Faults, memory = new MemoryDriver()): StorageDriver {
  return new Proxy(memory, {
    get(target, prop, receiver) {
      if (prop === 'put') {
        return (...args: Parameters<StorageDriver['put']>) => {
          if (faults.sessionWrites && args[0].startsWith('uploads/')) {
            return Promise.reject(
              faults.sessionWrites === 'refused'
                ? new PreconditionFailed(args[0])
                : new StorageUnavailable('session write failed'),
            );
          }
          return target.put(...args);
        };
      }
      if (prop === 'delete') {
        return (key: string) => {
          if (faults.tailDeletes && key.includes('.tail-')) {
            return Promise.reject(new StorageUnavailable('tail delete refused'));
          }
          return target.delete(key);
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

describe('failed cleanups of upload requests', () => {
  function registryOn(
    faults: Faults,
    lines: Record<string, unknown>[],
    memory = new MemoryDriver(),
  ): Registry {
    return new Registry({
      storage: faultyStore(faults, memory),
      hashes: new InMemoryHashStates(),
      limits: { maxBlobSize: 1 << 30, partSize: 5 * 1024 * 1024, leaseMs: 60_000 },
      mountWithoutFrom: false,
      logger: createLogger('debug', {}, (line) => lines.push(JSON.parse(line) as Record<string, unknown>)),
    });
  }

  it('logs a tail it could not delete, naming the session and the object left behind', async () => {
    const faults: Faults = { sessionWrites: false, tailDeletes: false };
    const lines: Record<string, unknown>[] = [];
    const registry = registryOn(faults, lines);
    const repo = parseName('team/app');
    const session = await registry.uploads.start(repo);
    // 100 bytes are too few for a part: they go to a tail object, then the session's state is
    // written, which another request's write refuses; deleting the tail fails too.
    faults.sessionWrites = 'refused';
    faults.tailDeletes = true;
    await expect(
      registry.uploads.append(repo, session.id, once(new Uint8Array(100)), { length: 100 }),
    ).rejects.toMatchObject({ kind: 'upload-changed' });
    const warning = lines.find((line) => line.level === 'warn');
    expect(warning).toMatchObject({
      msg: 'tail of a failed upload request not deleted; left to garbage collection',
      upload: session.id,
      key: expect.stringMatching(new RegExp(`^data/${session.id}\\.tail-1-`)) as unknown,
      error: 'StorageUnavailable',
      errorMessage: 'tail delete refused',
    });
  });

  it('keeps and logs the tail of a request whose state write went unanswered: the session may name it', async () => {
    const faults: Faults = { sessionWrites: false, tailDeletes: false };
    const lines: Record<string, unknown>[] = [];
    const memory = new MemoryDriver();
    const registry = registryOn(faults, lines, memory);
    const repo = parseName('team/app');
    const session = await registry.uploads.start(repo);
    faults.sessionWrites = true;
    await expect(
      registry.uploads.append(repo, session.id, once(new Uint8Array(100)), { length: 100 }),
    ).rejects.toBeInstanceOf(StorageUnavailable);
    const warning = lines.find((line) => line.level === 'warn');
    expect(warning).toMatchObject({
      msg: 'tail of an upload request whose state write failed kept: the session may name it',
      upload: session.id,
    });
    // Had the write landed (its answer lost), the session would name this tail: it is still there.
    expect((await memory.list('data/')).keys).toEqual([warning!.key]);
  });
});
