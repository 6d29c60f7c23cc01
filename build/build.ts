/** `npm run build`: the Lambda bundles in dist/, with their sizes. */
import { resolve } from 'node:path';
import { bundleFunctions } from './bundle.ts';

const outdir = resolve(process.argv[2] ?? 'dist');
for (const { name, bytes, mapBytes } of await bundleFunctions(outdir)) {
  process.stdout.write(
    `${name}: ${outdir}/${name}/index.mjs ${(bytes / 1024).toFixed(1)} KiB (map ${(mapBytes / 1024).toFixed(1)} KiB)\n`,
  );
}
