import { link, mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/config.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import { startLocalRegistry } from '../../lib/setup/local-server.ts';
import { FilesystemDriver } from '../../lib/storage/filesystem/index.ts';
import { gc, imageOf, pullAndVerify, push } from '../gc/harness.ts';
import { testRegistry } from '../http/harness.ts';

/**
 * What a crash mid-write leaves in a filesystem store's `.tmp/` (RELIABILITY.md, finding 6): files being
 * written, a staging directory of a multipart upload, and a second hard link to an object just
 * published (link(2), then the crash before the temp name was removed). Its bytes must not outlive
 * the object.
 */

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function plantLeftovers(root: string, ageMs: number): Promise<string[]> {
  const tmp = join(root, '.tmp');
  await mkdir(join(tmp, 'staging-upload'), { recursive: true });
  await writeFile(join(tmp, 'staging-upload', 'data'), Buffer.alloc(4096, 1));
  await writeFile(join(tmp, 'half-written'), Buffer.alloc(100_000, 2));
  // A published object's file, linked a second time from .tmp.
  const objects = join(root, 'objects');
  const files: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else files.push(path);
    }
  };
  await walk(objects);
  await link(files[0]!, join(tmp, 'linked'));
  // Ages on the kernel's clock (what the store reads), not this process's (faketime moves only that).
  const now = (await stat(join(tmp, 'half-written'))).mtimeMs;
  const old = new Date(now - ageMs);
  const planted = ['staging-upload', 'half-written', 'linked'];
  for (const name of planted) await utimes(join(tmp, name), old, old);
  return planted;
}

describe('crash leftovers in the filesystem store', () => {
  it('garbage collection removes temporary files older than an hour, not younger ones, and keeps the objects', async () => {
    const root = await mkdtemp(join(tmpdir(), 'berth-left-'));
    dirs.push(root);
    const r = testRegistry({ storage: new FilesystemDriver({ root }) });
    await push(r, 'app', 'v1', imageOf(90));
    await plantLeftovers(root, 2 * 3600_000);
    await writeFile(join(root, '.tmp', 'in-progress'), 'x'); // a write of this very moment
    const result = await gc(r);
    expect(result.deleted.filter((d) => d.kind === 'temp')).toEqual([
      expect.objectContaining({ key: '3 temporary files' }),
    ]);
    expect(result.deleted.find((d) => d.kind === 'temp')!.size).toBeGreaterThanOrEqual(104_096);
    expect((await readdir(join(root, '.tmp'))).sort()).toEqual(['in-progress']);
    await pullAndVerify(r, 'app', 'v1');
  });

  it('a server started on a data directory a crash left removes them at once', async () => {
    const root = await mkdtemp(join(tmpdir(), 'berth-left-'));
    dirs.push(root);
    const r = testRegistry({ storage: new FilesystemDriver({ root }) });
    await push(r, 'app', 'v1', imageOf(91));
    await plantLeftovers(root, 2 * 60_000);
    const server = await startLocalRegistry(
      parseConfig({ dataDir: root, port: 0, logLevel: 'silent' }),
      createLogger('silent'),
    );
    try {
      await expect.poll(async () => (await readdir(join(root, '.tmp'))).length, { timeout: 30_000 }).toBe(0);
      const res = await fetch(`${server.url}/v2/app/manifests/v1`, {
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(res.status).toBe(200);
    } finally {
      await server.close();
    }
    // The object the stray link pointed at is intact (one link left).
    await pullAndVerify(r, 'app', 'v1');
  });
});
