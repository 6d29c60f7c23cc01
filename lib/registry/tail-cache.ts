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
  private readonly entries = new Map<string, Uint8Array>();
  private size = 0;

  constructor(private readonly maxBytes = 32 * 1024 * 1024) {}

  /** Remembers `bytes` as the content of the tail object `key` (once its write succeeded). */
  put(key: string, bytes: Uint8Array): void {
    if (bytes.byteLength > this.maxBytes) return;
    this.drop(key);
    // A view into a larger buffer (a request chunk) would keep all of it alive: keep a copy.
    const own = bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
    this.entries.set(key, own);
    this.size += own.byteLength;
    for (const [oldest, value] of this.entries) {
      if (this.size <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.size -= value.byteLength;
    }
  }

  /** The bytes of `key` if this process wrote them and still holds them. */
  get(key: string): Uint8Array | undefined {
    const bytes = this.entries.get(key);
    if (bytes) {
      // Most recently used last.
      this.entries.delete(key);
      this.entries.set(key, bytes);
    }
    return bytes;
  }

  drop(key: string): void {
    const bytes = this.entries.get(key);
    if (!bytes) return;
    this.entries.delete(key);
    this.size -= bytes.byteLength;
  }

  /** Forgets every tail of the session `id` (completed or removed). */
  forgetSession(id: string): void {
    const prefix = `data/${id}.tail-`;
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.drop(key);
  }

  get bytes(): number {
    return this.size;
  }
}
