/**
 * An async mutex per key, in this process. Every change to a key (put, delete, completion) runs under
 * its lock, so a conditional write's check and its rename are one step for everyone in the process.
 * Other processes are not covered: one process per data directory.
 */
export class KeyLocks {
  private readonly tails = new Map<string, Promise<void>>();

  async with<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key);
    let release = () => {};
    const tail = new Promise<void>((resolve) => (release = resolve));
    this.tails.set(key, tail);
    await previous;
    try {
      return await task();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
