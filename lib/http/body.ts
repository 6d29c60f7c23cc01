import { Readable } from 'node:stream';
import type { HttpContext } from './context.ts';

/** The request's Content-Length, when it sent a valid one. */
export function contentLength(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d+$/.test(header.trim())) return undefined;
  return Number(header);
}

/**
 * The request body as its chunks arrive. On the Node server that is the `IncomingMessage` itself:
 * Hono's `Request` body wraps it in a web stream whose adapter copies every chunk, which a
 * multi-GiB push pays for in CPU and garbage. The wrapper is used when the message was already
 * read or wrapped (listeners on it), and everywhere else (Lambda, tests).
 */
export function requestBody(c: HttpContext): AsyncIterable<Uint8Array> | null {
  const incoming: unknown = c.env?.incoming;
  if (
    incoming instanceof Readable &&
    !incoming.readableDidRead &&
    incoming.listenerCount('data') === 0 &&
    incoming.listenerCount('readable') === 0
  ) {
    return incoming as AsyncIterable<Uint8Array>;
  }
  return c.req.raw.body;
}
