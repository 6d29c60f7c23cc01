/** The web UI's files (`GET /`, `GET /ui/…`), bundled beside this function: no storage, no registry code. */
import { fileURLToPath } from 'node:url';
import { WebAssets } from '../lib/web/assets.ts';
import { createWebHandler } from '../lib/web/lambda.ts';

// Read and gzipped once per container, at init (the files are a few tens of KB).
const assets = await WebAssets.load(fileURLToPath(new URL('./web/', import.meta.url)));

export const handler = createWebHandler(assets);
