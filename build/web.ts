import { build } from 'esbuild';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface WebBuild {
  readonly dir: string;
  /** Every file the page loads, gzipped as the server sends them. */
  readonly gzippedBytes: number;
  readonly files: { name: string; bytes: number; gzipped: number }[];
}

/** The budget the page must stay under (issue #20): everything it downloads, gzipped. */
export const WEB_BUDGET_GZIPPED = 80 * 1024;

/**
 * The web UI (web/): one minified ES module for the browser (Preact + htm and the app), one
 * stylesheet, the icon, and index.html naming them by content hash, so that they are cached for
 * good and a new build is picked up at once. Built into a staging directory, then renamed over
 * `<outdir>`, so a server starting meanwhile never reads half a build.
 */
export async function bundleWeb(outdir: string, root = process.cwd()): Promise<WebBuild> {
  const staging = `${outdir}.${process.pid}.tmp`;
  await rm(staging, { recursive: true, force: true });
  const assets = join(staging, 'assets');
  await mkdir(assets, { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: { app: 'web/src/main.ts', style: 'web/src/styles.css' },
    outdir: assets,
    entryNames: '[name]-[hash]',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome109', 'firefox115', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const js = outputs.find((f) => f.startsWith('app-') && f.endsWith('.js'));
  const css = outputs.find((f) => f.startsWith('style-') && f.endsWith('.css'));
  if (!js || !css) throw new Error(`the web build made no app script or stylesheet: ${outputs.join(', ')}`);
  await copyFile(join(root, 'web/icon.svg'), join(assets, 'icon.svg'));
  const template = await readFile(join(root, 'web/index.html'), 'utf8');
  await writeFile(join(staging, 'index.html'), template.replace('{{js}}', js).replace('{{css}}', css));
  await rm(outdir, { recursive: true, force: true });
  await rename(staging, outdir);
  const files = await Promise.all(
    ['index.html', `assets/${js}`, `assets/${css}`, 'assets/icon.svg'].map(async (name) => {
      const body = await readFile(join(outdir, name));
      return { name, bytes: body.byteLength, gzipped: gzipSync(body, { level: 9 }).byteLength };
    }),
  );
  return { dir: outdir, gzippedBytes: files.reduce((t, f) => t + f.gzipped, 0), files };
}
