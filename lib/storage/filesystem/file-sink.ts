import type { FileHandle } from 'node:fs/promises';
import { S3_LIMITS } from '../port.ts';
import { writeAll } from './body-writer.ts';

/** Chunks are gathered into writes of about this size: one syscall per 64 KiB chunk would dominate. */
const BATCH_BYTES = 1024 * 1024;
/** Well under IOV_MAX (1024 on Linux): one `pwritev` takes at most this many chunks. */
const BATCH_CHUNKS = 256;

/**
 * Writes bytes into a file from `start` as their chunks arrive: a multipart part into its upload's
 * data file (PartSink), or an object's body into its file (ObjectSink). One batch is being written
 * while the next is gathered, so receiving and writing overlap, and no chunk is copied: the batch
 * goes to the kernel as it is (`pwritev`). At most two batches (about 2 MiB) are held.
 */
export class FileSink<T> {
  private batch: Uint8Array[] = [];
  private batchBytes = 0;
  private position: number;
  private size = 0;
  private writing: Promise<void> | undefined;
  private failure: { error: unknown } | undefined;
  private closed = false;
  /** The writeback started for the batches written so far (`syncAhead`). */
  private syncing: Promise<void> | undefined;

  constructor(
    private readonly handle: FileHandle,
    start: number,
    /** Records what was written once its bytes are on disk; called at most once. */
    private readonly record: (size: number) => Promise<T>,
    private readonly options: {
      /** Writes what must be in the file with the bytes (an object's header), before it is synced. */
      readonly seal?: (size: number) => Promise<void>;
      /**
       * Starts each batch's writeback (an `fdatasync` not waited for) once it is written, so that the
       * sync at the end finds little left: for a small object that is always ended durably (an upload's
       * tail), where the end's sync would otherwise write every byte back after the last one came.
       */
      readonly syncAhead?: boolean;
    } = {},
  ) {
    this.position = start;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.check();
    if (chunk.byteLength === 0) return;
    if (this.size + chunk.byteLength > S3_LIMITS.maxPartSize) {
      throw new RangeError(`more than ${S3_LIMITS.maxPartSize} bytes in one write`);
    }
    this.batch.push(chunk);
    this.batchBytes += chunk.byteLength;
    this.size += chunk.byteLength;
    if (this.batchBytes >= BATCH_BYTES || this.batch.length >= BATCH_CHUNKS) await this.flush();
  }

  async end(options: { readonly durable?: boolean } = {}): Promise<T> {
    try {
      this.check();
      await this.flush({ last: true });
      await this.writing;
      await this.syncing;
      this.check();
      await this.options.seal?.(this.size);
      // On disk before a session names the part. The parts of an upload share one file, so syncing
      // it once at the end of a request covers every part the request wrote.
      if (options.durable !== false) await this.handle.datasync();
      return await this.record(this.size);
    } finally {
      await this.close();
    }
  }

  async abort(): Promise<void> {
    await this.writing;
    await this.syncing;
    await this.close();
  }

  /** Starts writing the gathered batch once the one before it is written. */
  private async flush({ last = false } = {}): Promise<void> {
    await this.writing;
    this.check();
    if (this.batchBytes === 0) return;
    const batch = this.batch;
    const position = this.position;
    this.position += this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    const ahead = this.options.syncAhead && !last;
    this.writing = writeAll(this.handle, batch, position).then(
      () => {
        // Not waited for here; a failure is kept (a later sync of this file may not report it again).
        if (ahead) {
          const before = this.syncing;
          this.syncing = this.handle.datasync().then(
            () => before,
            (error: unknown) => {
              this.failure ??= { error };
            },
          );
        }
      },
      (error: unknown) => {
        this.failure ??= { error };
      },
    );
  }

  private check(): void {
    if (this.failure) throw this.failure.error;
    if (this.closed) throw new Error('the write was already ended or aborted');
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}
