import { build } from 'esbuild';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkSchemasTreeShaken } from '../../build/bundle.ts';

// The S3 client's schemas module, as the Lambda bundles take it (build/bundle.ts).
const schemas = resolve('node_modules/@aws-sdk/client-s3/dist-es/schemas/schemas_0.js');
// Operations the S3 driver sends, and the error registry the client reads every failure through.
const used = [
  'GetObject$',
  'ListObjectsV2$',
  'CompleteMultipartUpload$',
  'UploadPart$',
  'errorTypeRegistries',
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-sdk-schemas-'));
  await writeFile(join(dir, 'entry.js'), `export { ${used.join(', ')} } from ${JSON.stringify(schemas)};\n`);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function bundle(name: string, plugins: Parameters<typeof build>[0]['plugins']) {
  const outfile = join(dir, `${name}.mjs`);
  const result = await build({
    entryPoints: [join(dir, 'entry.js')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    minify: true,
    metafile: true,
    plugins,
    logLevel: 'silent',
  });
  const bytes = result.metafile.outputs[Object.keys(result.metafile.outputs)[0]!]!.bytes;
  return { bytes, module: (await import(pathToFileURL(outfile).href)) as Record<string, unknown> };
}

/** A schema as data: thunks (`() => Shape$`) followed, a shape met again named by its path. */
function plain(value: unknown, seen = new Map<unknown, string>(), path = '$'): unknown {
  if (typeof value === 'function') {
    return (value as { prototype?: unknown }).prototype !== undefined && value.length === 0 && value.name
      ? `class ${value.name}`
      : plain((value as () => unknown)(), seen, path);
  }
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return { ref: seen.get(value) };
  seen.set(value, path);
  if (Array.isArray(value)) return value.map((v, i) => plain(v, seen, `${path}[${i}]`));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v, seen, `${path}.${k}`)]));
}

describe('the SDK schemas plugin', () => {
  it('keeps the schemas a bundle uses identical and drops the others', async () => {
    const [before, after] = await Promise.all([
      bundle('without', []),
      bundle('with', [sdkSchemasTreeShaken]),
    ]);
    for (const name of used) {
      expect(after.module[name], name).toBeDefined();
      expect(plain(after.module[name]), name).toEqual(plain(before.module[name]));
    }
    // Every operation's schema was kept before (about 65 KiB minified); the four used ones remain.
    expect(before.bytes).toBeGreaterThan(50_000);
    expect(after.bytes).toBeLessThan(before.bytes / 2);
  });
});
