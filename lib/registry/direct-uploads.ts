import { randomUUID } from 'node:crypto';
import { describeError, type Logger } from '../logging/logger.ts';
import { parseDigest, type ParsedDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import {
  NoSuchUpload,
  PreconditionFailed,
  type DirectPartStore,
  type PartInfo,
  type StorageDriver,
} from '../storage/port.ts';
import type { BlobInfo, Blobs } from './blobs.ts';
import {
  BlobTooLarge,
  DirectPartsInvalid,
  DirectUnsupported,
  UploadAlreadyCompleted,
  UploadBusy,
  UploadCancelled,
  UploadChanged,
  UploadUnknown,
  UploadVerificationFailed,
  UploadWrongKind,
} from './errors.ts';
import { keys } from './keys.ts';
import { readBackDigest, type ReadBackOptions } from './read-back.ts';
import type { UploadStateSigner } from './upload-state.ts';
import {
  type Claim,
  type DirectSession,
  type LoadedSession,
  type ObjectSession,
  type OpenSession,
  type SessionState,
  type SessionStore,
  type VerifyingSession,
} from './upload-session.ts';

export interface DirectUploadOptions {
  /** Lifetime of presigned part URLs, in seconds. */
  readonly presignTtlSeconds: number;
  /** Blobs up to this size are verified within the completing request; larger ones asynchronously. */
  readonly syncVerifyLimit: number;
  /** How long one verification may run before another may take it over (a crashed verifier). */
  readonly verifyLeaseMs: number;
  /**
   * Starts an asynchronous verification elsewhere (on AWS: a verifier function invoked with an
   * event). Absent, it runs in the background of this process (the local server, the gateway).
   */
  readonly dispatch?: (job: VerificationJob) => Promise<void>;
  readonly readBack?: ReadBackOptions;
}

/** Lookups a completing request starts early (DirectUploads.verifyClaimed). */
interface LookedAhead {
  readonly existing?: Promise<BlobInfo | undefined>;
  readonly content?: Promise<string>;
}

/** What an asynchronous verifier is given: which session, and the verification's token. */
export interface VerificationJob {
  readonly repo: string;
  readonly id: string;
  readonly token: string;
}

/** A checked PUT of the whole blob: the URL, the headers that must go with it, and until when. */
export interface PresignedObject {
  readonly expiresAt: Date;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface PresignedParts {
  readonly expiresAt: Date;
  readonly parts: { readonly partNumber: number; readonly url: string }[];
}

export type DirectStatus =
  | { readonly status: 'open'; readonly parts: readonly PartInfo[] }
  | { readonly status: 'verifying'; readonly digest: string; readonly size: number };

export type Completion =
  | { readonly status: 'verified'; readonly blob: BlobInfo }
  | { readonly status: 'verifying'; readonly digest: string; readonly size: number };

/** The most part URLs one request may ask for (the answer stays well under Lambda's 6 MB). */
export const MAX_PARTS_PER_REQUEST = 1000;

/**
 * The direct-upload extension (docs/upload-extension.md): the client uploads a session's parts
 * straight to S3 with presigned UploadPart URLs, then completes the session with the digest. The
 * registry never saw the bytes, so it lists the parts itself, completes the multipart upload into
 * the session's data object, and reads the object back to check the digest before the blob is
 * published and linked. Until then the blob is invisible; a wrong digest deletes everything.
 */
export class DirectUploads {
  private readonly background = new Set<Promise<unknown>>();

  constructor(
    private readonly storage: StorageDriver,
    private readonly blobs: Blobs,
    private readonly sessions: SessionStore,
    private readonly maxBlobSize: number,
    private readonly options: DirectUploadOptions,
    private readonly logger?: Logger,
    /** Verifies the state an upload URL carries: a session a POST never wrote is known by it alone. */
    private readonly signer?: UploadStateSigner,
  ) {}

  /** The stored session, or the never-stored one `carried` (the Location's signed state) describes. */
  private locate(
    repo: RepositoryName,
    id: string,
    owner: string | undefined,
    carried: string | undefined,
  ): Promise<LoadedSession> {
    const signer = this.signer;
    return this.sessions.locate(
      repo,
      id,
      owner,
      () => (carried === undefined || !signer ? undefined : signer.verify(id, carried)),
      signer?.ready().catch(() => undefined),
    );
  }

  /** Presigned UploadPart URLs for the given part numbers of the session's multipart upload. */
  async presignParts(
    repo: RepositoryName,
    id: string,
    owner: string | undefined,
    partNumbers: readonly number[],
    carried?: string,
  ): Promise<PresignedParts> {
    const direct = this.directStore();
    if (partNumbers.length === 0 || partNumbers.length > MAX_PARTS_PER_REQUEST) {
      throw new DirectPartsInvalid({
        problem: 'count',
        requested: partNumbers.length,
        max: MAX_PARTS_PER_REQUEST,
      });
    }
    for (const n of partNumbers) {
      if (!Number.isInteger(n) || n < 1 || n > this.storage.multipart.maxParts) {
        throw new DirectPartsInvalid({
          problem: 'number',
          value: String(n),
          max: this.storage.multipart.maxParts,
        });
      }
    }
    const session = await this.openDirect(await this.locate(repo, id, owner, carried));
    const multipartId = session.state.multipartId;
    const ttl = this.options.presignTtlSeconds;
    const expiresAt = new Date(Date.now() + ttl * 1000);
    const parts = await Promise.all(
      [...new Set(partNumbers)].map(async (partNumber) => ({
        partNumber,
        url: await direct.presignPart(keys.data(id), multipartId, partNumber, ttl),
      })),
    );
    return { expiresAt, parts };
  }

  /**
   * A presigned single PUT of the whole blob `digest` (`size` bytes) to the session's data object,
   * which the store refuses unless the body's SHA-256 is the digest's: completing it then needs no
   * read-back. The first such request makes the session an `object` one, for this digest only.
   */
  async presignObject(
    repo: RepositoryName,
    id: string,
    owner: string | undefined,
    digest: ParsedDigest,
    size: number,
    carried?: string,
  ): Promise<PresignedObject> {
    const direct = this.directStore();
    if (digest.algorithm !== 'sha256') {
      throw new DirectPartsInvalid({ problem: 'object-algorithm', algorithm: digest.algorithm });
    }
    if (size > this.maxBlobSize) throw new BlobTooLarge(this.maxBlobSize, size);
    // S3 takes at most 5 GiB in one PUT, the same as in one part.
    const maxSingle = this.storage.multipart.maxPartSize;
    if (size > maxSingle) throw new DirectPartsInvalid({ problem: 'object-too-large', size, max: maxSingle });
    await this.openObject(await this.locate(repo, id, owner, carried), digest, size);
    const ttl = this.options.presignTtlSeconds;
    const expiresAt = new Date(Date.now() + ttl * 1000);
    const sha256 = Buffer.from(digest.hex, 'hex').toString('base64');
    const { url, headers } = await direct.presignChecked(keys.data(id), sha256, ttl);
    return { expiresAt, url, headers };
  }

  async status(
    repo: RepositoryName,
    id: string,
    owner: string | undefined,
    carried?: string,
  ): Promise<DirectStatus> {
    const session = await this.locate(repo, id, owner, carried);
    const { state } = session;
    switch (state.status) {
      case 'failed':
        // Told once; the session is gone after that.
        await this.sessions.end(state);
        throw new UploadVerificationFailed(id, state.failure);
      case 'verifying':
        if (state.until < Date.now())
          await this.restartVerification(session as LoadedSession<VerifyingSession>);
        return { status: 'verifying', digest: state.digest, size: state.size };
      case 'direct':
        return {
          status: 'open',
          parts: await this.directStore().listParts(keys.data(id), state.multipartId),
        };
      // A checked PUT's session: nothing to list; the client sends the whole blob again if unsure.
      default:
        return { status: 'open', parts: [] };
    }
  }

  /**
   * Completes the session's multipart upload from the parts the store holds and verifies `digest`:
   * within this call for blobs up to the sync limit, otherwise asynchronously ('verifying').
   */
  async complete(
    repo: RepositoryName,
    id: string,
    owner: string | undefined,
    digest: ParsedDigest,
    announcedSize?: number,
    carried?: string,
  ): Promise<Completion> {
    const direct = this.directStore();
    const loaded = await this.locate(repo, id, owner, carried);
    const state = loaded.state;
    if (state.status === 'verifying') {
      if (state.digest !== digest.digest) throw new UploadAlreadyCompleted(id, state.digest);
      if (state.until < Date.now()) await this.restartVerification(loaded as LoadedSession<VerifyingSession>);
      return { status: 'verifying', digest: digest.digest, size: state.size };
    }
    if (state.status === 'failed') {
      await this.sessions.end(state);
      throw new UploadVerificationFailed(id, state.failure);
    }
    if (state.status === 'object') {
      return this.completeObject(loaded as LoadedSession<ObjectSession>, digest, announcedSize);
    }
    if (state.status !== 'direct') throw new UploadWrongKind(repo, id, 'not-direct');
    const claim = await this.sessions.claim(loaded as LoadedSession<DirectSession>);
    const multipartId = state.multipartId;
    const dataKey = keys.data(id);
    let size: number;
    try {
      let parts: PartInfo[] | undefined;
      try {
        parts = await direct.listParts(dataKey, multipartId);
      } catch (err) {
        if (!(err instanceof NoSuchUpload)) throw err;
      }
      if (parts) {
        size = this.checkParts(parts, announcedSize);
        await this.refuseTooLarge(claim, size);
        await this.storage.multipart.complete(dataKey, multipartId, parts);
      } else {
        // Completed by an earlier try whose answer was lost: data/<id> belongs to this session alone.
        const object = await this.storage.head(dataKey);
        if (!object) throw new UploadCancelled(id, false);
        size = object.size;
      }
    } catch (err) {
      await claim.release();
      throw err;
    }
    if (size <= this.options.syncVerifyLimit) {
      // The blob's pointer looked up and the data read back while the state is written: the state
      // only has to be there before the blob is.
      const existing = this.lookAhead(this.blobs.statGlobal(digest));
      const content = this.lookAhead(this.contentDigest(dataKey, size, digest.algorithm, false));
      const session = await this.markVerifying(claim, digest, size, false);
      return this.verifyNow(session, { existing, content });
    }
    const session = await this.markVerifying(claim, digest, size, false);
    await this.start({ repo, id, token: session.state.token });
    return { status: 'verifying', digest: digest.digest, size };
  }

  /**
   * Completes a checked PUT's session: the object is there and the store checked its SHA-256 on the
   * way in, so the session becomes `verifying` and is verified within this call by that checksum,
   * whatever the size. The same states and claim as a direct upload's, so that a crash or a racing
   * cancel at any point is handled as there. (Without the claim, a cancel that lost the race to the
   * `verifying` write would read that state and discard it under the publishing completion.)
   */
  private async completeObject(
    loaded: LoadedSession<ObjectSession>,
    digest: ParsedDigest,
    announcedSize: number | undefined,
  ): Promise<Completion> {
    const state = loaded.state;
    if (state.digest !== digest.digest) {
      throw new DirectPartsInvalid({ problem: 'object-digest', digest: state.digest });
    }
    const claim = await this.sessions.claim(loaded);
    const dataKey = keys.data(state.id);
    const existing = this.lookAhead(this.blobs.statGlobal(digest));
    let stored: { size: number; sha256Base64?: string } | undefined;
    try {
      stored = await this.directStore().storedSha256(dataKey);
      if (!stored) throw new DirectPartsInvalid({ problem: 'no-object' });
      if (announcedSize !== undefined && announcedSize !== stored.size) {
        throw new DirectPartsInvalid({ problem: 'object-size', size: stored.size, announced: announcedSize });
      }
      await this.refuseTooLarge(claim, stored.size);
    } catch (err) {
      await claim.release();
      throw err;
    }
    const session = await this.markVerifying(claim, digest, stored.size, true);
    // The object cannot have changed since: a PUT to its URL must carry the same SHA-256.
    const sha = stored.sha256Base64;
    const content =
      sha === undefined ? undefined : Promise.resolve(Buffer.from(sha, 'base64').toString('hex'));
    return this.verifyNow(session, { existing, ...(content && { content }) });
  }

  /** A lookup started before its answer is needed; awaited later, or dropped if the request fails first. */
  private lookAhead<T>(promise: Promise<T>): Promise<T> {
    promise.catch(() => undefined);
    return promise;
  }

  /** Over the limit: the session and everything it holds go, and the client is told. */
  private async refuseTooLarge(claim: Claim<DirectSession | ObjectSession>, size: number): Promise<void> {
    if (size <= this.maxBlobSize) return;
    claim.end();
    await this.sessions.discard(claim.loaded, { force: true });
    throw new BlobTooLarge(this.maxBlobSize, size);
  }

  /**
   * Writes the `verifying` state (`digest`, `size`; `checked` for a checked PUT's object) that ends
   * the claim, and beside it (not after: one round trip less) the `_verifying` marker that lets a
   * manifest PUT say the blob is being verified. The marker is only for that message: a failure to
   * write it is logged, not the request's failure.
   */
  private async markVerifying(
    claim: Claim<DirectSession | ObjectSession>,
    digest: ParsedDigest,
    size: number,
    checked: boolean,
  ): Promise<LoadedSession<VerifyingSession>> {
    const { v, id, repo, createdAt, algorithm, offset, owner } = claim.state;
    const next: VerifyingSession = {
      v,
      id,
      repo,
      createdAt,
      algorithm,
      offset,
      ...(owner !== undefined && { owner }),
      status: 'verifying',
      digest: digest.digest,
      size,
      token: randomUUID(),
      until: Date.now() + this.options.verifyLeaseMs,
      ...(checked && { checked: true as const }),
    };
    const marker = this.storage
      .put(keys.verifying(repo as RepositoryName, digest), new TextEncoder().encode(id), {
        contentType: 'text/plain',
      })
      .then(
        () => undefined,
        (err: unknown) =>
          this.sessions.logger.warn(
            'verification marker not written; a manifest PUT meanwhile says the blob is unknown',
            { upload: id, ...describeError(err) },
          ),
      );
    const [session] = await Promise.all([claim.finish(next), marker]);
    return session as LoadedSession<VerifyingSession>;
  }

  /** Verifies within the request; a failure to read leaves the verification to be restarted. */
  private async verifyNow(
    session: LoadedSession<VerifyingSession>,
    ahead?: LookedAhead,
  ): Promise<Completion> {
    const outcome = await this.verifyClaimed(session, false, ahead).catch(async (err: unknown) => {
      // Not a wrong digest but a failure to read (the store): the next poll or retry starts again.
      await this.sessions.replace(session, { ...session.state, until: 0 }).catch((cause: unknown) => {
        // The verification's lease then runs out on its own (verifyLeaseMs) before a retry restarts it.
        this.sessions.logger.warn(
          'failed verification not marked for a restart; it restarts when its lease ends',
          {
            upload: session.state.id,
            ...describeError(cause),
          },
        );
      });
      throw err;
    });
    if (outcome.status === 'failed') throw new UploadVerificationFailed(session.state.id, outcome.message);
    return { status: 'verified', blob: outcome.blob };
  }

  /**
   * Runs one verification job (the asynchronous path). A job whose token is no longer the session's
   * (the session was taken over after a crash, finished, or cancelled) does nothing.
   */
  async verify(job: VerificationJob): Promise<'verified' | 'failed' | 'skipped'> {
    const session = await this.sessions.load(job.repo as RepositoryName, job.id).catch((err: unknown) => {
      if (err instanceof UploadUnknown) return undefined;
      throw err;
    });
    if (session?.state.status !== 'verifying' || session.state.token !== job.token) return 'skipped';
    const outcome = await this.verifyClaimed(session as LoadedSession<VerifyingSession>, true);
    return outcome.status;
  }

  /** Waits for this process's background verifications (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /**
   * `ahead`: what the completing request started before the state was written (the blob's pointer,
   * the data's digest), so as not to wait for them one after the other. Without it, both start here
   * at once: the hash is wasted only when an earlier run already published the blob.
   */
  private async verifyClaimed(
    session: LoadedSession<VerifyingSession>,
    keepFailure = false,
    ahead: LookedAhead = {},
  ): Promise<{ status: 'verified'; blob: BlobInfo } | { status: 'failed'; message: string }> {
    const state = session.state;
    const repo = state.repo as RepositoryName;
    const digest = parseDigest(state.digest);
    const dataKey = keys.data(state.id);
    const marker = keys.verifying(repo, digest);
    const content =
      ahead.content ??
      this.lookAhead(this.contentDigest(dataKey, state.size, digest.algorithm, state.checked === true));
    const existing = await (ahead.existing ?? this.blobs.statGlobal(digest));
    let blob: BlobInfo;
    if (existing?.dataKey === dataKey) {
      // Published by an earlier run that stopped before cleaning up.
      blob = existing;
      await Promise.all([this.blobs.link(repo, blob), this.storage.delete(marker)]);
    } else {
      const hex = await content;
      if (hex !== digest.hex) {
        const message = `uploaded content has digest ${digest.algorithm}:${hex}, not ${digest.digest}; nothing was stored`;
        await this.storage.delete(dataKey);
        await this.storage.delete(marker);
        if (keepFailure) {
          const { digest: _d, size: _s, token: _t, until: _u, checked: _c, ...rest } = state;
          await this.sessions
            .replace(session, { ...rest, status: 'failed', failure: message })
            .catch(async (err: unknown) => {
              if (!(err instanceof PreconditionFailed)) throw err;
            });
        } else {
          await this.sessions.end(state);
        }
        return { status: 'failed', message };
      }
      // The marker goes while the blob is published: without it a manifest PUT meanwhile says
      // "unknown" rather than "being verified", which is no less true a moment before the link.
      [blob] = await Promise.all([
        this.blobs.storeAndLink(repo, digest, { dataKey, size: state.size }),
        this.storage.delete(marker),
      ]);
    }
    await this.sessions.end(state);
    return { status: 'verified', blob };
  }

  /**
   * The hex digest of the data object: for a checked PUT's, the SHA-256 the store computed when it
   * was written whole; otherwise (or when the store has none of the right size) read back.
   */
  private async contentDigest(
    dataKey: string,
    size: number,
    algorithm: ParsedDigest['algorithm'],
    checked: boolean,
  ): Promise<string> {
    if (checked && algorithm === 'sha256') {
      const stored = await this.directStore().storedSha256(dataKey);
      if (!stored) throw new Error(`${dataKey} vanished while it was being verified`);
      if (stored.sha256Base64 !== undefined && stored.size === size) {
        return Buffer.from(stored.sha256Base64, 'base64').toString('hex');
      }
    }
    return readBackDigest(this.storage, dataKey, size, algorithm, this.options.readBack);
  }

  /**
   * Makes the session a checked PUT's for `digest`, once; asking again (a fresh URL) is fine, for
   * another digest it is not. Racing requests agree on one digest.
   */
  private async openObject(session: LoadedSession, digest: ParsedDigest, size: number): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const { state } = session;
      if (state.status === 'object') {
        if (state.digest !== digest.digest) {
          throw new DirectPartsInvalid({ problem: 'object-digest', digest: state.digest });
        }
        return;
      }
      this.checkFresh(state);
      const { hashState: _h, parts: _p, tail: _t, tailSeq: _s, multipartId: _m, ...rest } = state;
      try {
        await this.sessions.replace(session, { ...rest, status: 'object', digest: digest.digest, size });
        return;
      } catch (err) {
        if (!(err instanceof PreconditionFailed)) throw err;
        if (attempt > 0) throw new UploadChanged(state.id, true);
      }
      // Another request changed it first: see what it made of it.
      session = await this.sessions.load(state.repo as RepositoryName, state.id);
    }
  }

  /**
   * That a session may start to take its bytes straight to the store: open, with nothing received
   * through the registry and no request holding it. One already direct or object took its way (the
   * callers return first for their own).
   */
  private checkFresh(state: SessionState): asserts state is OpenSession {
    const repo = state.repo as RepositoryName;
    if (state.status === 'direct' || state.status === 'object') {
      throw new UploadWrongKind(repo, state.id, state.status === 'direct' ? 'parts' : 'object');
    }
    if (state.status !== 'open') throw new UploadAlreadyCompleted(state.id);
    if (state.offset > 0 || state.tail || state.parts.length > 0 || state.multipartId) {
      throw new UploadWrongKind(repo, state.id, 'chunked');
    }
    if (this.sessions.leased(state)) throw new UploadBusy(state.id);
  }

  /** Marks the session direct and gives it a multipart upload, once; racing requests agree on one. */
  private async openDirect(session: LoadedSession): Promise<LoadedSession<DirectSession>> {
    const { state } = session;
    if (state.status === 'direct') return session as LoadedSession<DirectSession>;
    this.checkFresh(state);
    const multipartId = await this.storage.multipart.create(keys.data(state.id));
    const { hashState: _h, parts: _p, tail: _t, tailSeq: _s, multipartId: _m, ...rest } = state;
    try {
      return await this.sessions.replace(session, { ...rest, status: 'direct', multipartId });
    } catch (err) {
      await this.storage.multipart.abort(keys.data(state.id), multipartId).catch((cause: unknown) => {
        this.sessions.logger.warn('unused multipart upload not aborted; left to garbage collection', {
          upload: state.id,
          ...describeError(cause),
        });
      });
      if (!(err instanceof PreconditionFailed)) throw err;
    }
    // Another request opened it first: use its multipart upload.
    const again = await this.sessions.load(state.repo as RepositoryName, state.id);
    if (again.state.status === 'direct') return again as LoadedSession<DirectSession>;
    throw new UploadChanged(state.id, true);
  }

  /** The parts must be 1..n, every one but the last at least the store's minimum. Returns their total size. */
  private checkParts(parts: readonly PartInfo[], announcedSize: number | undefined): number {
    if (parts.length === 0) throw new DirectPartsInvalid({ problem: 'none' });
    let size = 0;
    parts.forEach((part, index) => {
      if (part.partNumber !== index + 1) {
        throw new DirectPartsInvalid({ problem: 'missing', partNumber: index + 1 });
      }
      if (index < parts.length - 1 && part.size < this.storage.multipart.minPartSize) {
        throw new DirectPartsInvalid({
          problem: 'too-small',
          partNumber: part.partNumber,
          size: part.size,
          min: this.storage.multipart.minPartSize,
        });
      }
      size += part.size;
    });
    if (announcedSize !== undefined && announcedSize !== size) {
      throw new DirectPartsInvalid({ problem: 'size', size, announced: announcedSize, parts: parts.length });
    }
    return size;
  }

  /** A verification whose lease ran out (its verifier crashed or timed out) starts again. */
  private async restartVerification(session: LoadedSession<VerifyingSession>): Promise<void> {
    const token = randomUUID();
    try {
      await this.sessions.replace(session, {
        ...session.state,
        token,
        until: Date.now() + this.options.verifyLeaseMs,
      });
    } catch (err) {
      if (err instanceof PreconditionFailed) return;
      throw err;
    }
    await this.start({ repo: session.state.repo, id: session.state.id, token });
  }

  private async start(job: VerificationJob): Promise<void> {
    if (this.options.dispatch) return this.options.dispatch(job);
    const run = this.verify(job).then(
      (outcome) => this.logger?.info('blob verification finished', { ...job, outcome }),
      (err: unknown) =>
        this.logger?.warn('blob verification failed; it restarts when its lease ends', {
          ...job,
          ...describeError(err),
        }),
    );
    this.background.add(run);
    void run.finally(() => this.background.delete(run));
  }

  private directStore(): DirectPartStore {
    const direct = this.storage.direct;
    if (!direct) throw new DirectUnsupported(this.storage.name);
    return direct;
  }
}
