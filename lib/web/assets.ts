import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * The web UI's policy: its own scripts, styles and images only, no inline script or style, API
 * calls to this origin only, never framed. The page works offline (no fonts or CDNs to allow).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
} as const;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

interface Asset {
  readonly body: Uint8Array;
  readonly gzip?: Uint8Array;
  readonly type: string;
  readonly etag: string;
  /** Content-hashed file names never change: cached for a year. */
  readonly immutable: boolean;
}

/** A response as both the Node server and a Lambda function can send it. */
export interface WebResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
}

/** The paths the web UI owns: `/` (the page) and `/ui/…` (its files). Everything else is the registry's. */
export function isWebPath(path: string): boolean {
  return path === '/' || path === '/index.html' || path.startsWith('/ui/');
}

/**
 * The built web UI (`npm run build` writes it to dist/web: index.html and content-hashed files
 * under assets/), held in memory with gzip copies, served at `/` and `/ui/assets/<file>`.
 */
export class WebAssets {
  private constructor(private readonly files: ReadonlyMap<string, Asset>) {}

  /** Loads a built web UI directory; undefined when there is none (the UI was not built). */
  static async load(dir: string): Promise<WebAssets | undefined> {
    if (!existsSync(join(dir, 'index.html'))) return undefined;
    const files = new Map<string, Asset>();
    const add = async (urlPath: string, file: string, immutable: boolean) => {
      const body = new Uint8Array(await readFile(file));
      const type = TYPES[extname(file)] ?? 'application/octet-stream';
      const compressible = !type.startsWith('image/png') && body.byteLength > 512;
      files.set(urlPath, {
        body,
        ...(compressible && { gzip: new Uint8Array(gzipSync(body, { level: 9 })) }),
        type,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
        immutable,
      });
    };
    await add('/', join(dir, 'index.html'), false);
    const assets = join(dir, 'assets');
    if (existsSync(assets)) {
      for (const name of await readdir(assets)) {
        // Source maps stay on disk for debugging; the page never asks for them in production.
        if (name.endsWith('.map')) continue;
        await add(`/ui/assets/${name}`, join(assets, name), true);
      }
    }
    return new WebAssets(files);
  }

  /** The total bytes the page downloads, gzipped (what BENCHMARKS.md and the budget test count). */
  get gzippedBytes(): number {
    let total = 0;
    for (const asset of this.files.values()) total += asset.gzip?.byteLength ?? asset.body.byteLength;
    return total;
  }

  serve(
    method: string,
    path: string,
    headers: { acceptEncoding?: string; ifNoneMatch?: string },
  ): WebResponse {
    if (method !== 'GET' && method !== 'HEAD') {
      return text(405, `${method} is not supported here`, { Allow: 'GET, HEAD' });
    }
    const asset = this.files.get(path === '/index.html' ? '/' : path);
    if (!asset) return text(404, `no such file: ${path.slice(0, 200)}`);
    const cache = asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache';
    const common = { ...SECURITY_HEADERS, 'Cache-Control': cache, ETag: asset.etag, Vary: 'Accept-Encoding' };
    if (headers.ifNoneMatch !== undefined && headers.ifNoneMatch.split(/\s*,\s*/).includes(asset.etag)) {
      return { status: 304, headers: common, body: new Uint8Array() };
    }
    const gzip = asset.gzip && /\bgzip\b/.test(headers.acceptEncoding ?? '') ? asset.gzip : undefined;
    const body = gzip ?? asset.body;
    return {
      status: 200,
      headers: {
        ...common,
        'Content-Type': asset.type,
        'Content-Length': String(body.byteLength),
        ...(gzip && { 'Content-Encoding': 'gzip' }),
      },
      body: method === 'HEAD' ? new Uint8Array() : body,
    };
  }
}

function text(status: number, message: string, extra: Record<string, string> = {}): WebResponse {
  const body = new TextEncoder().encode(`${message}\n`);
  return {
    status,
    headers: {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': String(body.byteLength),
      'Cache-Control': 'no-store',
      ...extra,
    },
    body,
  };
}

/** As a Web-standard Response (the Hono app on the local server). */
export function toResponse(res: WebResponse): Response {
  const body = res.status === 304 || res.body.byteLength === 0 ? null : res.body;
  return new Response(body as Uint8Array<ArrayBuffer> | null, { status: res.status, headers: res.headers });
}
