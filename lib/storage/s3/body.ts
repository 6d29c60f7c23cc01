import { Readable } from 'node:stream';

/**
 * The most bytes `put` buffers from a stream body. PutObject needs the length up front, and the
 * registry only puts small objects (manifests, session state, upload tails under 5 MiB) from streams;
 * blob data goes through multipart uploads, whose parts stream with their size given.
 */
export const MAX_BUFFERED_PUT = 16 * 1024 * 1024;

/** Reads a whole stream body into memory, refusing (and cancelling) one longer than `limit`. */
export async function readBounded(stream: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.length;
    if (length > limit) {
      await reader.cancel();
      throw new RangeError(`a put body given as a stream must be at most ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, length);
}

/** A part body for the SDK, with the means to stop its request when the body fails. */
export interface StreamedBody {
  readonly body: Readable;
  /** Aborted when the body fails, so the request ends now rather than at the idle timeout. */
  readonly signal: AbortSignal;
  /** Why the body failed, if it did. */
  failure(): unknown;
}

/**
 * Wraps a web stream that must hold exactly `size` bytes (the Content-Length already sent). The SDK
 * pipes the body into the request, and a pipe does not pass a source's error on: without the abort,
 * a sender that disconnects would leave the request waiting for bytes until the idle timeout.
 */
export function streamedBody(stream: ReadableStream<Uint8Array>, size: number): StreamedBody {
  const controller = new AbortController();
  let failure: unknown;
  const body = Readable.from(exactly(stream, size), { objectMode: false });
  body.on('error', (err) => {
    failure = err;
    controller.abort(err);
  });
  return { body, signal: controller.signal, failure: () => failure };
}

async function* exactly(stream: ReadableStream<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  let length = 0;
  let done = false;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      length += next.value.length;
      if (length > size) throw new RangeError(`part body is longer than its size ${size}`);
      yield next.value;
    }
    done = true;
  } finally {
    // The error that ended the loop is already on its way; a failed cancel adds nothing to it.
    if (!done) await reader.cancel().catch(() => undefined);
  }
  if (length !== size) throw new RangeError(`part body ended after ${length} of ${size} bytes`);
}
