/**
 * How the size of each write system call changes the kernel's time to take a body into the page
 * cache, on this machine's disk: 64 files of 4 MiB (the 64 x 4 MiB push's tails), each written at
 * an offset of 200 bytes (an object header) in writes of the given size, then fdatasync'ed, as the
 * filesystem store writes an object. Prints, per write size and round, the wall time of the writes
 * and of the syncs and the process's system CPU time. The rounds alternate the sizes, so that a
 * change in the machine's state hits each alike.
 *
 *   npx tsx bench/write-sizes.ts [rounds=3] [dir=$TMPDIR]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MiB = 1024 * 1024;
const SIZES = [4 * MiB, MiB, 512 * 1024, 128 * 1024];
const FILES = 64;
const HEADER = 200;
const rounds = Number(process.argv[2] ?? 3);
const dir = mkdtempSync(join(process.argv[3] ?? tmpdir(), 'berth-write-sizes-'));
const body = randomBytes(4 * MiB);

async function writeFiles(writeSize: number, into: string) {
  let writing = 0;
  let syncing = 0;
  const before = process.resourceUsage().systemCPUTime;
  for (let i = 0; i < FILES; i++) {
    const handle = await open(join(into, `f${i}`), 'wx');
    try {
      const t0 = performance.now();
      await handle.write(Buffer.alloc(HEADER, ' '), 0, HEADER, 0);
      for (let at = 0; at < body.length; at += writeSize) {
        await handle.write(body, at, Math.min(writeSize, body.length - at), HEADER + at);
      }
      const t1 = performance.now();
      await handle.datasync();
      writing += t1 - t0;
      syncing += performance.now() - t1;
    } finally {
      await handle.close();
    }
  }
  return { writing, syncing, system: (process.resourceUsage().systemCPUTime - before) / 1000 };
}

try {
  process.stdout.write('write size | round | writes ms | syncs ms | system CPU ms\n');
  for (let round = 1; round <= rounds; round++) {
    for (const size of SIZES) {
      const into = mkdtempSync(join(dir, 'round-'));
      const r = await writeFiles(size, into);
      rmSync(into, { recursive: true, force: true });
      process.stdout.write(
        `${String(size / 1024).padStart(5)} KiB | ${round} | ${r.writing.toFixed(0).padStart(6)} | ${r.syncing.toFixed(0).padStart(5)} | ${r.system.toFixed(0).padStart(6)}\n`,
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
