import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe } from 'vitest';
import { FilesystemDriver } from '../../lib/storage/filesystem/index.ts';
import { mirrorSuite } from './suite.ts';

describe('pull-through cache on the filesystem store', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  mirrorSuite(async () => {
    const root = await mkdtemp(join(tmpdir(), 'berth-mirror-'));
    dirs.push(root);
    return new FilesystemDriver({ root });
  });
});
