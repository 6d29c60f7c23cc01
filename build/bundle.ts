import { build, type Plugin } from 'esbuild';
import { isBuiltin } from 'node:module';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { bundleWeb } from './web.ts';

/**
 * Node built-ins imported with `import` are loaded through the ESM loader, which copies every
 * export of the module into a namespace object, getters included: `import { request } from 'http'`
 * thus loads undici (http's lazy WebSocket and EventSource exports) and compiles its llhttp
 * WebAssembly, about 10 ms of a cold start measured on Node 22, for nothing the registry uses.
 * This plugin turns each such import into a `require()` of the built-in (the banner defines
 * `require`), which loads only the module itself; named imports become property reads at the use.
 */
export const builtinsThroughRequire: Plugin = {
  name: 'builtins-through-require',
  setup(b) {
    b.onResolve({ filter: /^[a-z:_/]+$/ }, (args) =>
      args.kind === 'import-statement' || args.kind === 'dynamic-import'
        ? isBuiltin(args.path) && args.namespace !== 'builtin'
          ? { path: args.path, namespace: 'builtin' }
          : undefined
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

/**
 * The AWS SDK describes every operation of a service in one module of schemas
 * (`dist-es/schemas/schemas_0.js` of each `@aws-sdk/client-` package: S3's is 1,000 array literals for its 100-odd
 * operations), keyed by module-level string constants in computed keys (`{ [_h]: ["GET", ...] }`).
 * esbuild cannot prove that a computed key whose value is a variable has no side effect (converting
 * a key to a string may call code), so it kept every schema although Berth sends about 15 S3
 * commands: 65 KiB of the registry function's init. This plugin writes each such key as the string
 * the constant holds (`{ ["http"]: ... }`), the same object, which esbuild can then drop when unused
 * (S3's module goes to 20 KiB). Only `const _x = "...";` declarations at the start of a line (the
 * module's top level, never reassigned) are substituted.
 */
export const sdkSchemasTreeShaken: Plugin = {
  name: 'sdk-schemas-tree-shaken',
  setup(b) {
    b.onLoad(
      { filter: /[\\/]@aws-sdk[\\/]client-[a-z0-9-]+[\\/]dist-es[\\/]schemas[\\/]schemas_\d+\.js$/ },
      async (args) => {
        const source = await readFile(args.path, 'utf8');
        const strings = new Map<string, string>();
        for (const [, name, literal] of source.matchAll(/^const (_\w+) = ("(?:[^"\\\n]|\\.)*");$/gm)) {
          strings.set(name!, literal!);
        }
        return {
          contents: source.replace(/\[(_\w+)\]:/g, (key, name: string) => {
            const literal = strings.get(name);
            return literal === undefined ? key : `[${literal}]:`;
          }),
          loader: 'js',
        };
      },
    );
  },
};

/** The Lambda functions, each bundled to `<outdir>/<name>/index.mjs` (handler: `index.handler`). */
export const FUNCTIONS = ['registry', 'janitor', 'auth-bootstrap', 'verifier', 'teardown', 'ui'] as const;

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
  // One build per function, so that each directory holds everything its function loads: the
  // chunks that code splitting makes of what a function imports with import() (the SSM and Lambda
  // clients, loaded on first use) stay beside its index.mjs, never shared with another function.
  await Promise.all(
    FUNCTIONS.map((name) =>
      build({
        absWorkingDir: root,
        entryPoints: { index: `functions/${name}.ts` },
        outdir: join(outdir, name),
        outExtension: { '.js': '.mjs' },
        chunkNames: 'chunks/[name]-[hash]',
        bundle: true,
        splitting: true,
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
        plugins: [builtinsThroughRequire, sdkSchemasTreeShaken],
        logLevel: 'warning',
      }),
    ),
  );
  // The ui function serves the web UI's files from beside its code (functions/ui.ts).
  await bundleWeb(join(outdir, 'ui', 'web'), root);
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

/**
 * The `berth` command as an ESM bundle (`npm start` runs it): a server started from it idles at
 * about 55 MiB less than one that compiles TypeScript on the fly with tsx, and starts faster
 * (BENCHMARKS.md). Code splitting puts what `berth serve` does not load (the other commands, the
 * Lambda gateway, the SSM and Lambda clients, the self-signed CA's X.509 code) in chunks beside it,
 * `chunks/<name>-<hash>.mjs`, loaded only by the commands and options that use them. Not minified, so
 * that its stack traces read as the source does. The chunks are written first (their names carry a
 * hash of their contents, so a running server's chunks are never overwritten), then the entry is
 * written aside and renamed into place, so that a server starting meanwhile never loads half a file.
 */
export async function bundleCli(outfile: string, root = process.cwd()): Promise<number> {
  const result = await build({
    absWorkingDir: root,
    entryPoints: { [basename(outfile, '.mjs')]: 'bin/berth.ts' },
    outdir: dirname(outfile),
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    splitting: true,
    write: false,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    mainFields: ['module', 'main'],
    legalComments: 'external',
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    plugins: [builtinsThroughRequire, sdkSchemasTreeShaken],
    logLevel: 'warning',
  });
  let bytes = 0;
  const entry = result.outputFiles.filter((file) => resolve(file.path) === resolve(outfile));
  const rest = result.outputFiles.filter((file) => resolve(file.path) !== resolve(outfile));
  for (const file of [...rest, ...entry]) {
    await mkdir(dirname(file.path), { recursive: true });
    const staging = `${file.path}.${process.pid}.tmp`;
    await writeFile(staging, file.contents);
    await rename(staging, file.path);
    if (file.path === outfile) bytes = file.contents.byteLength;
  }
  return bytes;
}
