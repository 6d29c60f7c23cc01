// Separate config for the real-client end-to-end suite (`npm run test:e2e`); the root config
// excludes test/e2e/** so `npm test` never starts dockerd. Tests run one at a time in one worker:
// they share one registry, one dockerd and one containerd, and the machine has 2 cores.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('../../..', import.meta.url).pathname,
    include: ['test/e2e/clients/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 5 * 60_000,
    hookTimeout: 5 * 60_000,
    reporters: ['default', './test/e2e/clients/reporter.ts'],
    slowTestThreshold: 10_000,
  },
});
