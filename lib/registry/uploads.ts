import { createHash, randomUUID } from 'node:crypto';
import { describeError, type Logger } from '../logging/logger.ts';
import type { DigestAlgorithm, ParsedDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { readLimited } from '../util/read-body.ts';
import { NoSuchUpload, PreconditionFailed, type StorageDriver } from '../storage/port.ts';
import type { BlobInfo, Blobs, BlobSource } from './blobs.ts';
import {
  BlobTooLarge,
  BodyLengthMismatch,
  BodyTooLong,
  ChunkOutOfOrder,
  DigestMismatch,
  UploadBusy,
  UploadCancelConflict,
  UploadCancelled,
  UploadChanged,
  UploadDataLost,
  UploadDataVanished,
  UploadUnknown,
  UploadVerifying,
  UploadWrongKind,
  isLostRace,
} from './errors.ts';
import { hashStream, type HashStates, type RunningHash } from './hashing.ts';
import { keys } from './keys.ts';
import { PartWriter } from './part-writer.ts';
import { TailCache } from './tail-cache.ts';
import { storeTime } from './store-clock.ts';
import {
  type Claim,
  type LoadedSession,
  type OpenSession,
  type SessionStore,
  ENDED_KEPT_MS,
  UNSTORED,
  busy,
  unstoredUsable,
} from './upload-session.ts';
import type { UploadStateSigner } from './upload-state.ts';

export interface UploadLimits {
  /** Largest blob a client may upload, in bytes. */
  readonly maxBlobSize: number;
  /** Size of the multipart parts cut from a request body (bounded memory per request). */
  readonly partSize: number;
  /**
   * How long a request's claim on a session holds without renewal; renewed every third of it while
   * the request runs, so this is how long a crashed request blocks its session (BERTH_UPLOAD_LEASE_SECONDS).
   */
  readonly leaseMs: number;
  /**
   * How young a tail holding a whole upload must be for a completion to make it the blob's data
   * without claiming the session first (default 5 minutes, publishWindowFor; 0: always claim first).
   */
  readonly publishWindowMs?: number;
}

export interface UploadStatus {
  readonly id: string;
  readonly repo: RepositoryName;
  /** Bytes received so far. */
  readonly offset: number;
  /** The session's state, signed, for the next request's URL (upload-state.ts); absent: none to carry. */
  readonly state?: string;
}

/** What the request says about its body: Content-Range start and the body's length. */
export interface ChunkExpectation {
  readonly start?: number;
  readonly length?: number;
}

/** What one request may still add to its client's open sessions (lib/registry/upload-quota.ts). */
interface Budget {
  readonly client: string;
  readonly remaining: number;
}

/**
 * One request's hold on its session. The request starts from the state it loaded (or that its URL
 * carried) and claims the session only when it must own it while it runs: before a multipart part is
 * written, or before a tail becomes a blob's data. A request that only adds a tail, or that completes
 * from bytes it holds, writes its outcome in one conditional write instead (see docs/architecture.md).
 */
interface Attempt {
  readonly loaded: LoadedSession<OpenSession>;
  claim: Claim<OpenSession> | undefined;
  /** Names this request's tail object: a stalled request never overwrites another's tail. */
  readonly nonce: string;
  /** A completion making the session's tail, which holds the whole upload, the blob's data. */
  readonly publish: boolean;
}

interface Received {
  writer: PartWriter;
  hash: RunningHash | undefined;
  offset: number;
  /** The session's tail when no bytes came to be joined to it: still in its object, not in `writer`. */
  unloadedTail: OpenSession['tail'];
  /** Reads the unloaded tail into `writer`. */
  loadTail(): Promise<void>;
}

/**
 * Upload sessions on multipart uploads. Each request streams its body into parts of `partSize`;
 * a remainder too small for a non-last S3 part is kept as a tail object and joined with the next
 * request's bytes. The digest is computed as the bytes pass, so completing costs O(1) in the blob
 * size: no copy and no read-back (unless the hash state was lost to a restart).
 */
export class Uploads {
  /** The tails this process wrote, for the session's next request (no read before it can answer). */
  private readonly tailBytes = new TailCache();

  constructor(
    private readonly storage: StorageDriver,
    private readonly blobs: Blobs,
    private readonly hashes: HashStates,
    private readonly limits: UploadLimits,
    private readonly sessions: SessionStore,
    private readonly signer: UploadStateSigner,
  ) {
    if (limits.partSize < storage.multipart.minPartSize || limits.partSize > storage.multipart.maxPartSize) {
      throw new Error(`part size ${limits.partSize} is outside what the ${storage.name} store accepts`);
    }
  }

  /**
   * Opens a session. `owner` is the caller's account when authentication is on: every later request
   * on the session must come from the same account (see SessionStore.load).
   */
  async start(
    repo: RepositoryName,
    algorithm: DigestAlgorithm = 'sha256',
    owner?: string,
    client?: string,
  ): Promise<UploadStatus> {
    // With the key that signs the Location's state loaded, the session is not written: its state
    // lives in the URL until the first request writes it (create-only). Otherwise it is written,
    // and the key loaded alongside, once per process.
    if (this.signer.loaded) {
      const created = await this.sessions.create(repo, algorithm, owner, client, true);
      const view = this.view(created);
      if (view.state !== undefined) return view;
      // Not carried after all (cannot happen for a new session's few bytes): write it.
      this.sessions.quota?.close(created.state.id);
    }
    const [created] = await Promise.all([
      this.sessions.create(repo, algorithm, owner, client),
      this.signerReady(),
    ]);
    return this.view(created);
  }

  /**
   * Where the session is: as stored, or, for one never written yet, as its URL carries it (`carried`,
   * signed, within UNSTORED_VALID_MS of the POST).
   */
  async status(repo: RepositoryName, id: string, owner?: string, carried?: string): Promise<UploadStatus> {
    return this.view(await this.current(repo, id, owner, carried));
  }

  /** The stored session, or the never-stored state its URL carries when nothing is stored yet. */
  private current(
    repo: RepositoryName,
    id: string,
    owner: string | undefined,
    carried: string | undefined,
  ): Promise<LoadedSession> {
    return this.sessions.locate(
      repo,
      id,
      owner,
      () => (carried === undefined ? undefined : this.signer.verify(id, carried)),
      this.signerReady(),
    );
  }

  /**
   * Adds a chunk. `carried` is the signed state the request's URL carried: when it verifies, the
   * session is not read. Bytes that end as a tail are written to their own object and the new state
   * with one write conditional on the state the request started from: of two requests racing, one
   * wins and the other (or one that came with an outdated URL) gets UploadChanged. Bytes that fill
   * a multipart part claim the session first.
   */
  async append(
    repo: RepositoryName,
    id: string,
    body: AsyncIterable<Uint8Array> | null,
    expect: ChunkExpectation,
    owner?: string,
    client?: string,
    carried?: string,
  ): Promise<UploadStatus> {
    const loaded = await this.open(repo, id, owner, carried, expect);
    const budget = this.admit(loaded, expect, client);
    const attempt = await this.attempt(loaded);
    const state = loaded.state;
    let newTail: { key: string; size: number; at: number } | undefined;
    let writer: PartWriter | undefined;
    // While the new state's write is in flight, and after it failed in a way that does not say it was
    // refused, the stored session may name the new tail: it is then not this request's to delete.
    let mayBeCommitted = false;
    let tailChunks: Uint8Array[] | undefined;
    const tailKey = keys.tail(state.id, state.tailSeq + 1, attempt.nonce);
    try {
      const received = await this.receive(attempt, body, expect, budget, tailKey);
      writer = received.writer;
      if (received.offset === state.offset) {
        // No bytes: nothing changes.
        await attempt.claim?.release();
        return this.view(attempt.claim ? await this.sessions.load(repo, id, owner) : loaded);
      }
      await writer.endRequest();
      if (writer.buffered > 0) {
        newTail = { key: tailKey, size: writer.buffered, at: Date.now() };
        tailChunks = await writer.storeTail();
      }
      const base = attempt.claim?.state ?? state;
      const next: OpenSession = {
        ...base,
        offset: received.offset,
        ...(writer.uploadId !== undefined && { multipartId: writer.uploadId }),
        parts: writer.parts,
        tail: newTail,
        tailSeq: state.tailSeq + 1,
        hashState: received.hash ? await this.hashes.encode(received.hash) : undefined,
      };
      mayBeCommitted = true;
      const written = await this.commitLast(attempt, next);
      if (received.hash) this.hashes.keep(state.id, next.offset, received.hash);
      this.sessions.quota?.update(state.id, next.offset);
      if (newTail && tailChunks) this.tailBytes.put(newTail.key, tailChunks);
      const old = state.tail;
      if (old) this.tailBytes.drop(old.key);
      // The old tail, replaced: this request's to delete only when no completion can have made it a
      // blob's data without a claim (SessionStore.tailDisposable); otherwise garbage collection's.
      if (old && !old.published && this.sessions.tailDisposable(state)) {
        await this.deleteTail(state.id, old.key, 'replaced upload tail');
      }
      return this.view(written);
    } catch (err) {
      await writer?.abandon();
      if (err instanceof UploadChanged) mayBeCommitted = false;
      if (newTail && !mayBeCommitted) {
        await this.deleteTail(state.id, newTail.key, 'tail of a failed upload request');
      } else if (newTail) {
        this.log.warn('tail of an upload request whose state write failed kept: the session may name it', {
          upload: state.id,
          key: newTail.key,
        });
      }
      await attempt.claim?.release();
      throw await this.explain(err, attempt);
    }
  }

  /** Finishes an upload with `digest`, taking an optional last chunk. The blob is linked to `repo`. */
  async complete(
    repo: RepositoryName,
    id: string,
    digest: ParsedDigest,
    body: AsyncIterable<Uint8Array> | null,
    expect: ChunkExpectation,
    owner?: string,
    client?: string,
    carried?: string,
  ): Promise<BlobInfo> {
    const loaded = await this.open(repo, id, owner, carried, expect);
    if (!this.carried.has(loaded)) return this.completeLoaded(repo, loaded, digest, body, expect, client);
    // The state came from the URL: a guess that the conditional writes check. A client may have used
    // an older URL of the session (the one POST answered, after PATCHes): if the request fails on
    // what the guess said, and the stored session differs from it, the request runs once more on the
    // stored state, with the body it already read (held here up to one part).
    const recorded = new RecordedBody(body, this.limits.partSize);
    try {
      return await this.completeLoaded(repo, loaded, digest, recorded.body, expect, client);
    } catch (err) {
      let stored: LoadedSession | undefined;
      if (err instanceof OutdatedState) stored = err.stored;
      else if (isLostRace(err)) stored = await this.sessions.read(id);
      else throw err;
      if (!stored || stored.state.status === 'discarding' || stored.state.status === 'ended') {
        throw new UploadUnknown(repo, id);
      }
      const replay = recorded.replay();
      if (stored.etag === loaded.etag || replay === undefined) throw new UploadChanged(id);
      const again = await this.open(repo, id, owner, undefined, expect);
      return this.completeLoaded(repo, again, digest, replay, expect, client);
    }
  }

  private get log(): Logger {
    return this.sessions.logger;
  }

  /**
   * Deletes a tail the request no longer needs. A failure does not fail the request: the tail is
   * left to garbage collection, and the log says which (`what` names it).
   */
  private async deleteTail(upload: string, key: string, what: string): Promise<void> {
    await this.storage.delete(key).catch((cause: unknown) => {
      this.log.warn(`${what} not deleted; left to garbage collection`, {
        upload,
        key,
        ...describeError(cause),
      });
    });
  }

  /**
   * Loads the key that signs the state in upload URLs. When that fails (the store), URLs carry no
   * state and requests read the session instead, which is slower but not wrong; a later request
   * tries again.
   */
  private signerReady(): Promise<unknown> {
    return this.signer.ready().catch((cause: unknown) => {
      this.log.debug(
        'upload state key not loaded; upload URLs carry no state meanwhile',
        describeError(cause),
      );
    });
  }

  /** States that came from a request's URL (not read from the store by that request). */
  private readonly carried = new WeakSet<LoadedSession>();

  private async completeLoaded(
    repo: RepositoryName,
    loaded: LoadedSession<OpenSession>,
    digest: ParsedDigest,
    body: AsyncIterable<Uint8Array> | null,
    expect: ChunkExpectation,
    client: string | undefined,
  ): Promise<BlobInfo> {
    const id = loaded.state.id;
    const budget = this.admit(loaded, expect, client);
    // A last request without bytes on a session whose bytes are all in its tail (a small blob pushed
    // as PATCH then PUT, docker's way): the tail object becomes the blob's data as it is, with no
    // read and no rewrite. A tail younger than the publish window is published without claiming the
    // session first: the blob's pointer and the claim (marking the tail published) are written
    // together, and the link waits for both. An older one is claimed first (docs/architecture.md,
    // "Completion without a claim").
    const empty = body === null || expect.length === 0;
    const tail = loaded.state.tail;
    const publish = !!(empty && tail && !loaded.state.multipartId && tail.key.startsWith('data/'));
    const attempt = await this.attempt(loaded, publish, publish && !this.sessions.publishable(tail?.at));
    let writer: PartWriter | undefined;
    try {
      const received = await this.receive(attempt, body, expect, budget);
      writer = received.writer;
      const source = await this.finish(attempt, received, digest);
      // Bytes held here need no claim while they are stored: the blob is written from them alone. The
      // conditional write that claims the session (it was not changed, cancelled or completed since
      // the request started) runs alongside, and the link waits for it.
      const gate = attempt.claim
        ? undefined
        : this.claimFor(attempt.loaded, attempt.publish ? publishTail : undefined).then((claim) => {
            attempt.claim = claim;
          });
      let removed: LoadedSession<OpenSession> | undefined;
      let ended: string | undefined;
      const info = await this.blobs.storeAndLink(repo, digest, source, {
        ...(gate && { gate }),
        // A published tail stays even when the blob turns out to be stored already: a completion
        // racing this one from the same state may be naming it (SessionStore.tailDisposable).
        ...(attempt.publish && !this.sessions.tailDisposable(loaded.state) && { keepSource: true }),
        onLinkFailed: async () => {
          // The session went with the link, which failed: put it back, so that the client's retry of
          // this PUT links what was stored (a crash here leaves the retry a 404: it pushes again).
          if (!removed) return;
          const { lease: _lease, ...rest } = removed.state;
          await this.storage
            .put(keys.session(id), new TextEncoder().encode(JSON.stringify(rest)), {
              ...(ended !== undefined ? { ifMatch: ended } : { ifNoneMatch: '*' }),
              contentType: 'application/json',
            })
            .catch((cause: unknown) => {
              this.log.warn(
                'upload session not put back after its blob failed to link; a retry must push again',
                {
                  upload: id,
                  ...describeError(cause),
                },
              );
            });
        },
        // With the link, not before it: the multipart upload is complete and a published tail is the
        // blob's, so the session names nothing a retry would miss (and it is put back if the link fails).
        alongsideLink: async () => {
          const claim = attempt.claim!;
          claim.end();
          removed = claim.loaded;
          ended = await this.sessions.end(claim.loaded.state);
          this.hashes.forget(id);
          this.tailBytes.forgetSession(id);
        },
      });
      // An unpublished tail's bytes went into the blob (a part, or the bytes written whole): it goes,
      // once the blob is linked (a retry of a failed link needs it), when no completion racing this one
      // can have published it; otherwise garbage collection removes it.
      const held = attempt.claim?.state.tail;
      if (held && !held.published && this.sessions.tailDisposable(loaded.state)) {
        await this.deleteTail(id, held.key, 'upload tail of a completed blob');
      }
      return info;
    } catch (err) {
      await writer?.abandon();
      const claim = attempt.claim;
      if (err instanceof DigestMismatch) {
        if (!claim && this.carried.has(loaded)) {
          // Computed on a state the URL carried: wrong only if that state is still the stored one
          // (for a session never stored, if nothing is stored yet).
          const stored = await this.sessions.read(id);
          if ((stored?.etag ?? UNSTORED) !== loaded.etag) throw new OutdatedState(stored);
        }
        // Refused before any blob could name the tail: it goes with the session.
        claim?.end();
        const base = claim?.loaded ?? attempt.loaded;
        const held = base.state.tail && { ...base.state.tail, published: false };
        // Unclaimed, only the state the request started from: one carried in an outdated URL must not
        // take a session that moved on (the request is then run again on the stored state).
        await this.sessions
          .discard(
            { ...base, state: { ...base.state, ...(held && { tail: held }) } },
            claim ? { force: true } : { unchanged: true },
          )
          .catch((cause: unknown) => {
            this.log.warn(
              'upload session with a wrong digest not discarded; it expires with stale sessions',
              {
                upload: id,
                ...describeError(cause),
              },
            );
          });
        this.hashes.forget(id);
        this.tailBytes.forgetSession(id);
      } else {
        await claim?.release();
      }
      throw await this.explain(err, attempt);
    }
  }

  /**
   * A whole blob in one request (POST with `?digest=`). When its length is announced and fits in one
   * part, it needs no session: one write of the bytes (checksummed) and one of the link.
   */
  async upload(
    repo: RepositoryName,
    digest: ParsedDigest,
    body: AsyncIterable<Uint8Array> | null,
    expect: ChunkExpectation,
    owner?: string,
    client?: string,
  ): Promise<BlobInfo> {
    if (
      expect.length === undefined ||
      expect.length > Math.min(this.limits.partSize, this.limits.maxBlobSize)
    ) {
      const session = await this.sessions.create(repo, digest.algorithm, owner, client);
      return this.completeLoaded(repo, session, digest, body, expect, client);
    }
    const length = expect.length;
    const bytes = await readLimited(body, length, () => new BodyLengthMismatch(length));
    if (bytes.byteLength !== length) throw new BodyLengthMismatch(length, bytes.byteLength);
    const hex = createHash(digest.algorithm).update(bytes).digest('hex');
    checkDigest(digest, hex);
    const sha256 = digest.algorithm === 'sha256' ? Buffer.from(hex, 'hex').toString('base64') : undefined;
    return this.blobs.storeAndLink(repo, digest, { bytes, sha256Base64: sha256 });
  }

  /**
   * Cancels a session: everything it holds goes, unless a completion has published it as a blob's data.
   * A request writing to or completing the session meanwhile makes this a conflict: cancelling
   * under it could delete the bytes the completion is making into a blob.
   */
  async cancel(repo: RepositoryName, id: string, owner?: string, carried?: string): Promise<void> {
    const loaded = await this.current(repo, id, owner, carried);
    if (loaded.state.status === 'verifying') throw new UploadVerifying(id);
    try {
      if (!(await this.sessions.discard(loaded))) throw new UploadUnknown(repo, id);
    } catch (err) {
      if (err instanceof UploadBusy) throw new UploadCancelConflict(id);
      throw err;
    }
    this.hashes.forget(id);
    this.tailBytes.forgetSession(id);
  }

  /**
   * Cancels sessions untouched for `maxAgeMs` (clients that went away). Returns how many. Ages are
   * measured on the store's clock (`now`, default: read from the store), never the caller's. A
   * session a live request holds is left alone whatever its age.
   */
  async purgeStale(maxAgeMs: number, now?: number): Promise<number> {
    now ??= await storeTime(this.storage);
    let purged = 0;
    let startAfter: string | undefined;
    for (;;) {
      const page = await this.storage.list(keys.uploadsPrefix, { startAfter, limit: 1000 });
      for (const key of page.keys) {
        const info = await this.storage.head(key);
        // An `ended` marker goes once no URL with the session's first state can be used any more.
        const age = info ? now - info.lastModified.getTime() : 0;
        if (!info || age < Math.min(maxAgeMs, ENDED_KEPT_MS)) continue;
        const id = /^uploads\/([0-9a-f-]{36})\.json$/.exec(key)?.[1];
        const loaded = id ? await this.sessions.read(id) : undefined;
        if (!loaded || loaded.state.status === 'ended') {
          await this.storage.delete(key);
          if (!loaded) purged++;
          continue;
        }
        if (age < maxAgeMs) continue;
        if (this.sessions.leased(loaded.state)) continue;
        const discarded = await this.sessions.discard(loaded).catch((err: unknown) => {
          // Claimed or changed since it was read: not stale after all.
          if (err instanceof UploadBusy) return false;
          throw err;
        });
        if (discarded) purged++;
        this.hashes.forget(loaded.state.id);
        this.tailBytes.forgetSession(loaded.state.id);
      }
      if (!page.truncated || page.keys.length === 0) return purged;
      startAfter = page.keys[page.keys.length - 1];
    }
  }

  /**
   * The session as the request's URL carried it (when its signature holds) or as stored, checked:
   * an open session of `repo` and `owner` where the chunk starts at its offset, and not held by
   * another request.
   */
  private async open(
    repo: RepositoryName,
    id: string,
    owner: string | undefined,
    carried: string | undefined,
    expect: ChunkExpectation,
  ): Promise<LoadedSession<OpenSession>> {
    const fromUrl = carried === undefined ? undefined : this.signer.verify(id, carried);
    // A never-stored state starts its session only within UNSTORED_VALID_MS of the POST.
    const usable = fromUrl && (fromUrl.etag !== UNSTORED || unstoredUsable(fromUrl.state));
    if (fromUrl && usable && fromUrl.state.status === 'open' && startsAt(fromUrl.state, expect)) {
      const accepted = this.sessions.accept(repo, id, owner, fromUrl) as LoadedSession<OpenSession>;
      this.carried.add(accepted);
      return accepted;
    }
    // No state carried, or one that does not fit the request (an outdated URL): read the session
    // (a never-stored one is as its URL carries it).
    const loaded = await this.current(repo, id, owner, carried);
    if (loaded.etag === UNSTORED) this.carried.add(loaded);
    if (loaded.state.status !== 'open') throw new UploadWrongKind(repo, id, 'direct');
    checkStart(loaded.state, expect);
    return loaded as LoadedSession<OpenSession>;
  }

  /**
   * Bytes are counted before they come: a client whose open sessions hold its cap sends no more,
   * and one request may bring at most what is left.
   */
  private admit(
    loaded: LoadedSession<OpenSession>,
    expect: ChunkExpectation,
    client: string | undefined,
  ): Budget | undefined {
    const quota = this.sessions.quota;
    return client !== undefined && quota
      ? { remaining: quota.admit(client, loaded.state.id, loaded.state.offset, expect.length), client }
      : undefined;
  }

  /**
   * Starts the request's hold on the session: claimed at once when it has a multipart upload (its
   * parts are the session's, one writer at a time) or when `claimNow` (a tail too old to publish
   * without a claim becomes a blob's data), otherwise only if the request comes to write a part or
   * alongside the blob's write.
   */
  private async attempt(
    loaded: LoadedSession<OpenSession>,
    publish = false,
    claimNow = false,
  ): Promise<Attempt> {
    const attempt: Attempt = { loaded, claim: undefined, nonce: randomUUID(), publish };
    try {
      if (this.sessions.leased(loaded.state)) throw busy(loaded.state);
      if (claimNow || loaded.state.multipartId !== undefined) {
        attempt.claim = await this.claimFor(loaded, publish ? publishTail : undefined);
      }
    } catch (err) {
      throw await this.explain(err, attempt);
    }
    return attempt;
  }

  private claimFor(
    loaded: LoadedSession<OpenSession>,
    change?: (state: OpenSession) => OpenSession,
  ): Promise<Claim<OpenSession>> {
    return this.sessions.claim(loaded, change);
  }

  /**
   * The request's last write to the session: its new state, without a lease. Claimed, through the
   * claim; otherwise one write conditional on the state the request started from.
   */
  private async commitLast(attempt: Attempt, next: OpenSession): Promise<LoadedSession> {
    try {
      if (attempt.claim) return await attempt.claim.finish(next);
      const { lease: _lease, ...rest } = next;
      return await this.sessions.replace(attempt.loaded, rest as OpenSession);
    } catch (err) {
      if (err instanceof PreconditionFailed) throw new UploadChanged(next.id);
      throw err;
    }
  }

  /**
   * What a failed request tells its client. A request that lost the race for its session says
   * UploadUnknown instead when the session is gone: cancelled, expired or completed meanwhile.
   */
  private async explain(err: unknown, attempt: Attempt): Promise<unknown> {
    const { id, repo } = attempt.loaded.state;
    // A multipart upload that vanished under the request: the session was cancelled or expired meanwhile.
    const translated = err instanceof NoSuchUpload ? new UploadCancelled(id, true) : err;
    if (isLostRace(translated)) {
      const now = await this.sessions.read(id).catch((cause: unknown) => {
        this.log.debug('upload session unreadable after a lost race; answered as gone', {
          upload: id,
          ...describeError(cause),
        });
        return undefined;
      });
      if (now === undefined || now.state.status === 'discarding' || now.state.status === 'ended') {
        return new UploadUnknown(repo as RepositoryName, id);
      }
      // Taken for direct parts meanwhile (the request came with the POST's URL): one session, one way.
      if (now.state.status !== 'open') return new UploadWrongKind(repo as RepositoryName, id, 'direct');
    }
    return translated;
  }

  /**
   * Streams the request body into parts, hashing as it goes. The session's tail is read and put in
   * front of the body's bytes when the first of them arrives; a request without bytes leaves it be.
   */
  private async receive(
    attempt: Attempt,
    body: AsyncIterable<Uint8Array> | null,
    expect: ChunkExpectation,
    budget: Budget | undefined,
    /** What bytes left at the end become, when the request is not a completion. */
    tailKey?: string,
  ): Promise<Received> {
    const state = attempt.loaded.state;
    const writer = new PartWriter(
      this.storage,
      keys.data(state.id),
      this.limits.partSize,
      state.parts,
      state.multipartId,
      async (multipartId) => {
        // Recorded at once, so that cancelling or expiring the session can abort it: in the claim
        // that makes the session this request's, or in the claim it already holds.
        const claim = attempt.claim;
        if (claim) return this.commitOrBusy(claim, { ...claim.state, multipartId });
        try {
          attempt.claim = await this.claimFor(attempt.loaded, (s) => ({ ...s, multipartId }));
        } catch (err) {
          await this.storage.multipart.abort(keys.data(state.id), multipartId).catch((cause: unknown) => {
            this.log.warn('multipart upload of a lost claim not aborted; left to garbage collection', {
              upload: state.id,
              ...describeError(cause),
            });
          });
          throw err;
        }
      },
    );
    if (tailKey !== undefined) {
      writer.streamTail(
        tailKey,
        expect.length === undefined ? undefined : (state.tail?.size ?? 0) + expect.length,
      );
    }
    let unloadedTail = state.tail;
    const loadTail = async () => {
      if (!unloadedTail) return;
      const { key, size } = unloadedTail;
      unloadedTail = undefined;
      // This process wrote it (the session's previous request came here): no read before the answer.
      const cached = this.tailBytes.get(key, size);
      if (cached) {
        for (const chunk of cached) await writer.write(chunk);
        return;
      }
      const tail = await this.storage.get(key);
      if (!tail || tail.size !== size) {
        // A state the URL carried may be outdated: its tail replaced since. Then it is a lost race.
        const now = await this.sessions.read(state.id).catch((cause: unknown) => {
          this.log.debug('upload session unreadable while its tail is missing', {
            upload: state.id,
            ...describeError(cause),
          });
          return undefined;
        });
        if (now && now.etag !== attempt.loaded.etag) throw new UploadChanged(state.id);
        throw new UploadDataLost(state.id);
      }
      await writer.write(tail.body);
    };
    try {
      const hash = await this.hashes.resume({
        sessionId: state.id,
        algorithm: state.algorithm,
        offset: state.offset,
        state: state.hashState,
      });
      let received = 0;
      if (body) {
        for await (const chunk of body) {
          received += chunk.byteLength;
          if (expect.length !== undefined && received > expect.length) throw new BodyTooLong(expect.length);
          if (budget && received > budget.remaining) {
            throw this.sessions.quota!.overflow(budget.client, budget.remaining, received);
          }
          if (state.offset + received > this.limits.maxBlobSize)
            throw new BlobTooLarge(this.limits.maxBlobSize);
          if (chunk.byteLength === 0) continue;
          await loadTail();
          hash?.update(chunk);
          await writer.write(chunk);
        }
      }
      if (expect.length !== undefined && received !== expect.length) {
        throw new BodyLengthMismatch(expect.length, received);
      }
      return { writer, hash, offset: state.offset + received, unloadedTail, loadTail };
    } catch (err) {
      await writer.abandon();
      throw err;
    }
  }

  /** Checks the digest and completes the data; what is left is storing and linking the blob. */
  private async finish(attempt: Attempt, received: Received, digest: ParsedDigest): Promise<BlobSource> {
    const { writer, hash, offset } = received;
    const dataKey = keys.data(attempt.loaded.state.id);
    const running = hash && hash.algorithm === digest.algorithm ? hash : undefined;
    const tail = attempt.publish ? attempt.loaded.state.tail : undefined;
    if (tail && received.unloadedTail) {
      // A tail is published only when it holds every byte of the upload.
      if (tail.size !== offset) throw new Error(`published tail holds ${tail.size} of ${offset} bytes`);
      if (running) checkDigest(digest, running.hex());
      else {
        const object = await this.storage.getStream(tail.key);
        if (!object || object.size !== tail.size) throw new UploadDataLost(attempt.loaded.state.id);
        checkDigest(digest, await hashStream(object.body, digest.algorithm));
      }
      // Reading the tail back took the window's end: the claim comes before the blob after all.
      if (!attempt.claim && !this.sessions.publishable(tail.at)) {
        attempt.claim = await this.claimFor(attempt.loaded, publishTail);
      }
      return { dataKey: tail.key, size: tail.size };
    }
    await received.loadTail();
    if (!writer.uploadId) {
      const bytes = writer.drain();
      // Everything received is held here when no multipart upload was made.
      if (bytes.byteLength !== offset) throw new Error(`upload holds ${bytes.byteLength} of ${offset} bytes`);
      const hex = running ? running.hex() : createHash(digest.algorithm).update(bytes).digest('hex');
      checkDigest(digest, hex);
      const sha256 = digest.algorithm === 'sha256' ? Buffer.from(hex, 'hex').toString('base64') : undefined;
      return { bytes, sha256Base64: sha256 };
    }
    if (running) checkDigest(digest, running.hex());
    await this.completeData(dataKey, writer, offset);
    if (!running) {
      const object = await this.storage.getStream(dataKey);
      if (!object) throw new UploadDataVanished(attempt.loaded.state.id);
      const hex = await hashStream(object.body, digest.algorithm);
      if (hex !== digest.hex) await this.storage.delete(dataKey);
      checkDigest(digest, hex);
    }
    return { dataKey, size: offset };
  }

  /**
   * Uploads the last part and completes the multipart upload. If S3 completed it on an earlier try
   * whose answer was lost, the upload is gone but its object is there, whole: `data/<id>` belongs to
   * this session alone, so an object of the session's size is that completed upload.
   */
  private async completeData(dataKey: string, writer: PartWriter, size: number): Promise<void> {
    const uploadId = writer.uploadId;
    if (!uploadId) throw new Error('completeData needs a multipart upload');
    try {
      await writer.flushAll();
      await this.storage.multipart.complete(dataKey, uploadId, writer.parts);
    } catch (err) {
      if (!(err instanceof NoSuchUpload) || (await this.storage.head(dataKey))?.size !== size) throw err;
    }
  }

  private view(session: LoadedSession): UploadStatus {
    const { state } = session;
    const signed = this.signer.sign(session);
    return {
      id: state.id,
      repo: state.repo as RepositoryName,
      offset: state.offset,
      ...(signed && { state: signed }),
    };
  }

  private async commitOrBusy(claim: Claim<OpenSession>, next: OpenSession): Promise<void> {
    try {
      await claim.commit(next);
    } catch (err) {
      if (err instanceof PreconditionFailed) throw new UploadChanged(next.id);
      throw err;
    }
  }
}

/** The claim of a completion whose tail becomes the blob's data: no discard deletes it from then on. */
function publishTail(state: OpenSession): OpenSession {
  return { ...state, tail: { ...state.tail!, published: true } };
}

function startsAt(state: { readonly offset: number }, expect: ChunkExpectation): boolean {
  return expect.start === undefined || expect.start === state.offset;
}

function checkStart(state: { readonly id: string; readonly offset: number }, expect: ChunkExpectation): void {
  if (!startsAt(state, expect)) throw new ChunkOutOfOrder(state.id, expect.start!, state.offset);
}

function checkDigest(expected: ParsedDigest, actualHex: string): void {
  if (actualHex !== expected.hex) {
    throw new DigestMismatch('upload', expected.digest, `${expected.algorithm}:${actualHex}`);
  }
}

/**
 * A request body that can be read once more: its chunks are kept (not copied) while they add up to at
 * most `limit` bytes. `replay` is the body again: the original if nothing read it yet, the chunks if
 * it was read whole within the limit, else undefined.
 */
class RecordedBody {
  readonly body: AsyncIterable<Uint8Array> | null;
  private chunks: Uint8Array[] = [];
  private size = 0;
  private started = false;
  private whole = false;
  private over = false;

  constructor(
    private readonly original: AsyncIterable<Uint8Array> | null,
    private readonly limit: number,
  ) {
    this.body = original && this.record(original);
  }

  replay(): AsyncIterable<Uint8Array> | null | undefined {
    if (!this.original || !this.started) return this.original;
    if (!this.whole || this.over) return undefined;
    const chunks = this.chunks;
    return (async function* () {
      yield* chunks;
    })();
  }

  private async *record(source: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    this.started = true;
    for await (const chunk of source) {
      this.size += chunk.byteLength;
      if (this.size > this.limit) {
        this.over = true;
        this.chunks = [];
      } else if (!this.over) this.chunks.push(chunk);
      yield chunk;
    }
    this.whole = true;
  }
}

/** A state a URL carried turned out not to be the stored one (`stored`, or none: the session is gone). */
class OutdatedState extends Error {
  constructor(readonly stored: LoadedSession | undefined) {
    super('the upload state in the URL is outdated');
  }
}
