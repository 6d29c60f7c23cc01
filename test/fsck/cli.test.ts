import { describe, expect, it } from 'vitest';
import type { FsckReport } from '../../lib/fsck/report.ts';
import { parseDigest } from '../../lib/oci/digest.ts';
import type { RepositoryName } from '../../lib/oci/names.ts';
import { keys, meta } from '../../lib/registry/keys.ts';
import { FilesystemDriver } from '../../lib/storage/filesystem/index.ts';
import { testRegistry } from '../http/harness.ts';
import { berthProcesses } from '../server/berth-process.ts';
import { populate } from './harness.ts';

/** `berth fsck` as a user runs it: what it prints, and its exit status. */

const { berth, tempDir } = berthProcesses('berth-fsck-cli-');

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = berth(['fsck', ...args]);
  const { code } = await p.exit(60_000);
  return { code, stdout: p.stdout, stderr: p.stderr };
}

describe('berth fsck (the command)', () => {
  it('prints a clean report and exits 0 on a clean store, and says what is broken with exit status 1', async () => {
    const dir = tempDir();
    const r = testRegistry({ storage: new FilesystemDriver({ root: dir }) });
    const p = await populate(r);

    const clean = await run(['--data-dir', dir]);
    expect(clean.stderr).toBe('');
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(
      /^fsck: clean; checked 4 repositories, 6 tags, 8 manifests, \d+ links, \d+ blobs in /,
    );

    const big = parseDigest(p.app.layers[1]!);
    const data = (await r.storage.head(keys.blob(big)))!.metadata[meta.dataKey]!;
    await r.storage.delete(data);
    const broken = await run(['--data-dir', dir]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain('BROKEN (1): images that will not pull\n');
    expect(broken.stdout).toContain(`  blob ${big.digest}: its data ${data} (6.0 MiB) is missing\n`);
    expect(broken.stdout).toContain('    breaks app:latest, app:v1\n');
    expect(broken.stdout).toMatch(/\nfsck: 1 broken, 0 inconsistent, 0 leftovers; checked /);

    const json = await run(['--data-dir', dir, '--json']);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as FsckReport;
    expect(report).toMatchObject({
      version: 1,
      clean: false,
      complete: true,
      mode: 'full',
      storage: 'filesystem',
      counts: { broken: 1, inconsistent: 0, leftover: 0 },
      options: { verifyDigests: false, repair: false, uploadTtlSeconds: 86400, graceSeconds: 86400 },
      collection: null,
    });
    expect(report.findings).toEqual([
      {
        severity: 'broken',
        kind: 'blob-data-missing',
        remedy: 'push-again',
        key: keys.blob(big),
        digest: big.digest,
        message: `blob ${big.digest}: its data ${data} (6.0 MiB) is missing`,
        affects: [{ repository: 'app', tags: ['latest', 'v1'], manifests: [p.app.digest] }],
      },
    ]);
  }, 120_000);

  it('exits 3 while inconsistencies remain, and 0 once --repair mended them', async () => {
    const dir = tempDir();
    const r = testRegistry({ storage: new FilesystemDriver({ root: dir }) });
    const p = await populate(r);
    await r.storage.delete(keys.catalog('cache' as RepositoryName));
    await r.storage.delete(keys.manifest('app' as RepositoryName, parseDigest(p.app.digest)));

    const found = await run(['--data-dir', dir]);
    expect(found.code).toBe(3);
    expect(found.stdout).toContain('INCONSISTENT (3): berth fsck --repair mends these\n');
    expect(found.stdout).toContain(
      '  repository cache holds tags or manifests but has no catalog entry: /v2/_catalog does not list it\n',
    );

    const repaired = await run(['--data-dir', dir, '--repair']);
    expect(repaired.code).toBe(0);
    expect(repaired.stdout).toContain('  repaired: repository cache holds tags or manifests');
    expect(repaired.stdout).toMatch(/\nfsck: 0 broken, 3 inconsistent, 0 leftovers; repaired 3; checked /);

    const after = await run(['--data-dir', dir]);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/^fsck: clean; /);
  }, 120_000);

  it('exits 2 with a message when it cannot run', async () => {
    const bad = await run(['--grace', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('berth fsck: "soon" is not a duration');
    const unknown = await run(['--fix-everything']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--fix-everything'");
    const help = berth(['--help']);
    await help.exit(30_000);
    expect(help.stdout).toContain('  fsck                    Check that every tag pulls');
    expect(help.stdout).toContain('Options for fsck');
  }, 60_000);
});
