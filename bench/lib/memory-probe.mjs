// Preloaded into a server the bench measures (`node --import <this file> ...`): on SIGUSR2 it writes
// the process's memory figures as JSON to $BENCH_MEMORY_PROBE_OUT, then a heap snapshot beside it
// (<out>.heapsnapshot). Nothing else: the server runs as it would without it.
import { renameSync, writeFileSync } from 'node:fs';
import process from 'node:process';
import v8 from 'node:v8';

const out = process.env.BENCH_MEMORY_PROBE_OUT;
if (out) {
  process.on('SIGUSR2', () => {
    const figures = {
      usage: process.memoryUsage(),
      code: v8.getHeapCodeStatistics(),
      spaces: v8.getHeapSpaceStatistics().map((s) => ({
        name: s.space_name,
        size: s.space_size,
        used: s.space_used_size,
      })),
    };
    v8.writeHeapSnapshot(`${out}.heapsnapshot`);
    writeFileSync(`${out}.tmp`, JSON.stringify(figures));
    // Renamed last: the bench waits for this name, and the snapshot is whole by then.
    renameSync(`${out}.tmp`, out);
  });
}
