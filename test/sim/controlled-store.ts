import { AsyncLocalStorage } from 'node:async_hooks';
import {
  StorageUnavailable,
  type ByteRange,
  type ListOptions,
  type ListPage,
  type MultipartStore,
  type ObjectInfo,
  type ObjectStream,
  type OpenUpload,
  type PartSink,
  type PutOptions,
  type StorageDriver,
  type StoredObject,
} from '../../lib/storage/port.ts';

/**
 * A storage port whose every call waits for a gate's decision before it reaches the real store, and
 * whose answer can be withheld or replaced. It is how the race tests place one request's storage call
 * between two of another's, and how the simulation (test/sim/) releases calls in a seeded order,
 * fails them, loses their answers, or crashes the caller.
 *
 * A call is attributed to the actor running it (`runAs`), through AsyncLocalStorage, so a gate can
 * tell which request or container made it.
 */

export interface Actor {
  /** The process (a local server, a Lambda container) the call runs in: a crash takes all of it. */
  readonly container: string;
  /** The operation (one client request, a GC run, ...) within it. */
  readonly name: string;
}

export type Op =
  | 'head'
  | 'get'
  | 'getStream'
  | 'put'
  | 'delete'
  | 'list'
  | 'mp.create'
  | 'mp.uploadPart'
  | 'mp.openPart'
  | 'part.write'
  | 'part.end'
  | 'part.abort'
  | 'mp.complete'
  | 'mp.abort'
  | 'mp.listOpen';

export interface Call {
  /** Increasing, in the order calls were made. */
  readonly seq: number;
  readonly op: Op;
  readonly key: string;
  readonly actor: Actor | undefined;
  /** For puts: the conditions asked for. */
  readonly put?: Pick<PutOptions, 'ifMatch' | 'ifNoneMatch'>;
}

/** Whether a call is a write: what a crash point or a write fault applies to. */
export function writes(op: Op): boolean {
  return !['head', 'get', 'getStream', 'list', 'mp.listOpen'].includes(op);
}

/**
 * What happens to a call:
 * - run: it runs and its answer is delivered;
 * - fail: it does not run, the caller gets StorageUnavailable (a refused or timed-out request);
 * - lose: it runs, the caller gets StorageUnavailable (the answer was lost on the way back);
 * - crash-before / crash-after: the caller's container dies before the call reached the store, or
 *   after it ran but before the answer came back; the caller never continues;
 * - short (list only): a page with fewer keys than asked, marked truncated.
 */
export type Decision = 'run' | 'fail' | 'lose' | 'crash-before' | 'crash-after' | 'short';

export type Gate = (call: Call) => Decision | Promise<Decision>;

const actors = new AsyncLocalStorage<Actor>();

/** Runs `fn` as `actor`: every storage call it makes, directly or not, is attributed to it. */
export function runAs<T>(actor: Actor, fn: () => Promise<T>): Promise<T> {
  return actors.run(actor, fn);
}

export function currentActor(): Actor | undefined {
  return actors.getStore();
}

/** A promise that never settles: what a crashed caller waits on forever. */
function never<T>(): Promise<T> {
  return new Promise<T>(() => {});
}

export class ControlledStore implements StorageDriver {
  readonly name: string;
  readonly multipart: MultipartStore;
  private seq = 0;
  /** Containers that crashed: their calls never run or return. */
  readonly crashed = new Set<string>();
  /** Calls made, in order, with the decision taken (for replay traces). */
  readonly trace: string[] = [];
  /** Called when a container crashes (so a simulation can drop its in-memory state). */
  onCrash: (container: string) => void = () => {};

  constructor(
    readonly inner: StorageDriver,
    private gate: Gate = () => 'run',
  ) {
    this.name = inner.name;
    if (inner.exclusive) (this as { exclusive?: boolean }).exclusive = true;
    if (inner.presign) this.presign = inner.presign.bind(inner);
    const mp = inner.multipart;
    this.multipart = {
      minPartSize: mp.minPartSize,
      maxPartSize: mp.maxPartSize,
      maxParts: mp.maxParts,
      create: (key, options) => this.call('mp.create', key, () => mp.create(key, options)),
      uploadPart: (key, uploadId, n, body, size) =>
        this.call('mp.uploadPart', key, async () => mp.uploadPart(key, uploadId, n, await bytes(body), size)),
      ...(mp.openPart && {
        openPart: async (key: string, uploadId: string, n: number): Promise<PartSink> => {
          const sink = await this.call('mp.openPart', key, () => mp.openPart!(key, uploadId, n));
          return {
            write: (chunk) => this.call('part.write', key, () => sink.write(chunk)),
            end: (options) => this.call('part.end', key, () => sink.end(options)),
            abort: () => this.call('part.abort', key, () => sink.abort()),
          };
        },
      }),
      complete: (key, uploadId, parts) =>
        this.call('mp.complete', key, () => mp.complete(key, uploadId, parts)),
      abort: (key, uploadId) => this.call('mp.abort', key, () => mp.abort(key, uploadId)),
      listOpen: (prefix) => this.listOpen(prefix),
    };
    if (inner.direct) {
      const direct = inner.direct;
      (this as { direct?: StorageDriver['direct'] }).direct = {
        presignPart: (key, uploadId, n, ttl) => direct.presignPart(key, uploadId, n, ttl),
        listParts: (key, uploadId) => this.call('get', key, () => direct.listParts(key, uploadId)),
      };
    }
  }

  /** Replaces the gate (a test switches from "run everything" to its own plan). */
  setGate(gate: Gate): void {
    this.gate = gate;
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.call('head', key, () => this.inner.head(key));
  }

  get(key: string): Promise<StoredObject | undefined> {
    return this.call('get', key, () => this.inner.get(key));
  }

  /** The body is read whole inside the call, so that reading it later touches the store no more. */
  getStream(key: string, range?: ByteRange): Promise<ObjectStream | undefined> {
    return this.call('getStream', key, async () => {
      const stream = await this.inner.getStream(key, range);
      if (!stream) return undefined;
      const body = await bytes(stream.body);
      return { ...stream, body: new Response(body as Uint8Array<ArrayBuffer>).body! };
    });
  }

  put(key: string, body: Uint8Array | ReadableStream<Uint8Array>, options?: PutOptions): Promise<ObjectInfo> {
    const conditions = options && {
      ...(options.ifMatch !== undefined && { ifMatch: options.ifMatch }),
      ...(options.ifNoneMatch !== undefined && { ifNoneMatch: options.ifNoneMatch }),
    };
    return this.call('put', key, async () => this.inner.put(key, await bytes(body), options), conditions);
  }

  delete(key: string): Promise<void> {
    return this.call('delete', key, () => this.inner.delete(key));
  }

  list(prefix: string, options?: ListOptions): Promise<ListPage> {
    return this.call('list', prefix, () => this.inner.list(prefix, options));
  }

  readonly presign?: StorageDriver['presign'];

  private async *listOpen(prefix: string): AsyncIterable<OpenUpload> {
    const all = await this.call('mp.listOpen', prefix, async () => {
      const found: OpenUpload[] = [];
      for await (const upload of this.inner.multipart.listOpen(prefix)) found.push(upload);
      return found;
    });
    yield* all;
  }

  private async call<T>(op: Op, key: string, run: () => Promise<T>, put?: Call['put']): Promise<T> {
    const actor = currentActor();
    if (actor && this.crashed.has(actor.container)) return never();
    const call: Call = { seq: this.seq++, op, key, actor, ...(put && { put }) };
    const decision = await this.gate(call);
    this.trace.push(
      `${call.seq} ${actor ? `${actor.container}/${actor.name}` : '-'} ${op} ${key} ${decision}`,
    );
    if (actor && this.crashed.has(actor.container)) return never();
    switch (decision) {
      case 'crash-before':
        this.crash(actor);
        return never();
      case 'fail':
        throw new StorageUnavailable(`injected failure of ${op} ${key}`);
      case 'short':
        if (op === 'list') return shortPage((await run()) as ListPage) as T;
        break;
      default:
        break;
    }
    const result = await run();
    if (decision === 'crash-after') {
      this.crash(actor);
      return never();
    }
    if (decision === 'lose') throw new StorageUnavailable(`injected: the answer to ${op} ${key} was lost`);
    return result;
  }

  private crash(actor: Actor | undefined): void {
    if (!actor) throw new Error('a crash needs an actor: run the operation with runAs()');
    this.crashed.add(actor.container);
    this.onCrash(actor.container);
  }
}

function shortPage(page: ListPage): ListPage {
  if (page.keys.length < 2) return page;
  return { keys: page.keys.slice(0, Math.ceil(page.keys.length / 2)), truncated: true };
}

async function bytes(body: Uint8Array | ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return body instanceof Uint8Array ? body : new Uint8Array(await new Response(body).arrayBuffer());
}

/**
 * A gate for targeted race tests: every call runs, except that the first call matching `when` waits
 * until the test releases it. `reached` resolves when that call arrives.
 */
export function pauseAt(store: ControlledStore, when: (call: Call) => boolean) {
  let reach!: (call: Call) => void;
  let release!: (decision: Decision) => void;
  const reached = new Promise<Call>((resolve) => (reach = resolve));
  const released = new Promise<Decision>((resolve) => (release = resolve));
  let armed = true;
  store.setGate((call) => {
    if (!armed || !when(call)) return 'run';
    armed = false;
    reach(call);
    return released;
  });
  return {
    reached,
    /** Lets the paused call go on (or decides its fate). */
    release: (decision: Decision = 'run') => release(decision),
  };
}
