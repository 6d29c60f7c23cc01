import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The built web UI: `dist/web` seen from the bundled command (dist/cli/berth.mjs, what `npm start`
 * runs, or one of its split chunks in dist/cli/chunks/) or from this source file (tsx). Undefined
 * when it was not built (`npm run build`).
 */
export function findWebDir(): string | undefined {
  const candidates = ['../web/', '../../dist/web/', '../../web/'].map((path) =>
    fileURLToPath(new URL(path, import.meta.url)),
  );
  return candidates.find((dir) => existsSync(`${dir}index.html`));
}
