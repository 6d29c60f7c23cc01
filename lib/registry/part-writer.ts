import type { PartInfo, StorageDriver } from '../storage/port.ts';

/**
 * Cuts a byte stream into multipart parts of `partSize` bytes, holding at most one part in memory.
 * What is left at the end of a request is either uploaded as a part (when S3 would take it as a
 * non-last part) or handed back to become the session's small tail object.
 */
export class PartWriter {
  private pending: Uint8Array[] = [];
  private pendingSize = 0;
  readonly parts: PartInfo[];

  constructor(
    private readonly storage: StorageDriver,
    private readonly dataKey: string,
    private readonly partSize: number,
    parts: readonly PartInfo[],
    private multipartId: string | undefined,
    /** Called once, when the first part is about to be written and no multipart upload exists yet. */
    private readonly onCreate: (multipartId: string) => Promise<void>,
  ) {
    this.parts = [...parts];
  }

  get uploadId(): string | undefined {
    return this.multipartId;
  }

  get buffered(): number {
    return this.pendingSize;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.byteLength === 0) return;
    this.pending.push(chunk);
    this.pendingSize += chunk.byteLength;
    while (this.pendingSize >= this.partSize) await this.flush(this.partSize);
  }

  /** Uploads everything buffered as one part (the caller decides it is big enough, or the last). */
  async flushAll(): Promise<void> {
    if (this.pendingSize > 0) await this.flush(this.pendingSize);
  }

  /** Takes the buffered bytes out (for a tail object or a single small blob). */
  drain(): Uint8Array {
    const bytes = Buffer.concat(this.pending, this.pendingSize);
    this.pending = [];
    this.pendingSize = 0;
    return bytes;
  }

  private async flush(size: number): Promise<void> {
    const all = this.drain();
    const part = all.subarray(0, size);
    const rest = all.subarray(size);
    if (rest.byteLength > 0) {
      this.pending = [rest];
      this.pendingSize = rest.byteLength;
    }
    if (!this.multipartId) {
      this.multipartId = await this.storage.multipart.create(this.dataKey);
      await this.onCreate(this.multipartId);
    }
    const partNumber = this.parts.length + 1;
    this.parts.push(
      await this.storage.multipart.uploadPart(this.dataKey, this.multipartId, partNumber, part, size),
    );
  }
}
