import { createHash, type Hash } from 'node:crypto';
import { createSHA256, createSHA512, type IHasher } from 'hash-wasm';
import type { DigestAlgorithm } from '../oci/digest.ts';

/** A digest being computed over an upload's bytes as they pass. */
export interface RunningHash {
  readonly algorithm: DigestAlgorithm;
  update(chunk: Uint8Array): void;
  /** The digest of everything so far. Call once, when the upload completes. */
  hex(): string;
}

export interface HashPosition {
  readonly sessionId: string;
  readonly algorithm: DigestAlgorithm;
  /** Bytes of the upload hashed so far. */
  readonly offset: number;
  /** What `save` returned last time, as stored in the session. */
  readonly state?: string;
}

/**
 * Where an upload's hash lives between requests. A long-lived server keeps the native hash object
 * in memory (fast: Node's sha256 uses the CPU's SHA instructions); a Lambda, whose next request may
 * land in another process, serializes the state into the session (hash-wasm save/load). When
 * neither has the state (a restart), `resume` answers undefined and the upload is verified by
 * reading it back once at completion.
 */
export interface HashStates {
  resume(position: HashPosition): Promise<RunningHash | undefined>;
  /** What to store in the session's state for `hash` (undefined when this process keeps it). */
  encode(hash: RunningHash): Promise<string | undefined>;
  /**
   * Makes `hash` the session's state at `offset`. Called only once the state that `offset` belongs to
   * is written: two requests racing on one session must not leave the loser's hash behind.
   */
  keep(sessionId: string, offset: number, hash: RunningHash): void;
  forget(sessionId: string): void;
}

class NativeHash implements RunningHash {
  constructor(
    readonly algorithm: DigestAlgorithm,
    readonly hash: Hash = createHash(algorithm),
  ) {}
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }
  hex(): string {
    return this.hash.copy().digest('hex');
  }
}

/** Keeps native hash objects of open sessions in this process, bounded in count. */
export class InMemoryHashStates implements HashStates {
  private readonly entries = new Map<string, { offset: number; hash: NativeHash }>();

  constructor(private readonly maxSessions = 10_000) {}

  async resume(position: HashPosition): Promise<RunningHash | undefined> {
    if (position.offset === 0) return new NativeHash(position.algorithm);
    const entry = this.entries.get(position.sessionId);
    if (!entry || entry.offset !== position.offset || entry.hash.algorithm !== position.algorithm)
      return undefined;
    // A copy, so a request that fails half way leaves the saved state untouched.
    return new NativeHash(position.algorithm, entry.hash.hash.copy());
  }

  async encode(hash: RunningHash): Promise<undefined> {
    if (!(hash instanceof NativeHash)) throw new TypeError('InMemoryHashStates saves only its own hashes');
    return undefined;
  }

  keep(sessionId: string, offset: number, hash: RunningHash): void {
    if (!(hash instanceof NativeHash)) throw new TypeError('InMemoryHashStates saves only its own hashes');
    this.entries.delete(sessionId);
    this.entries.set(sessionId, { offset, hash });
    if (this.entries.size > this.maxSessions) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  forget(sessionId: string): void {
    this.entries.delete(sessionId);
  }
}

class WasmHash implements RunningHash {
  constructor(
    readonly algorithm: DigestAlgorithm,
    readonly hasher: IHasher,
  ) {}
  update(chunk: Uint8Array): void {
    this.hasher.update(chunk);
  }
  hex(): string {
    return this.hasher.digest('hex');
  }
}

/** Serializes the hash state into the session (about 116 bytes for sha256), for stateless processes. */
export class SerializedHashStates implements HashStates {
  async resume(position: HashPosition): Promise<RunningHash | undefined> {
    const hasher = position.algorithm === 'sha512' ? await createSHA512() : await createSHA256();
    if (position.offset === 0) return new WasmHash(position.algorithm, hasher.init());
    if (!position.state) return undefined;
    hasher.load(Buffer.from(position.state, 'base64'));
    return new WasmHash(position.algorithm, hasher);
  }

  async encode(hash: RunningHash): Promise<string> {
    if (!(hash instanceof WasmHash)) throw new TypeError('SerializedHashStates saves only its own hashes');
    return Buffer.from(hash.hasher.save()).toString('base64');
  }

  /** Nothing to keep: the state is in the session. */
  keep(): void {}

  forget(): void {}
}

/** Hashes a whole stream (read-back verification). */
export async function hashStream(
  stream: ReadableStream<Uint8Array>,
  algorithm: DigestAlgorithm,
): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest('hex');
}
