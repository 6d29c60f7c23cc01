import { AsyncLocalStorage } from 'node:async_hooks';
import {
  StorageUnavailable,
  type ByteRange,
  type DirectPartStore,
  type ListOptions,
  type ListPage,
  type MultipartStore,
  type ObjectInfo,
  type ObjectStream,
  type OpenUpload,
  type ObjectSink,
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
  | 'obj.open'
  | 'obj.write'
  | 'obj.end'
  | 'obj.abort'
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

/** A write's conditions, for the trace and the gate. */
function conditionsOf(options: Pick<PutOptions, 'ifMatch' | 'ifNoneMatch'> | undefined): Call['put'] {
  return (
    options && {
      ...(options.ifMatch !== undefined && { ifMatch: options.ifMatch }),
      ...(options.ifNoneMatch !== undefined && { ifNoneMatch: options.ifNoneMatch }),
    }
  );
}

/** A promise that never settles: what a crashed caller waits on forever. */
function never<T>(): Promise<T> {
  return new Promise<T>(() => {});
}

/** What every view of one controlled store shares (see ControlledStore.view). */
interface Core {
  seq: number;
  readonly crashed: Set<string>;
  readonly trace: string[];
  gate: Gate;
  onCrash: (container: string) => void;
  onDone: (call: Call) => void;
}

export class ControlledStore implements StorageDriver {
  readonly name: string;
  readonly multipart: MultipartStore;
  readonly direct?: DirectPartStore;
  private readonly core: Core;

  constructor(
    readonly inner: StorageDriver,
    gate: Gate | Core = () => 'run',
    /** The actor of every call through this view; without it, the one runAs() set. */
    private readonly actor?: Actor,
  ) {
    this.core =
      typeof gate === 'function'
        ? { seq: 0, crashed: new Set(), trace: [], gate, onCrash: () => {}, onDone: () => {} }
        : gate;
    this.name = inner.name;
    if (inner.exclusive) (this as { exclusive?: boolean }).exclusive = true;
    if (inner.presign) this.presign = inner.presign.bind(inner);
    if (inner.openObject) this.openObject = (key, options) => this.streamObject(key, options);
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
      this.direct = {
        presignPart: (key, uploadId, n, ttl) => direct.presignPart(key, uploadId, n, ttl),
        listParts: (key, uploadId) => this.call('get', key, () => direct.listParts(key, uploadId)),
        presignChecked: (key, sha256, ttl) => direct.presignChecked(key, sha256, ttl),
        storedSha256: (key) => this.call('head', key, () => direct.storedSha256(key)),
      };
    }
  }

  /**
   * The same store seen by one actor: its calls are that actor's without runAs() (AsyncLocalStorage
   * costs every promise of the process something; the simulation gives each container a view).
   */
  view(actor: Actor): ControlledStore {
    return new ControlledStore(this.inner, this.core, actor);
  }

  /** Containers that crashed: their calls never run or return. */
  get crashed(): Set<string> {
    return this.core.crashed;
  }

  /** Calls made, in order, with the decision taken (for replay traces). */
  get trace(): string[] {
    return this.core.trace;
  }

  /** Called when a container crashes (so a simulation can drop its in-memory state). */
  set onCrash(f: (container: string) => void) {
    this.core.onCrash = f;
  }

  /** Called when a call the gate let through has finished at the store (or was dropped). */
  set onDone(f: (call: Call) => void) {
    this.core.onDone = f;
  }

  /** Replaces the gate (a test switches from "run everything" to its own plan). */
  setGate(gate: Gate): void {
    this.core.gate = gate;
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
    const conditions = conditionsOf(options);
    return this.call('put', key, async () => this.inner.put(key, await bytes(body), options), conditions);
  }

  readonly openObject?: StorageDriver['openObject'];

  /** Each call of the sink is one of the store's: `end` is where the object becomes visible, as a put. */
  private async streamObject(key: string, options?: Omit<PutOptions, 'sha256Base64'>): Promise<ObjectSink> {
    const sink = await this.call('obj.open', key, () => this.inner.openObject!(key, options));
    const conditions = conditionsOf(options);
    return {
      write: (chunk) => this.call('obj.write', key, () => sink.write(chunk)),
      end: () => this.call('obj.end', key, () => sink.end(), conditions),
      abort: () => this.call('obj.abort', key, () => sink.abort()),
    };
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
    const actor = this.actor ?? currentActor();
    if (actor && this.crashed.has(actor.container)) return never();
    const call: Call = { seq: this.core.seq++, op, key, actor, ...(put && { put }) };
    const decision = await this.core.gate(call);
    this.trace.push(
      `${call.seq} ${actor ? `${actor.container}/${actor.name}` : '-'} ${op} ${key} ${decision}`,
    );
    return this.decided(call, decision, run);
  }

  /** Carries out a decision; tells `onDone` once the store's part is over (also for a crash). */
  private async decided<T>(call: Call, decision: Decision, run: () => Promise<T>): Promise<T> {
    const { actor, op, key } = call;
    const done = () => this.core.onDone(call);
    if (actor && this.crashed.has(actor.container)) {
      done();
      return never();
    }
    let result: T;
    try {
      if (decision === 'crash-before') {
        this.crash(actor);
        done();
        return never();
      }
      if (decision === 'fail') throw new StorageUnavailable(`injected failure of ${op} ${key}`);
      result = await run();
      if (decision === 'short' && op === 'list') result = shortPage(result as ListPage) as T;
    } catch (err) {
      done();
      throw err;
    }
    if (decision === 'crash-after') {
      this.crash(actor);
      done();
      return never();
    }
    done();
    if (decision === 'lose') throw new StorageUnavailable(`injected: the answer to ${op} ${key} was lost`);
    return result;
  }

  private crash(actor: Actor | undefined): void {
    if (!actor) throw new Error('a crash needs an actor: run the operation with runAs()');
    this.crashed.add(actor.container);
    this.core.onCrash(actor.container);
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
