// The web UI suite (`npm run test:e2e:web`, and `test:e2e:web:lambda` inside test/e2e/with-s3.ts):
// one registry and one browser, tests in order (later ones see what earlier ones deleted).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('../../..', import.meta.url).pathname,
    include: ['test/e2e/web/web.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    sequence: { concurrent: false },
    testTimeout: 120_000,
    hookTimeout: 600_000,
  },
});
