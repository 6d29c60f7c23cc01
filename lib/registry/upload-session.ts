import { createHash, randomUUID } from 'node:crypto';
import * as z from 'zod';
import { createLogger, describeError, type Logger } from '../logging/logger.ts';
import { digestFromHex, tryParseDigest, type DigestAlgorithm, type ParsedDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { PreconditionFailed, type StorageDriver } from '../storage/port.ts';
import { parseStoredJson } from '../util/json.ts';
import { UploadBusy, UploadUnknown } from './errors.ts';
import { keys, meta } from './keys.ts';
import { listKeys } from './layout.ts';
import type { UploadQuota } from './upload-quota.ts';

/*
 * Upload sessions: one object per session (`uploads/<id>.json`), written only conditionally on the
 * etag last read, so that of two requests racing on a session exactly one writes. The state is one
 * discriminated union; what a request may do depends on its status:
 *
 *   open ──PATCH/PUT──▶ open … ──PUT──▶ (blob stored, session deleted)
 *     │ ├─direct parts──▶ direct ──complete──▶ verifying ──▶ (blob stored) | failed
 *     │ └─checked PUT URL──▶ object ──complete──▶ verifying (the store's SHA-256, no read-back) ──▶ …
 *     └──── cancel, expiry, wrong digest (any status) ──▶ discarding ──▶ (everything removed)
 *
 * Every request that writes claims the session first: a lease in the state, taken by a conditional
 * write, renewed while the request runs, and dropped or replaced when it ends. Whoever removes a
 * session (cancel, the stale sweep) first writes `discarding` over the state it read, conditionally:
 * it then owns what the state names and nobody else can name it as a blob's data meanwhile. A
 * discarding session left by a crash is finished by the next cancel or sweep.
 */

/**
 * The session schemas, built on first use: about a hundred zod objects a cold start need not pay for
 * before its first upload request (docs/lambda.md, "Cold start").
 */
function buildSchemas() {
  const lease = z.object({
    token: z.string(),
    /** Expiry, on the holder's clock (ms). */
    until: z.number(),
    /** The process that took it (Registry instance): on a store one process owns, others' leases are void. */
    holder: z.string().optional(),
  });

  const tail = z.object({
    key: z.string(),
    size: z.number().int(),
    /**
     * A completion is naming it as a blob's data: it is then never deleted with the session (a blob
     * may point at it), and garbage collection removes it if nothing does.
     */
    published: z.boolean().optional(),
    /**
     * When it was written (the writing process's clock, ms). A completion may make a tail holding the
     * whole upload a blob's data without claiming the session first only while the tail is younger
     * than the publish window (docs/architecture.md, "Completion without a claim").
     */
    at: z.number().optional(),
  });

  const common = {
    v: z.literal(2),
    id: z.string(),
    repo: z.string(),
    createdAt: z.string(),
    algorithm: z.enum(['sha256', 'sha512']),
    /** Bytes received so far (0 for direct uploads, whose bytes go to the store). */
    offset: z.number().int().nonnegative(),
    /** Who created the session (the token's subject; '' anonymous); absent when authentication was off. */
    owner: z.string().optional(),
    lease: lease.optional(),
  };

  const open = z.object({
    ...common,
    status: z.literal('open'),
    hashState: z.string().optional(),
    multipartId: z.string().optional(),
    parts: z.array(z.object({ partNumber: z.number().int(), etag: z.string(), size: z.number().int() })),
    /** Bytes received but too few for a multipart part, in their own object. */
    tail: tail.optional(),
    tailSeq: z.number().int(),
  });

  /** The client uploads the parts straight to the store (the direct-upload extension). */
  const direct = z.object({ ...common, status: z.literal('direct'), multipartId: z.string() });

  /**
   * The client PUTs the whole blob straight to `data/<id>` through a URL the store checks against
   * `digest`'s SHA-256 (the direct-upload extension's checked PUT): the object, once there, is
   * `digest`'s bytes, and completing it needs no read-back.
   */
  const object = z.object({
    ...common,
    status: z.literal('object'),
    digest: z.string(),
    size: z.number().int(),
  });

  /** Completed into `data/<id>`, being read back to check `digest`; invisible until it passes. */
  const verifying = z.object({
    ...common,
    status: z.literal('verifying'),
    digest: z.string(),
    size: z.number().int().nonnegative(),
    /** The verification job's token, and its own lease (a crashed verifier is restarted after it). */
    token: z.string(),
    until: z.number(),
    /** Written by a checked PUT: the store's SHA-256 of it is the verification (no read-back). */
    checked: z.literal(true).optional(),
  });

  /** Verification failed (asynchronously): what the client is told when it asks. Nothing else is kept. */
  const failed = z.object({ ...common, status: z.literal('failed'), failure: z.string() });

  /** Being removed by whoever wrote this: what is left to remove. */
  const discarding = z.object({
    ...common,
    status: z.literal('discarding'),
    multipartId: z.string().optional(),
    /** Tail objects to delete (never a published one). */
    tails: z.array(z.string()),
    /**
     * Tails that held the whole upload, so that a completion racing this removal may have made one a
     * blob's data: deleted only once no such completion can still write (SessionStore.publishWindowMs)
     * and no blob names them; otherwise left to garbage collection.
     */
    wholeTails: z.array(z.object({ key: z.string(), at: z.number().optional() })).optional(),
    /** A completed but unverified data object, and the `_verifying` marker naming it. */
    unverified: z
      .object({
        digest: z.string(),
        /** false: no marker was written (a checked PUT's session, never completed). */
        marker: z.literal(false).optional(),
      })
      .optional(),
  });

  /**
   * Over: completed or removed while an upload URL that carries the session's never-stored first state
   * may still be used (UNSTORED_VALID_MS): such a URL finds this instead of nothing, so it cannot
   * start the session afresh. Removed by the stale-session sweep after that time.
   */
  const ended = z.object({ ...common, status: z.literal('ended') });

  const sessionSchema = z.discriminatedUnion('status', [
    open,
    direct,
    object,
    verifying,
    failed,
    discarding,
    ended,
  ]);

  /** Sessions written by the previous version (flags instead of a status), read as the union. */
  const legacySchema = z.object({
    v: z.literal(1),
    id: z.string(),
    repo: z.string(),
    createdAt: z.string(),
    offset: z.number().int().nonnegative(),
    algorithm: z.enum(['sha256', 'sha512']),
    hashState: z.string().optional(),
    multipartId: z.string().optional(),
    parts: open.shape.parts,
    tail: tail.optional(),
    tailSeq: z.number().int(),
    lease: lease.optional(),
    owner: z.string().optional(),
    direct: z.boolean().optional(),
    verifying: z
      .object({ digest: z.string(), size: z.number().int(), token: z.string(), until: z.number() })
      .optional(),
    failure: z.string().optional(),
  });

  return { sessionSchema, legacySchema, open, direct, object, verifying };
}

type Schemas = ReturnType<typeof buildSchemas>;
let built: Schemas | undefined;
const schemas = (): Schemas => (built ??= buildSchemas());

export type SessionState = z.infer<Schemas['sessionSchema']>;
export type OpenSession = z.infer<Schemas['open']>;
export type DirectSession = z.infer<Schemas['direct']>;
export type ObjectSession = z.infer<Schemas['object']>;
export type VerifyingSession = z.infer<Schemas['verifying']>;
type Status = SessionState['status'];
type Of<S extends Status> = Extract<SessionState, { status: S }>;

function upgrade(old: z.infer<Schemas['legacySchema']>): SessionState {
  const base = {
    v: 2 as const,
    id: old.id,
    repo: old.repo,
    createdAt: old.createdAt,
    algorithm: old.algorithm,
    offset: old.offset,
    ...(old.owner !== undefined && { owner: old.owner }),
    ...(old.lease && { lease: old.lease }),
  };
  if (old.failure !== undefined) return { ...base, status: 'failed', failure: old.failure };
  if (old.verifying) return { ...base, status: 'verifying', ...old.verifying };
  if (old.direct && old.multipartId) return { ...base, status: 'direct', multipartId: old.multipartId };
  return {
    ...base,
    status: 'open',
    parts: old.parts,
    tailSeq: old.tailSeq,
    ...(old.hashState !== undefined && { hashState: old.hashState }),
    ...(old.multipartId !== undefined && { multipartId: old.multipartId }),
    ...(old.tail && { tail: old.tail }),
  };
}

function parseState(bytes: Uint8Array): SessionState | undefined {
  return parseSessionState(parseStoredJson(bytes));
}

/** A session state from parsed JSON (either version), or undefined when it is not one. */
export function parseSessionState(json: unknown): SessionState | undefined {
  const { sessionSchema, legacySchema } = schemas();
  const parsed = sessionSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const legacy = legacySchema.safeParse(json);
  return legacy.success ? upgrade(legacy.data) : undefined;
}

export interface LoadedSession<S extends SessionState = SessionState> {
  readonly state: S;
  readonly etag: string;
}

export interface SessionStoreOptions {
  /** How long a claim holds without renewal; renewed every third of it while its request runs. */
  readonly leaseMs: number;
  /**
   * The store is used by this process alone (the filesystem store): a lease another process took
   * is void, since that process is gone. A restart after a crash frees its sessions at once.
   */
  readonly exclusive?: boolean;
  /** This process's identity in leases (default: a random id per SessionStore, i.e. per process). */
  readonly holder?: string;
  /** The renewal timer; tests replace it. */
  readonly renewEveryMs?: number;
  /** Caps on what one client holds in open sessions (counted in this process); absent, none. */
  readonly quota?: UploadQuota;
  /** For failures nobody is waiting for (a claim that could not be released); absent, silent. */
  readonly logger?: Logger;
  /**
   * How young a tail holding a whole upload must be for a completion to publish it without claiming
   * the session first (UploadLimits.publishWindowMs); 0: every such completion claims first.
   */
  readonly publishWindowMs?: number;
}

/**
 * How long a storage write may still land after it was sent: the S3 client's attempts and their
 * timeouts, with room to spare (garbage collection's settle time rests on the same bound).
 */
export const WRITE_LANDS_WITHIN_MS = 5 * 60_000;

/**
 * The etag of a session never written: a POST hands out its first state in the upload URL only
 * (signed), and the first write to the session is create-only (docs/architecture.md, "A POST writes
 * nothing").
 */
export const UNSTORED = '';

/** How long an upload URL carrying a never-stored state may start its session. */
export const UNSTORED_VALID_MS = 60 * 60_000;

/**
 * How long an `ended` marker stays: the URL's validity, and room for the clocks to differ. The
 * stale-session sweep removes older ones (or ones older than the upload TTL, if that is shorter).
 */
export const ENDED_KEPT_MS = UNSTORED_VALID_MS + WRITE_LANDS_WITHIN_MS;

/** Whether the never-stored state `state` may still start its session (`now`, this process's clock). */
export function unstoredUsable(state: { readonly createdAt: string }, now = Date.now()): boolean {
  const created = Date.parse(state.createdAt);
  return Number.isFinite(created) && now - created < UNSTORED_VALID_MS && created - now < 60_000;
}

/**
 * The publish window a registry gets when it is not told one: 5 minutes, for upload TTLs of at
 * least 15 minutes. A tail older than the window plus WRITE_LANDS_WITHIN_MS can no longer become a
 * blob's data without a claim, and garbage collection only removes tails older than the upload TTL.
 */
export function publishWindowFor(uploadTtlMs: number): number {
  return uploadTtlMs >= 3 * WRITE_LANDS_WITHIN_MS ? MAX_PUBLISH_WINDOW_MS : 0;
}

/** The longest publish window a session store takes (a longer one asked for is cut to this). */
export const MAX_PUBLISH_WINDOW_MS = WRITE_LANDS_WITHIN_MS;

/**
 * How old a tail, data object or multipart upload that no session owns must be before garbage
 * collection or `fsck` may count it as an orphan, whatever the upload TTL. Two writes can make such
 * an object owned after it was written: the first PATCH of a session whose POST wrote nothing writes
 * its tail before the session object (create-only, sent right after, landed within
 * WRITE_LANDS_WITHIN_MS), and a completion without a claim writes a pointer naming a tail younger
 * than the publish window (landed within WRITE_LANDS_WITHIN_MS of being sent). A collection whose
 * session snapshot or blob listing was taken before either landed, resumed later with a short TTL,
 * would otherwise delete the data of a linked blob (docs/gc.md, "What is garbage").
 */
export const ORPHAN_MIN_AGE_MS = MAX_PUBLISH_WINDOW_MS + WRITE_LANDS_WITHIN_MS;

/**
 * The time before which an unowned, unnamed object counts as an orphan, for a collection or check
 * whose session snapshot was taken at `sessionsAt` (the store's clock) with upload TTL `uploadTtlMs`.
 */
export function orphanCutoff(sessionsAt: number, uploadTtlMs: number, minAgeMs = ORPHAN_MIN_AGE_MS): number {
  return sessionsAt - Math.max(uploadTtlMs, minAgeMs);
}

const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * Reads and writes session state objects: the one store both upload lifecycles (through the registry,
 * and direct to the store) use. Every write after creation is conditional on the etag read.
 */
export class SessionStore {
  readonly leaseMs: number;
  readonly quota: UploadQuota | undefined;
  readonly logger: Logger;
  private readonly holder: string;
  private readonly exclusive: boolean;
  private readonly renewEveryMs: number;
  /** See SessionStoreOptions.publishWindowMs. */
  readonly publishWindowMs: number;

  constructor(
    private readonly storage: StorageDriver,
    options: SessionStoreOptions,
  ) {
    this.leaseMs = options.leaseMs;
    this.quota = options.quota;
    this.logger = options.logger ?? createLogger('silent');
    this.holder = options.holder ?? randomUUID();
    this.exclusive = options.exclusive ?? false;
    this.renewEveryMs = options.renewEveryMs ?? Math.max(1_000, Math.floor(options.leaseMs / 3));
    this.publishWindowMs = Math.min(options.publishWindowMs ?? MAX_PUBLISH_WINDOW_MS, MAX_PUBLISH_WINDOW_MS);
  }

  /**
   * Whether a request may delete the tail of `state` (not published) itself: when the tail does not
   * hold the whole upload (the session has parts; no completion can make such a tail a blob's data)
   * or when every completion claims first. A tail that holds the whole upload may have been published
   * without a claim by a completion racing the request: it is left to a checked deletion
   * (`discard`, once no completion can still name it) or to garbage collection.
   */
  tailDisposable(state: {
    readonly offset: number;
    readonly tail?: { readonly size: number } | undefined;
  }): boolean {
    return state.tail === undefined || state.tail.size !== state.offset || this.publishWindowMs === 0;
  }

  /** Whether a completion may still publish a tail written at `at` without claiming its session. */
  publishable(at: number | undefined): boolean {
    return at !== undefined && Date.now() - at < this.publishWindowMs;
  }

  /**
   * Opens a session. `client` (the account, or the address without authentication) is what the
   * quota counts it against; a client at its cap gets TOOMANYREQUESTS before anything is written.
   */
  async create(
    repo: RepositoryName,
    algorithm: DigestAlgorithm,
    owner?: string,
    client?: string,
    /** Write nothing: the state lives in the upload URL until the first request writes it. */
    unstored = false,
  ): Promise<LoadedSession<OpenSession>> {
    if (client !== undefined) this.quota?.check(client);
    const state: OpenSession = {
      v: 2,
      status: 'open',
      id: randomUUID(),
      repo,
      createdAt: new Date().toISOString(),
      offset: 0,
      algorithm,
      parts: [],
      tailSeq: 0,
      ...(owner !== undefined && { owner }),
    };
    const etag = unstored
      ? UNSTORED
      : (
          await this.storage.put(keys.session(state.id), encode(state), {
            ifNoneMatch: '*',
            contentType: 'application/json',
          })
        ).etag;
    if (client !== undefined) this.quota?.open(client, state.id);
    return { state, etag };
  }

  /**
   * Loads a session of `repo`. With `owner` (authentication on), a session someone else created is
   * answered as unknown (UploadUnknown), exactly like one that does not exist: its id reveals
   * nothing. So is a session being discarded.
   */
  async load(repo: RepositoryName, id: string, owner?: string): Promise<LoadedSession> {
    return this.accept(repo, id, owner, await this.read(id));
  }

  /**
   * The session as stored, or, when nothing is stored yet, the never-stored state its URL carries
   * (`fromUrl`, called once `ready` settled: the signing key) if that may still start the session.
   */
  async locate(
    repo: RepositoryName,
    id: string,
    owner: string | undefined,
    fromUrl: () => LoadedSession | undefined,
    ready?: Promise<unknown>,
  ): Promise<LoadedSession> {
    const [stored] = await Promise.all([this.read(id), ready]);
    if (stored) return this.accept(repo, id, owner, stored);
    const carried = fromUrl();
    if (carried?.etag === UNSTORED && unstoredUsable(carried.state)) {
      return this.accept(repo, id, owner, carried);
    }
    throw new UploadUnknown(repo, id);
  }

  /** `loaded` (read from the store, or carried signed in a URL) if `load` would answer it, else unknown. */
  accept(repo: RepositoryName, id: string, owner: string | undefined, loaded?: LoadedSession): LoadedSession {
    if (
      !loaded ||
      loaded.state.repo !== repo ||
      loaded.state.status === 'discarding' ||
      loaded.state.status === 'ended' ||
      (owner !== undefined && loaded.state.owner !== undefined && loaded.state.owner !== owner)
    ) {
      throw new UploadUnknown(repo, id);
    }
    return loaded;
  }

  /** The stored state whatever its repository or status; undefined when there is none (or unreadable). */
  async read(id: string): Promise<LoadedSession | undefined> {
    if (!UPLOAD_ID.test(id)) return undefined;
    const object = await this.storage.get(keys.session(id));
    const state = object && parseState(object.body);
    return state && { state, etag: object.etag };
  }

  /** Whether someone other than the caller holds a live claim on the session. */
  leased(state: SessionState, now = Date.now()): boolean {
    const held = state.lease;
    if (!held || held.until <= now) return false;
    // On a store this process owns, a lease another process took (or one from before leases named
    // their holder) died with that process.
    return !(this.exclusive && held.holder !== this.holder);
  }

  /**
   * Claims the session for one writing request, applying `change` to the state in the same write. A
   * second request while the claim holds, or one that loses the race to claim, gets UploadBusy.
   */
  async claim<S extends SessionState>(
    session: LoadedSession<S>,
    change: (state: S) => S = (state) => state,
  ): Promise<Claim<S>> {
    if (this.leased(session.state)) throw busy(session.state);
    const state = { ...change(session.state), lease: this.newLease() };
    try {
      return new Claim(this, await this.replace(session, state), this.renewEveryMs);
    } catch (err) {
      if (err instanceof PreconditionFailed) throw busy(session.state);
      throw err;
    }
  }

  newLease(): NonNullable<SessionState['lease']> {
    return { token: randomUUID(), until: Date.now() + this.leaseMs, holder: this.holder };
  }

  /** The same lease, running `leaseMs` from now (a renewal draws no new token). */
  extendLease(lease: SessionState['lease']): NonNullable<SessionState['lease']> {
    return lease ? { ...lease, until: Date.now() + this.leaseMs } : this.newLease();
  }

  /**
   * Conditionally replaces the session's state (creates it, for a state never stored); throws
   * PreconditionFailed if it changed meanwhile (or exists by now).
   */
  async replace<S extends SessionState>(session: LoadedSession, state: S): Promise<LoadedSession<S>> {
    const info = await this.storage.put(keys.session(state.id), encode(state), {
      ...(session.etag === UNSTORED ? { ifNoneMatch: '*' } : { ifMatch: session.etag }),
      contentType: 'application/json',
    });
    return { state, etag: info.etag };
  }

  /**
   * The session is over (completed, or removed by `discard`): its object goes, or, while an upload
   * URL with its never-stored first state may still be used, is replaced by an `ended` marker so
   * that such a URL finds it over. Returns the marker's etag, if one was written.
   */
  async end(state: SessionState): Promise<string | undefined> {
    if (!unstoredUsable(state)) {
      await this.delete(state.id);
      return undefined;
    }
    const marker: Of<'ended'> = {
      v: 2,
      status: 'ended',
      id: state.id,
      repo: state.repo,
      createdAt: state.createdAt,
      algorithm: state.algorithm,
      offset: 0,
      ...(state.owner !== undefined && { owner: state.owner }),
    };
    const info = await this.storage.put(keys.session(state.id), encode(marker), {
      contentType: 'application/json',
      // Listings that only HEAD sessions (garbage collection, fsck) see it is over.
      metadata: { [meta.ended]: '1' },
    });
    this.quota?.close(state.id);
    return info.etag;
  }

  /**
   * Removes a session and everything it names but a blob's data: its multipart upload, its tails
   * (never a published one), data completed but not verified (unless a blob names it by now) and
   * the marker saying so. First takes it over with a conditional write of `discarding`, so nobody
   * can complete it meanwhile; a request holding it (another's live lease), or a completion that
   * made it `verifying` since it was read, makes this UploadBusy. Returns false when the session was
   * already gone.
   */
  async discard(
    session: LoadedSession,
    options: {
      force?: boolean;
      /** Only the state `session` holds: if the session changed since, leave it and answer false. */
      unchanged?: boolean;
    } = {},
  ): Promise<boolean> {
    let current: LoadedSession | undefined = session;
    for (let attempt = 0; current; attempt++) {
      // Over already (completed, or removed by someone else): nothing of it is left to remove.
      if (current.state.status === 'ended') return false;
      if (current.state.status !== 'discarding' && !options.force && this.leased(current.state)) {
        throw busy(current.state);
      }
      // A session that became `verifying` since the caller looked at it is a completion at work: its
      // verification publishes the blob without a lease, so removing the data now could leave a
      // blob naming nothing (a cancel whose takeover write lost to a direct upload's claim, and whose
      // second look came after that completion's state write). Callers judge `verifying` sessions
      // themselves, on the state they first read.
      if (attempt > 0 && current.state.status === 'verifying' && !options.force) throw busy(current.state);
      try {
        const owned =
          current.state.status === 'discarding'
            ? current
            : await this.replace(
                current,
                discardingOf(current.state, (state) => this.tailDisposable(state)),
              );
        await this.removeNamed(owned.state as Of<'discarding'>);
        await this.end(owned.state);
        return true;
      } catch (err) {
        if (!(err instanceof PreconditionFailed) || attempt === 3) throw err;
        if (options.unchanged) return false;
      }
      current = await this.read(session.state.id);
    }
    return false;
  }

  private async removeNamed(state: Of<'discarding'>): Promise<void> {
    const dataKey = keys.data(state.id);
    if (state.multipartId) await this.storage.multipart.abort(dataKey, state.multipartId);
    for (const key of state.tails) await this.storage.delete(key);
    for (const tail of state.wholeTails ?? []) await this.deleteWholeTail(tail.key, tail.at);
    if (state.unverified) {
      const digest = tryParseDigest(state.unverified.digest);
      // A verification that published the blob and crashed before deleting its session: the data
      // is that blob's now.
      if (!digest || !(await this.mayName(digest, dataKey))) await this.storage.delete(dataKey);
      if (digest && state.unverified.marker !== false) {
        await this.storage.delete(keys.verifying(state.repo as RepositoryName, digest));
      }
    }
  }

  /**
   * Whether the blob `digest` names `dataKey`, or may: a collection may hold the blob set aside at
   * this moment (copied under gc/quarantine/, then deleted; put back before the copy goes), and a
   * blob it puts back must find its data. So: the blob, then any set-aside copy of it, then the blob
   * again. A copy, or the blob back after one, keeps the data: whether it is garbage is then the
   * collection's to judge (it deletes the data of a blob it does not put back, and orphans).
   */
  private async mayName(digest: ParsedDigest, dataKey: string): Promise<boolean> {
    const names = async () =>
      (await this.storage.head(keys.blob(digest)))?.metadata[meta.dataKey] === dataKey;
    if (await names()) return true;
    const copy = `/${keys.blob(digest)}`;
    for await (const page of listKeys(this.storage, keys.quarantinePrefix)) {
      if (page.some((key) => key.endsWith(copy))) return true;
    }
    return names();
  }

  /**
   * Deletes a tail that held a whole upload once no completion can still make it a blob's data
   * without a claim (its publish window and the time a write may take to land have passed, on this
   * process's clock) and no blob names it, under the digest of either algorithm. A younger tail is
   * left to garbage collection, which removes tails older than the upload TTL that nothing names.
   */
  private async deleteWholeTail(key: string, at: number | undefined): Promise<void> {
    if (at === undefined || Date.now() - at < this.publishWindowMs + WRITE_LANDS_WITHIN_MS) {
      this.logger.debug('upload tail left to garbage collection: a completion may still name it', { key });
      return;
    }
    const object = await this.storage.get(key);
    if (!object) return;
    for (const algorithm of ['sha256', 'sha512'] as const) {
      const digest = digestFromHex(algorithm, createHash(algorithm).update(object.body).digest('hex'));
      if (await this.mayName(digest, key)) return;
    }
    await this.storage.delete(key);
  }

  async delete(id: string): Promise<void> {
    await this.storage.delete(keys.session(id));
    this.quota?.close(id);
  }
}

/** What discarding `state` must remove. */
function discardingOf(state: SessionState, disposable: (state: OpenSession) => boolean): Of<'discarding'> {
  const base = {
    v: 2 as const,
    id: state.id,
    repo: state.repo,
    createdAt: state.createdAt,
    algorithm: state.algorithm,
    offset: state.offset,
    ...(state.owner !== undefined && { owner: state.owner }),
    status: 'discarding' as const,
  };
  switch (state.status) {
    case 'open': {
      const tail = state.tail && !state.tail.published ? state.tail : undefined;
      const whole = tail && !disposable(state);
      return {
        ...base,
        ...(state.multipartId && { multipartId: state.multipartId }),
        tails: tail && !whole ? [tail.key] : [],
        ...(whole && { wholeTails: [{ key: tail.key, ...(tail.at !== undefined && { at: tail.at }) }] }),
      };
    }
    case 'direct':
      return { ...base, multipartId: state.multipartId, tails: [] };
    case 'verifying':
      return { ...base, tails: [], unverified: { digest: state.digest } };
    case 'object':
      // The client may have PUT data/<id> (or may still, while its URL is valid: garbage collection
      // removes what lands after this).
      return { ...base, tails: [], unverified: { digest: state.digest, marker: false } };
    case 'failed':
    case 'discarding':
    case 'ended':
      return { ...base, tails: [] };
  }
}

/**
 * A session claimed by the running request. Its writes go through here one at a time, each
 * conditional on the last, and the lease is renewed in the background until `end`.
 */
export class Claim<S extends SessionState = SessionState> {
  private chain: Promise<unknown> = Promise.resolve();
  private timer: ReturnType<typeof setInterval> | undefined;
  private lost: unknown;

  constructor(
    private readonly store: SessionStore,
    private session: LoadedSession<S>,
    renewEveryMs: number,
  ) {
    this.timer = setInterval(() => void this.renew(), renewEveryMs);
    this.timer.unref?.();
  }

  get state(): S {
    return this.session.state;
  }

  get loaded(): LoadedSession<S> {
    return this.session;
  }

  /** Writes the next state, keeping the lease; PreconditionFailed if the session was taken meanwhile. */
  commit<T extends SessionState>(next: T): Promise<LoadedSession<T>> {
    return this.serial(async () => {
      const written = await this.store.replace(this.session, { ...next, lease: this.session.state.lease });
      this.session = written as unknown as LoadedSession<S>;
      return written;
    });
  }

  /** The last write of the request: the state without a lease. */
  async finish(next: SessionState): Promise<LoadedSession> {
    this.end();
    return this.serial(async () => {
      const { lease: _lease, ...rest } = next;
      const written = await this.store.replace(this.session, rest as SessionState);
      this.session = written as unknown as LoadedSession<S>;
      return written;
    });
  }

  /**
   * Drops the claim after a failed request, keeping the last committed state. Best effort: the
   * request already failed for another reason, which is what its client is told; a claim left in
   * place blocks the session until its lease runs out (UploadLimits.leaseMs).
   */
  async release(): Promise<void> {
    await this.finish(this.session.state).catch((err: unknown) => {
      this.store.logger.warn(
        'upload session claim not released; the session stays blocked until its lease ends',
        {
          upload: this.session.state.id,
          ...describeError(err),
        },
      );
    });
  }

  /** Stops renewing (the request is over). */
  end(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Throws if a renewal found the session taken over (it was stalled past its lease). */
  check(): void {
    if (this.lost !== undefined) throw this.lost;
  }

  private async renew(): Promise<void> {
    await this.serial(async () => {
      if (!this.timer) return;
      const written = await this.store.replace(this.session, {
        ...this.session.state,
        lease: this.store.extendLease(this.session.state.lease),
      });
      this.session = written as LoadedSession<S>;
    }).catch((err: unknown) => {
      this.lost ??= err;
    });
  }

  private serial<T>(step: () => Promise<T>): Promise<T> {
    const run = this.chain.then(step, step);
    // The chain only orders the steps; a step's failure goes to its own caller through `run`.
    this.chain = run.catch(() => undefined);
    return run;
  }
}

/** Another request holds the session: the client resumes from what it holds. */
export function busy(state: SessionState): UploadBusy {
  return new UploadBusy(state.id, state.offset);
}

function encode(state: SessionState): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(state));
}
