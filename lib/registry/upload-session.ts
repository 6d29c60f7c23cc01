import { randomUUID } from 'node:crypto';
import * as z from 'zod';
import { RegistryError } from '../oci/errors.ts';
import { tryParseDigest, type DigestAlgorithm } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { PreconditionFailed, type StorageDriver } from '../storage/port.ts';
import { parseStoredJson } from './json.ts';
import { keys } from './keys.ts';

const sessionSchema = z.object({
  v: z.literal(1),
  id: z.string(),
  repo: z.string(),
  createdAt: z.string(),
  offset: z.number().int().nonnegative(),
  algorithm: z.enum(['sha256', 'sha512']),
  hashState: z.string().optional(),
  multipartId: z.string().optional(),
  parts: z.array(z.object({ partNumber: z.number().int(), etag: z.string(), size: z.number().int() })),
  /**
   * Bytes received but too few for a multipart part, in their own object. `published`: a completion
   * was about to name it as a blob's data; it is then never deleted with the session (a blob may
   * point at it), and garbage collection removes it if nothing does.
   */
  tail: z.object({ key: z.string(), size: z.number().int(), published: z.boolean().optional() }).optional(),
  tailSeq: z.number().int(),
  lease: z.object({ token: z.string(), until: z.number() }).optional(),
  /** Who created the session (the token's subject; '' anonymous); absent when authentication was off. */
  owner: z.string().optional(),
  /** The client uploads the parts straight to the store (the direct-upload extension). */
  direct: z.boolean().optional(),
  /** Completed into `data/<id>`, being read back to check `digest`; invisible until it passes. */
  verifying: z
    .object({
      digest: z.string(),
      size: z.number().int().nonnegative(),
      token: z.string(),
      until: z.number(),
    })
    .optional(),
  /** Verification failed (asynchronously): what the client is told when it asks. Nothing else is kept. */
  failure: z.string().optional(),
});

/** An upload session as stored in `uploads/<id>.json`. */
export type SessionState = z.infer<typeof sessionSchema>;

export interface LoadedSession {
  readonly state: SessionState;
  readonly etag: string;
}

const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * Reads and writes session state objects. Every write after creation is conditional on the etag
 * read, so two requests racing on one session cannot both commit.
 */
export class SessionStore {
  constructor(
    private readonly storage: StorageDriver,
    private readonly leaseMs: number,
  ) {}

  async create(repo: RepositoryName, algorithm: DigestAlgorithm, owner?: string): Promise<LoadedSession> {
    const state: SessionState = {
      v: 1,
      id: randomUUID(),
      repo,
      createdAt: new Date().toISOString(),
      offset: 0,
      algorithm,
      parts: [],
      tailSeq: 0,
      ...(owner !== undefined && { owner }),
    };
    const info = await this.storage.put(keys.session(state.id), encode(state), {
      ifNoneMatch: '*',
      contentType: 'application/json',
    });
    return { state, etag: info.etag };
  }

  /**
   * Loads a session of `repo`. With `owner` (authentication on), a session someone else created is
   * answered as unknown, exactly like one that does not exist: its id reveals nothing.
   */
  async load(repo: RepositoryName, id: string, owner?: string): Promise<LoadedSession> {
    const unknown = () =>
      new RegistryError(
        'BLOB_UPLOAD_UNKNOWN',
        `upload ${id.slice(0, 64)} is not in progress in repository ${repo}`,
      );
    if (!UPLOAD_ID.test(id)) throw unknown();
    const object = await this.storage.get(keys.session(id));
    if (!object) throw unknown();
    const parsed = sessionSchema.safeParse(parseStoredJson(object.body));
    if (!parsed.success || parsed.data.repo !== repo) throw unknown();
    if (owner !== undefined && parsed.data.owner !== undefined && parsed.data.owner !== owner)
      throw unknown();
    return { state: parsed.data, etag: object.etag };
  }

  /**
   * Claims the session for one writing request. A second request while the claim holds, or one that
   * loses the race to claim, gets 416 like an out-of-order chunk: its view of the offset is stale.
   */
  async claim(
    session: LoadedSession,
    change: (state: SessionState) => SessionState = (state) => state,
  ): Promise<LoadedSession> {
    const now = Date.now();
    if (session.state.lease && session.state.lease.until > now) throw busy(session.state);
    const state = { ...change(session.state), lease: { token: randomUUID(), until: now + this.leaseMs } };
    try {
      return await this.replace(session, state);
    } catch (err) {
      if (err instanceof PreconditionFailed) throw busy(session.state);
      throw err;
    }
  }

  /** Conditionally replaces the session's state; throws PreconditionFailed if it changed meanwhile. */
  async replace(session: LoadedSession, state: SessionState): Promise<LoadedSession> {
    const info = await this.storage.put(keys.session(state.id), encode(state), {
      ifMatch: session.etag,
      contentType: 'application/json',
    });
    return { state, etag: info.etag };
  }

  /** Drops the claim after a failed request, keeping the last committed state. Best effort. */
  async release(session: LoadedSession): Promise<void> {
    const { lease: _lease, ...state } = session.state;
    await this.replace(session, state).catch(() => undefined);
  }

  async delete(id: string): Promise<void> {
    await this.storage.delete(keys.session(id));
  }
}

/**
 * Removes every trace of a session: its multipart upload, tail (unless published: a blob may name it),
 * data completed but not yet verified (with the marker that says so) and its state.
 */
export async function discardSession(
  storage: StorageDriver,
  sessions: SessionStore,
  state: SessionState,
): Promise<void> {
  if (state.multipartId) await storage.multipart.abort(keys.data(state.id), state.multipartId);
  if (state.tail && !state.tail.published) await storage.delete(state.tail.key);
  if (state.verifying) {
    const digest = tryParseDigest(state.verifying.digest);
    await storage.delete(keys.data(state.id));
    if (digest) await storage.delete(keys.verifying(state.repo as RepositoryName, digest));
  }
  await sessions.delete(state.id);
}

function busy(state: SessionState): RegistryError {
  return new RegistryError(
    'BLOB_UPLOAD_INVALID',
    'another request is writing to this upload session; retry from the offset in the Range header',
    { status: 416, detail: { offset: state.offset } },
  );
}

function encode(state: SessionState): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(state));
}
