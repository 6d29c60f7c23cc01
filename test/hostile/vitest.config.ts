// `npm run test:hostile`: hostile clients (slow headers and bodies, connection floods, oversized
// requests, login floods), reproduced against the bundled
// `berth serve` (what `npm start` runs) and `berth serve --lambda` (the local API Gateway), with the
// default limits. Real sockets, loopback only; bounded in time (about 3 minutes) and count (at most
// 500 connections at once). The root config excludes test/hostile/** so `npm test` stays fast.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/hostile/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 120_000,
    hookTimeout: 60_000,
    slowTestThreshold: 30_000,
  },
});
