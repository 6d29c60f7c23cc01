// Separate config for the real-client end-to-end suite (`npm run test:e2e`); the root config
// excludes test/e2e/** so `npm test` never starts dockerd. Tests run one at a time in one worker:
// they share one registry, one dockerd and one containerd, and the machine has 2 cores.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('../../..', import.meta.url).pathname,
    // One suite per run, each with its own registry, chosen by BERTH_E2E_SUITE: `local` (npm start;
    // the default), `auth` (token authentication) or `lambda` (`npm run test:e2e:lambda`, which
    // needs S3: run it inside test/e2e/with-s3.ts).
    include: [`test/e2e/clients/${process.env.BERTH_E2E_SUITE ?? 'local'}.test.ts`],
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 5 * 60_000,
    hookTimeout: 5 * 60_000,
    reporters: ['default', './test/e2e/clients/reporter.ts'],
    slowTestThreshold: 10_000,
  },
});
