import { build } from 'esbuild';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

/** The Lambda functions, each bundled to `<outdir>/<name>/index.mjs` (handler: `index.handler`). */
export const FUNCTIONS = ['registry', 'janitor', 'auth-bootstrap', 'verifier', 'teardown'] as const;

export interface BundleSize {
  readonly name: string;
  readonly bytes: number;
  readonly mapBytes: number;
}

/**
 * One minified ESM bundle per function, AWS SDK included: the runtime's copy is a different
 * version than the one tested, and tree-shaking keeps only the S3 commands used (measured in
 * BENCHMARKS.md). Node 22 on arm64 is the deployment target; the output is plain JS, so the
 * architecture only matters to the runtime, not to esbuild.
 */
export async function bundleFunctions(outdir: string, root = process.cwd()): Promise<BundleSize[]> {
  await build({
    absWorkingDir: root,
    entryPoints: FUNCTIONS.map((name) => ({ in: `functions/${name}.ts`, out: `${name}/index` })),
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    // Prefer the ESM builds of dependencies: they tree-shake, their CommonJS builds do not.
    mainFields: ['module', 'main'],
    minify: true,
    sourcemap: true,
    // Source maps are for stack traces (NODE_OPTIONS=--enable-source-maps); legal comments are
    // kept in a separate file per bundle, not in the code Lambda parses at init.
    legalComments: 'external',
    // Some CommonJS dependencies call require() for Node built-ins; ESM has no require.
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return sizes(outdir);
}

async function sizes(outdir: string): Promise<BundleSize[]> {
  return Promise.all(
    FUNCTIONS.map(async (name) => {
      const file = join(outdir, name, 'index.mjs');
      return { name, bytes: (await stat(file)).size, mapBytes: (await stat(`${file}.map`)).size };
    }),
  );
}
