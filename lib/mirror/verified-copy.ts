import { createHash } from 'node:crypto';
import type { ParsedDigest } from '../oci/digest.ts';

/** The upstream sent something else than the blob it was asked for; nothing of it is kept. */
export class UpstreamContentInvalid extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamContentInvalid';
  }
}

/** One output's queue: at most this many bytes wait for a slow reader before the copy waits too. */
const QUEUE_BYTES = 1024 * 1024;

export interface VerifiedCopy {
  /** For the client: the bytes as they arrive; errors instead of ending if they prove wrong. */
  readonly client: ReadableStream<Uint8Array>;
  /** For storage: the same bytes; errors instead of ending if they prove wrong. */
  readonly store: ReadableStream<Uint8Array>;
}

/**
 * Copies an upstream blob body to two readers (the client and the store) while hashing it. The copy
 * moves at the pace of the slower reader still reading, so memory stays bounded (one queue each); a
 * reader that cancels (the client hung up) no longer holds the other back. At the end the length and
 * digest are checked: on a mismatch both outputs error instead of ending, so the store writes nothing
 * and the client's response is cut off rather than completed with wrong bytes.
 */
export function verifiedCopy(
  source: ReadableStream<Uint8Array>,
  digest: ParsedDigest,
  expectedLength: number | undefined,
  maxLength: number,
): VerifiedCopy {
  const outputs = [new Output(), new Output()] as const;
  const reader = source.getReader();
  const hash = createHash(digest.algorithm);
  let received = 0;
  const fail = (err: unknown) => {
    for (const o of outputs) o.error(err);
    // Both readers get `err`; cancelling the upstream body only frees the connection, and its own
    // failure (the connection already broken) adds nothing to that.
    void reader.cancel().catch(() => undefined);
  };
  const pump = async () => {
    for (;;) {
      await Promise.all(outputs.map((o) => o.ready()));
      if (outputs.every((o) => o.gone)) {
        // Nobody reads any more: cancelling only frees the upstream connection, and a failure to
        // do so (the connection already gone) leaves nothing to report.
        await reader.cancel().catch(() => undefined);
        return;
      }
      const { done, value } = await reader.read();
      if (done) break;
      received += value.byteLength;
      const limit = Math.min(expectedLength ?? maxLength, maxLength);
      if (received > limit) {
        throw new UpstreamContentInvalid(
          expectedLength !== undefined && received > expectedLength
            ? `the upstream sent more than the ${expectedLength} bytes it announced for ${digest.digest}`
            : `blob ${digest.digest} is larger than this registry's limit of ${maxLength} bytes`,
        );
      }
      hash.update(value);
      for (const o of outputs) o.push(value);
    }
    if (expectedLength !== undefined && received !== expectedLength) {
      throw new UpstreamContentInvalid(
        `the upstream sent ${received} of the ${expectedLength} bytes it announced for ${digest.digest}`,
      );
    }
    const hex = hash.digest('hex');
    if (hex !== digest.hex) {
      throw new UpstreamContentInvalid(
        `the upstream sent content with digest ${digest.algorithm}:${hex} for ${digest.digest}`,
      );
    }
    for (const o of outputs) o.close();
  };
  pump().catch(fail);
  return { client: outputs[0].stream, store: outputs[1].stream };
}

class Output {
  readonly stream: ReadableStream<Uint8Array>;
  gone = false;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private wake: (() => void) | undefined;

  constructor() {
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => this.notify(),
        cancel: () => {
          this.gone = true;
          this.notify();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: QUEUE_BYTES }),
    );
  }

  /** Resolves when this output can take another chunk, or no longer wants any. */
  async ready(): Promise<void> {
    while (!this.gone && (this.controller.desiredSize ?? 0) <= 0) {
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  push(chunk: Uint8Array): void {
    if (!this.gone) this.controller.enqueue(chunk);
  }

  close(): void {
    if (!this.gone) this.controller.close();
  }

  error(err: unknown): void {
    if (this.gone) return;
    this.gone = true;
    this.controller.error(err);
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
