import { build } from 'esbuild';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkSchemasTreeShaken } from '../../build/bundle.ts';

// The schemas modules of the clients the Lambda bundles take (build/bundle.ts), each with operations
// Berth sends and the error registry the client reads every failure through.
const clients = {
  s3: ['GetObject$', 'ListObjectsV2$', 'CompleteMultipartUpload$', 'UploadPart$', 'errorTypeRegistries'],
  ssm: ['GetParameter$', 'PutParameter$', 'DeleteParameters$', 'DescribeParameters$', 'errorTypeRegistries'],
  lambda: ['Invoke$', 'errorTypeRegistries'],
};
const schemasOf = (client: string) =>
  resolve(`node_modules/@aws-sdk/client-${client}/dist-es/schemas/schemas_0.js`);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-sdk-schemas-'));
  for (const [client, used] of Object.entries(clients)) {
    await writeFile(
      join(dir, `${client}.js`),
      `export { ${used.join(', ')} } from ${JSON.stringify(schemasOf(client))};\n`,
    );
  }
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function bundle(client: string, name: string, plugins: Parameters<typeof build>[0]['plugins']) {
  const outfile = join(dir, `${client}-${name}.mjs`);
  const result = await build({
    entryPoints: [join(dir, `${client}.js`)],
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
  it.each(Object.entries(clients))(
    'keeps the %s schemas a bundle uses identical and drops the others',
    async (client, used) => {
      const [before, after] = await Promise.all([
        bundle(client, 'without', []),
        bundle(client, 'with', [sdkSchemasTreeShaken]),
      ]);
      for (const name of used) {
        expect(after.module[name], name).toBeDefined();
        expect(plain(after.module[name]), name).toEqual(plain(before.module[name]));
      }
      // Every operation's schema was kept before; the used ones remain (with every error's schema,
      // which the error registries name). S3's module, loaded at the registry function's init,
      // goes from about 65 KiB minified to less than half.
      expect(after.bytes).toBeLessThan(client === 's3' ? before.bytes / 2 : before.bytes);
    },
  );
});
