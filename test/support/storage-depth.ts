import type { StorageDriver } from '../../lib/storage/port.ts';

/** One storage call a request made, and how deep it sat on the request's critical path. */
export interface RecordedCall {
  /** `head`, `put`, `multipart.complete`, ... */
  readonly op: string;
  /** The key (or prefix) it named. */
  readonly key: string;
  /** 1 + the deepest call that had finished before this one started. */
  readonly depth: number;
}

export interface DepthReport {
  readonly calls: readonly RecordedCall[];
  /** The longest chain of calls each started after the previous one finished: 0 without calls. */
  readonly sequential: number;
}

/**
 * A storage port that records each call's depth: 1 + the deepest call (of the same measurement) that
 * had finished before it started. The deepest depth is the number of store round trips a request
 * made one after another, what a client waits for on S3 (docs/architecture.md). Counts, not times:
 * every call completes only after the event loop has run everything already queued (setImmediate),
 * so two calls a request starts without waiting for each other always overlap, however fast the
 * store underneath is.
 *
 * The regression tests of the manifest and upload paths (test/http/critical-path.test.ts,
 * test/http/upload-critical-path.test.ts) use it.
 */
export class DepthRecorder {
  readonly storage: StorageDriver;
  private calls: RecordedCall[] = [];
  private finishedDepth = 0;
  private recording = false;

  constructor(inner: StorageDriver) {
    this.storage = this.wrap(inner, '') as StorageDriver;
  }

  /**
   * Records from now on; each `take()` reports the calls since the one before (the upload routes'
   * test, which makes each request and then takes its calls).
   */
  start(): void {
    this.calls = [];
    this.finishedDepth = 0;
    this.recording = true;
  }

  /** The calls since `start()` or the last `take()`, and how deep the deepest sat; then starts afresh. */
  take(): DepthReport {
    const calls = this.calls;
    this.calls = [];
    this.finishedDepth = 0;
    return { calls, sequential: calls.reduce((max, c) => Math.max(max, c.depth), 0) };
  }

  /** Runs `fn` and reports the storage calls made until it returned. */
  async measure(fn: () => Promise<unknown>): Promise<DepthReport> {
    this.calls = [];
    this.finishedDepth = 0;
    this.recording = true;
    try {
      await fn();
    } finally {
      this.recording = false;
    }
    const calls = this.calls;
    return { calls, sequential: calls.reduce((max, c) => Math.max(max, c.depth), 0) };
  }

  private wrap<T extends object>(target: T, prefix: string): T {
    return new Proxy(target, {
      get: (obj, property, receiver) => {
        const value = Reflect.get(obj, property, receiver) as unknown;
        if (typeof property !== 'string') return value;
        if (typeof value === 'function') {
          return (...args: unknown[]) =>
            this.call(`${prefix}${property}`, args, () =>
              (value as (...a: unknown[]) => unknown).apply(obj, args),
            );
        }
        if ((property === 'multipart' || property === 'direct') && value && typeof value === 'object') {
          return this.wrap(value, `${property}.`);
        }
        return value;
      },
    });
  }

  private call(op: string, args: unknown[], run: () => unknown): unknown {
    if (!this.recording) return run();
    const depth = this.finishedDepth + 1;
    const record = { op, key: typeof args[0] === 'string' ? args[0] : '', depth };
    this.calls.push(record);
    const finish = () => {
      // Only calls still part of this measurement move its depth.
      if (this.calls.includes(record)) this.finishedDepth = Math.max(this.finishedDepth, depth);
    };
    const result = run();
    if (!(result instanceof Promise)) return result;
    return result.then(
      async (value: unknown) => {
        await new Promise((resolve) => setImmediate(resolve));
        finish();
        return value;
      },
      async (err: unknown) => {
        await new Promise((resolve) => setImmediate(resolve));
        finish();
        throw err;
      },
    );
  }
}
