/**
 * The bytes of upload tails this process wrote, kept for the session's next request: a further
 * chunk joins the previous tail's bytes to its own, and reading them back from the store would be
 * one more sequential request before its answer (docs/architecture.md, "Upload sessions").
 *
 * A tail object is written once under a key no other request uses (`data/<id>.tail-<n>-<token>`)
 * and never changed, so bytes kept here are the object's as long as it exists; whether the session
 * still names it is settled by the request's conditional write, as when the bytes come from the
 * store. Bounded in bytes, least recently used out first; a session's entries go when it ends.
 */
export class TailCache {
  private readonly entries = new Map<string, Tail>();
  private size = 0;

  constructor(private readonly maxBytes = 32 * 1024 * 1024) {}

  /** Remembers `chunks`, in order, as the content of the tail object `key` (once its write succeeded). */
  put(key: string, chunks: readonly Uint8Array[]): void {
    this.drop(key);
    // A small view into a larger buffer (a piece of a request's chunk) would keep all of it alive:
    // keep a copy of those. What a kept view holds on to is what counts against the bound.
    const kept = chunks.map((chunk) =>
      chunk.byteLength * 2 < chunk.buffer.byteLength ? chunk.slice() : chunk,
    );
    const tail = {
      chunks: kept,
      bytes: kept.reduce((sum, chunk) => sum + chunk.byteLength, 0),
      held: kept.reduce((sum, chunk) => sum + chunk.buffer.byteLength, 0),
    };
    if (tail.held > this.maxBytes) return;
    this.entries.set(key, tail);
    this.size += tail.held;
    for (const [oldest, value] of this.entries) {
      if (this.size <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.size -= value.held;
    }
  }

  /** The chunks of `key` if this process wrote them and still holds all `size` bytes of them. */
  get(key: string, size: number): readonly Uint8Array[] | undefined {
    const tail = this.entries.get(key);
    if (!tail || tail.bytes !== size) return undefined;
    // Most recently used last.
    this.entries.delete(key);
    this.entries.set(key, tail);
    return tail.chunks;
  }

  drop(key: string): void {
    const tail = this.entries.get(key);
    if (!tail) return;
    this.entries.delete(key);
    this.size -= tail.held;
  }

  /** Forgets every tail of the session `id` (completed or removed). */
  forgetSession(id: string): void {
    const prefix = `data/${id}.tail-`;
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.drop(key);
  }

  /** What the kept tails hold on to, in bytes. */
  get bytes(): number {
    return this.size;
  }
}

interface Tail {
  readonly chunks: readonly Uint8Array[];
  /** The tail's length. */
  readonly bytes: number;
  /** The memory its chunks keep alive. */
  readonly held: number;
}
