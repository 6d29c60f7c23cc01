/**
 * `npm run build`: the Lambda bundles in dist/, with their sizes, and the `berth` command in
 * dist/cli/berth.mjs. `--cli`: only the command (what `npm start` builds before it runs it).
 */
import { resolve } from 'node:path';
import { bundleCli, bundleFunctions } from './bundle.ts';

const args = process.argv.slice(2);
const cliOnly = args.includes('--cli');
const outdir = resolve(args.find((a) => !a.startsWith('--')) ?? 'dist');
const cli = `${outdir}/cli/berth.mjs`;
const cliBytes = await bundleCli(cli);
if (!cliOnly) {
  process.stdout.write(`berth command: ${cli} ${(cliBytes / 1024).toFixed(1)} KiB\n`);
  for (const { name, bytes, mapBytes } of await bundleFunctions(outdir)) {
    process.stdout.write(
      `${name}: ${outdir}/${name}/index.mjs ${(bytes / 1024).toFixed(1)} KiB (map ${(mapBytes / 1024).toFixed(1)} KiB)\n`,
    );
  }
}
