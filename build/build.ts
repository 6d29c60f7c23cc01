/**
 * `npm run build`: the web UI in dist/web, the Lambda bundles in dist/ (the ui function with a copy
 * of the web UI), with their sizes, and the `berth` command in dist/cli/berth.mjs. `--cli`: only the
 * command and the web UI (what `npm start` builds before it runs it).
 */
import { resolve } from 'node:path';
import { bundleCli, bundleFunctions } from './bundle.ts';
import { bundleWeb, WEB_BUDGET_GZIPPED } from './web.ts';

const args = process.argv.slice(2);
const cliOnly = args.includes('--cli');
const outdir = resolve(args.find((a) => !a.startsWith('--')) ?? 'dist');
const cli = `${outdir}/cli/berth.mjs`;
const [cliBytes, web] = await Promise.all([bundleCli(cli), bundleWeb(`${outdir}/web`)]);
if (web.gzippedBytes > WEB_BUDGET_GZIPPED) {
  throw new Error(
    `the web UI is ${(web.gzippedBytes / 1024).toFixed(1)} KiB gzipped, over its ${WEB_BUDGET_GZIPPED / 1024} KiB budget`,
  );
}
if (!cliOnly) {
  process.stdout.write(`berth command: ${cli} ${(cliBytes / 1024).toFixed(1)} KiB\n`);
  process.stdout.write(`web UI: ${web.dir} ${(web.gzippedBytes / 1024).toFixed(1)} KiB gzipped\n`);
  for (const { name, bytes, mapBytes } of await bundleFunctions(outdir)) {
    process.stdout.write(
      `${name}: ${outdir}/${name}/index.mjs ${(bytes / 1024).toFixed(1)} KiB (map ${(mapBytes / 1024).toFixed(1)} KiB)\n`,
    );
  }
}
