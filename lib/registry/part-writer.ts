import type { ObjectSink, PartInfo, PartSink, StorageDriver } from '../storage/port.ts';

/**
 * Cuts a request's byte stream into multipart parts of `partSize` bytes, storing one part while the
 * next is received, so that receiving and storing overlap.
 *
 * - Stores that take a part as it arrives (`openPart`: the filesystem) get each part streamed into
 *   them once it has `minPartSize` bytes, enough to be a part whatever follows; before that, and
 *   while the part before is still being ended, its chunks are held here. Only the last part a
 *   request writes is ended durably (one sync of the upload's file per request, not per part): a
 *   full part stays open until `minPartSize` more bytes have come, which guarantees a later part.
 * - Other stores (S3, which needs a part's length first) get whole parts: the chunks of a part are
 *   gathered and uploaded while the next part's are gathered; at most two parts are held.
 *
 * What is left at the end of a request (less than `minPartSize` bytes) becomes the session's tail
 * (`storeTail`), unless the upload is being completed, when it is the last part. Stores that take an
 * object as it arrives (`openObject`: the filesystem) get the held bytes written into the tail's
 * object as they come (`streamTail`), while the request has made no part: the write of a small
 * PATCH's bytes then overlaps their receiving instead of following it. Chunks are held, not copied:
 * a caller must not change a chunk it has written.
 */
export class PartWriter {
  private pending: Uint8Array[] = [];
  private pendingSize = 0;
  private sink: PartSink | undefined;
  private sinkSize = 0;
  /** A sink that took a whole part, not yet ended: it is this request's last part unless more follows. */
  private fullSink: PartSink | undefined;
  /** The part being stored in the background; one at a time, so parts are recorded in order. */
  private inFlight: Promise<void> | undefined;
  private failure: { error: unknown } | undefined;
  private nextPart: number;
  /** The object the held bytes become at the end of the request (`streamTail`). */
  private tailKey: string | undefined;
  /** That object being written as the bytes come; dropped once the request makes a part. */
  private tailSink: ObjectSink | undefined;
  /** Whether the held bytes are written into `tailSink` as they come. */
  private mirroring = false;
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
    this.nextPart = parts.length + 1;
  }

  get uploadId(): string | undefined {
    return this.multipartId;
  }

  /**
   * Names the object that the bytes held at the end of this request become (`storeTail`), and starts
   * writing them into it as they come when the store can. Called before the first write. `expected`:
   * how many bytes the request will hold, the earlier tail's included, when known; a request known
   * to make a part writes no tail object as it goes.
   */
  streamTail(key: string, expected?: number): void {
    this.tailKey = key;
    // Only where held bytes stay under minPartSize (openPart): a store given whole parts holds up
    // to a part's size before uploading it.
    this.mirroring =
      this.storage.openObject !== undefined &&
      !!this.storage.multipart.openPart &&
      !(expected !== undefined && expected >= this.storage.multipart.minPartSize);
  }

  /** Bytes held here, in no part yet. */
  get buffered(): number {
    return this.pendingSize;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.check();
    let rest = chunk;
    while (rest.byteLength > 0) {
      if (this.sink) {
        const piece = rest.subarray(0, this.partSize - this.sinkSize);
        rest = rest.subarray(piece.byteLength);
        await this.sink.write(piece);
        this.sinkSize += piece.byteLength;
        if (this.sinkSize === this.partSize) this.holdFullSink();
        continue;
      }
      const piece = rest.subarray(0, this.partSize - this.pendingSize);
      rest = rest.subarray(piece.byteLength);
      this.pending.push(piece);
      this.pendingSize += piece.byteLength;
      if (this.mirroring) await this.mirror(piece);
      if (this.storage.multipart.openPart) {
        const enough = this.pendingSize >= this.storage.multipart.minPartSize;
        // Another part will follow in this request: the full one need not be synced.
        if (this.fullSink && enough) this.endFullSink({ durable: false });
        if (!this.fullSink && (this.pendingSize === this.partSize || (enough && !this.inFlight))) {
          await this.openSink();
        }
      } else if (this.pendingSize === this.partSize) {
        await this.uploadPending();
      }
    }
  }

  /**
   * The request is over but the upload goes on: everything that can be a non-last part is stored
   * as one; less than `minPartSize` bytes stay held for the caller to `drain` into a tail.
   */
  async endRequest(): Promise<void> {
    this.check();
    if (this.fullSink) this.endFullSink({ durable: true });
    else if (this.sink) this.endSink();
    else if (this.pendingSize >= this.storage.multipart.minPartSize) await this.uploadPending();
    await this.settle();
  }

  /** The upload is being completed: everything is stored, the rest as its last part. */
  async flushAll(): Promise<void> {
    this.check();
    if (this.fullSink) this.endFullSink({ durable: true });
    else if (this.sink) this.endSink();
    if (this.pendingSize > 0) await this.uploadPending();
    await this.settle();
  }

  /**
   * Stores the bytes held at the end of the request as the object `streamTail` named, durably, and
   * takes them out: their chunks, for a cache of the tail. Streamed while they came when the store
   * could; otherwise written whole now.
   */
  async storeTail(): Promise<Uint8Array[]> {
    this.check();
    const key = this.tailKey;
    if (key === undefined) throw new Error('storeTail needs streamTail first');
    const chunks = this.pending;
    const sink = this.tailSink;
    this.tailSink = undefined;
    this.mirroring = false;
    if (sink) {
      await sink.end();
      this.pending = [];
      this.pendingSize = 0;
    } else await this.storage.put(key, this.drain());
    return chunks;
  }

  /** Takes the held bytes out (for a tail object or a single small blob). */
  drain(): Uint8Array {
    const bytes =
      this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingSize);
    this.pending = [];
    this.pendingSize = 0;
    return bytes;
  }

  /**
   * The request failed: gives up the part being written and waits for the one being stored, so
   * that nothing of this request touches the upload once the caller lets the session go.
   */
  async abandon(): Promise<void> {
    // Silent: the request already failed, and a part it did not record is overwritten by the next
    // write of that part or goes with the multipart upload (cancel, expiry, garbage collection).
    for (const sink of [this.sink, this.fullSink, this.tailSink]) await sink?.abort().catch(() => undefined);
    this.sink = undefined;
    this.fullSink = undefined;
    this.tailSink = undefined;
    this.mirroring = false;
    await this.inFlight;
  }

  /** Writes a held piece into the tail's object. */
  private async mirror(piece: Uint8Array): Promise<void> {
    // Opened with the request's first held byte (an earlier tail's bytes come through `write` first).
    this.tailSink ??= await this.storage.openObject!(this.tailKey!);
    await this.tailSink.write(piece);
  }

  /** The request makes a part: what is held goes into it, and no longer into a tail's object. */
  private async stopMirroring(): Promise<void> {
    this.mirroring = false;
    const sink = this.tailSink;
    this.tailSink = undefined;
    await sink?.abort();
  }

  private async openSink(): Promise<void> {
    const openPart = this.storage.multipart.openPart!.bind(this.storage.multipart);
    await this.stopMirroring();
    await this.settle();
    const uploadId = await this.ensureUpload();
    const sink = await openPart(this.dataKey, uploadId, this.nextPart);
    this.nextPart++;
    this.sink = sink;
    const chunks = this.pending;
    this.pending = [];
    this.sinkSize = this.pendingSize;
    this.pendingSize = 0;
    for (const chunk of chunks) await sink.write(chunk);
    if (this.sinkSize === this.partSize) this.holdFullSink();
  }

  /** The last part of the request so far: ended durably. */
  private endSink(): void {
    const sink = this.sink!;
    this.sink = undefined;
    this.sinkSize = 0;
    this.launch(sink.end({ durable: true }));
  }

  private holdFullSink(): void {
    this.fullSink = this.sink;
    this.sink = undefined;
    this.sinkSize = 0;
  }

  private endFullSink(options: { durable: boolean }): void {
    const sink = this.fullSink!;
    this.fullSink = undefined;
    this.launch(sink.end(options));
  }

  private async uploadPending(): Promise<void> {
    await this.stopMirroring();
    await this.settle();
    const uploadId = await this.ensureUpload();
    const size = this.pendingSize;
    // One buffer, not a stream: the S3 SDK retries a buffer body and sends a stream only once.
    const body = this.drain();
    this.launch(this.storage.multipart.uploadPart(this.dataKey, uploadId, this.nextPart++, body, size));
  }

  private async ensureUpload(): Promise<string> {
    if (!this.multipartId) {
      this.multipartId = await this.storage.multipart.create(this.dataKey);
      await this.onCreate(this.multipartId);
    }
    return this.multipartId;
  }

  private launch(storing: Promise<PartInfo>): void {
    this.inFlight = storing.then(
      (part) => {
        this.parts.push(part);
        this.inFlight = undefined;
      },
      (error: unknown) => {
        this.failure ??= { error };
        this.inFlight = undefined;
      },
    );
  }

  /** Waits for the part being stored; throws what failed in the background. */
  private async settle(): Promise<void> {
    await this.inFlight;
    this.check();
  }

  private check(): void {
    if (this.failure) throw this.failure.error;
  }
}
