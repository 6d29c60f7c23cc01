import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PreconditionFailed, type StorageDriver } from '../storage/port.ts';
import { keys } from './keys.ts';
import { parseSessionState, type LoadedSession } from './upload-session.ts';

/**
 * Upload state carried in the session's `Location` (as Distribution carries its `_state`): the
 * session's state as last written and the etag of that write, signed with a key of the store. A
 * request that brings it skips reading `uploads/<id>.json`; every write it then makes to the session
 * is conditional on that etag, so a stale copy (a client reusing an old URL, another request having
 * written since) can only lose the conditional write and be told 416 with the current offset.
 *
 * The signature (HMAC-SHA256) binds the state to its session id, repository and owner, which are
 * part of the signed state and checked like a stored state's are: a client cannot forge or edit it.
 * The key is 32 random bytes in `gc/upload-state.key`, created once (create-only) by the first
 * process that needs it, read once per process. It costs no request a sequential store call: until
 * it is loaded, the state is read from the store as before, in parallel with loading the key.
 */

/** States longer than this (many multipart parts) are not carried: the URL stays short. */
const MAX_STATE_BYTES = 1536;
const DOMAIN = 'berth-upload-state/1\n';
const KEY_BYTES = 32;

export class UploadStateSigner {
  private key: Buffer | undefined;
  private loading: Promise<Buffer | undefined> | undefined;

  constructor(
    private readonly storage: StorageDriver,
    key?: Uint8Array,
  ) {
    if (key) this.key = Buffer.from(key);
  }

  /** Whether the key is loaded: states can be signed now. */
  get loaded(): boolean {
    return this.key !== undefined;
  }

  /** The key, loading (or creating) it on first use; undefined when the stored one is unusable. */
  async ready(): Promise<Buffer | undefined> {
    if (this.key) return this.key;
    this.loading ??= this.load().then(
      (key) => (this.key = key),
      (err: unknown) => {
        this.loading = undefined; // a store failure: try again on a later request
        throw err;
      },
    );
    return this.loading;
  }

  /** The signed state for a `Location`, or undefined (key not loaded yet, or state too long). */
  sign(session: LoadedSession): string | undefined {
    if (!this.key) return undefined;
    const json = JSON.stringify({ s: session.state, e: session.etag });
    if (json.length > MAX_STATE_BYTES) return undefined;
    const payload = Buffer.from(json).toString('base64url');
    return `${payload}.${this.mac(this.key, payload)}`;
  }

  /**
   * The session `token` describes, if its signature holds and it is session `id`'s; undefined
   * otherwise (then the caller reads the session from the store). Needs `ready()` first.
   */
  verify(id: string, token: string): LoadedSession | undefined {
    if (!this.key || token.length > MAX_STATE_BYTES * 2) return undefined;
    const dot = token.indexOf('.');
    if (dot <= 0) return undefined;
    const payload = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1), 'base64url');
    const expected = Buffer.from(this.mac(this.key, payload), 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let decoded: unknown;
    try {
      decoded = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    if (typeof decoded !== 'object' || decoded === null) return undefined;
    const { s, e } = decoded as { s?: unknown; e?: unknown };
    const state = parseSessionState(s);
    if (!state || state.id !== id || typeof e !== 'string') return undefined;
    return { state, etag: e };
  }

  private mac(key: Buffer, payload: string): string {
    return createHmac('sha256', key).update(DOMAIN).update(payload).digest('base64url');
  }

  private async load(): Promise<Buffer | undefined> {
    const stored = await this.storage.get(keys.uploadStateKey);
    if (stored) return stored.body.byteLength === KEY_BYTES ? Buffer.from(stored.body) : undefined;
    const fresh = randomBytes(KEY_BYTES);
    try {
      await this.storage.put(keys.uploadStateKey, fresh, { ifNoneMatch: '*' });
      return fresh;
    } catch (err) {
      if (!(err instanceof PreconditionFailed)) throw err;
    }
    // Another process created it first: use theirs.
    const theirs = await this.storage.get(keys.uploadStateKey);
    return theirs?.body.byteLength === KEY_BYTES ? Buffer.from(theirs.body) : undefined;
  }
}

/** `<id>` or `<id>.<signed state>`: the last segment of an upload's URL. */
export function splitUploadRef(ref: string): { id: string; state?: string } {
  const dot = ref.indexOf('.');
  return dot < 0 ? { id: ref } : { id: ref.slice(0, dot), state: ref.slice(dot + 1) };
}
