import { createHash } from 'node:crypto';
import { RegistryError } from '../oci/errors.ts';
import type { DigestAlgorithm, ParsedDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { readLimited } from '../util/read-body.ts';
import { NoSuchUpload, PreconditionFailed, type StorageDriver } from '../storage/port.ts';
import type { BlobInfo, Blobs, BlobSource } from './blobs.ts';
import { hashStream, type HashStates, type RunningHash } from './hashing.ts';
import { keys } from './keys.ts';
import { PartWriter } from './part-writer.ts';
import { storeTime } from './store-clock.ts';
import {
  type Claim,
  type LoadedSession,
  type OpenSession,
  type SessionState,
  type SessionStore,
  unknownUpload,
} from './upload-session.ts';

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
}

export interface UploadStatus {
  readonly id: string;
  readonly repo: RepositoryName;
  /** Bytes received so far. */
  readonly offset: number;
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
  constructor(
    private readonly storage: StorageDriver,
    private readonly blobs: Blobs,
    private readonly hashes: HashStates,
    private readonly limits: UploadLimits,
    private readonly sessions: SessionStore,
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
    return view((await this.sessions.create(repo, algorithm, owner, client)).state);
  }

  async status(repo: RepositoryName, id: string, owner?: string): Promise<UploadStatus> {
    return view((await this.sessions.load(repo, id, owner)).state);
  }

  async append(
    repo: RepositoryName,
    id: string,
    body: AsyncIterable<Uint8Array> | null,
    expect: ChunkExpectation,
    owner?: string,
    client?: string,
  ): Promise<UploadStatus> {
    const [claim, budget] = await this.claim(repo, id, expect, owner, client);
    const state = claim.state;
    let newTail: { key: string; size: number } | undefined;
    let writer: PartWriter | undefined;
    try {
      const received = await this.receive(claim, body, expect, budget);
      writer = received.writer;
      if (received.offset === state.offset) {
        // No bytes: nothing changes.
        await claim.release();
        return view(state);
      }
      await writer.endRequest();
      if (writer.buffered > 0) {
        // Named by the claim's token: a request that stalled past its lease and was taken over can
        // never overwrite the tail of the request that took over.
        newTail = {
          key: keys.tail(state.id, state.tailSeq + 1, claim.state.lease?.token),
          size: writer.buffered,
        };
        await this.storage.put(newTail.key, writer.drain());
      }
      const next: OpenSession = {
        ...claim.state,
        offset: received.offset,
        ...(writer.uploadId !== undefined && { multipartId: writer.uploadId }),
        parts: writer.parts,
        tail: newTail,
        tailSeq: state.tailSeq + 1,
        hashState: received.hash
          ? await this.hashes.save(state.id, received.offset, received.hash)
          : undefined,
      };
      await this.finishClaim(claim, next);
      this.sessions.quota?.update(state.id, next.offset);
      if (state.tail && !state.tail.published) await this.storage.delete(state.tail.key);
      return view(next);
    } catch (err) {
      await writer?.abandon();
      if (newTail) await this.storage.delete(newTail.key).catch(() => undefined);
      await claim.release();
      throw translate(err);
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
  ): Promise<BlobInfo> {
    // A last request without bytes on a session whose bytes are all in its tail (a small blob pushed
    // as PATCH then PUT, docker's way): the tail object becomes the blob's data as it is, with no
    // read and no rewrite. Marked in the claim, before a blob can name it (see the session's tail).
    const empty = body === null || expect.length === 0;
    const [claim, budget] = await this.claim(repo, id, expect, owner, client, (state) =>
      empty && state.tail && !state.multipartId && state.tail.key.startsWith('data/')
        ? { ...state, tail: { ...state.tail, published: true } }
        : state,
    );
    let writer: PartWriter | undefined;
    try {
      const received = await this.receive(claim, body, expect, budget);
      writer = received.writer;
      const source = await this.finish(claim, received, digest);
      const info = await this.blobs.storeAndLink(repo, digest, source);
      claim.end();
      // The multipart upload is complete and a published tail is the blob's; an unpublished tail's
      // bytes went into the blob (a part, or the bytes written whole): it goes.
      const tail = claim.state.tail;
      if (tail && !tail.published) await this.storage.delete(tail.key);
      await this.sessions.delete(id);
      this.hashes.forget(id);
      return info;
    } catch (err) {
      await writer?.abandon();
      if (err instanceof RegistryError && err.code === 'DIGEST_INVALID') {
        // Refused before any blob could name the tail: it goes with the session.
        claim.end();
        const tail = claim.state.tail && { ...claim.state.tail, published: false };
        await this.sessions
          .discard({ ...claim.loaded, state: { ...claim.state, ...(tail && { tail }) } }, { force: true })
          .catch(() => undefined);
        this.hashes.forget(id);
      } else {
        await claim.release();
      }
      throw translate(err);
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
      return this.complete(repo, session.state.id, digest, body, expect, owner, client);
    }
    const length = expect.length;
    const bytes = await readLimited(body, length, () => lengthMismatch(length, `more than ${length}`));
    if (bytes.byteLength !== length) throw lengthMismatch(length, String(bytes.byteLength));
    const hex = createHash(digest.algorithm).update(bytes).digest('hex');
    checkDigest(digest, hex);
    const sha256 = digest.algorithm === 'sha256' ? Buffer.from(hex, 'hex').toString('base64') : undefined;
    return this.blobs.storeAndLink(repo, digest, { bytes, sha256Base64: sha256 });
  }

  /**
   * Cancels a session: everything it holds goes, unless a completion has published it as a blob's data.
   * A request writing to or completing the session meanwhile makes this a conflict (409): cancelling
   * under it could delete the bytes the completion is making into a blob.
   */
  async cancel(repo: RepositoryName, id: string, owner?: string): Promise<void> {
    const loaded = await this.sessions.load(repo, id, owner);
    if (loaded.state.status === 'verifying') {
      throw new RegistryError(
        'BLOB_UPLOAD_INVALID',
        'the upload is complete and its content is being verified; it cannot be cancelled now',
      );
    }
    try {
      if (!(await this.sessions.discard(loaded))) throw unknownUpload(repo, id);
    } catch (err) {
      if (err instanceof RegistryError && err.status === 416) {
        throw new RegistryError(
          'BLOB_UPLOAD_INVALID',
          'another request is writing to or completing this upload; cancel it once that request has ended',
          { status: 409 },
        );
      }
      throw err;
    }
    this.hashes.forget(id);
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
        if (!info || now - info.lastModified.getTime() < maxAgeMs) continue;
        const id = /^uploads\/([0-9a-f-]{36})\.json$/.exec(key)?.[1];
        const loaded = id ? await this.sessions.read(id) : undefined;
        if (!loaded) {
          await this.storage.delete(key);
          purged++;
          continue;
        }
        if (this.sessions.leased(loaded.state)) continue;
        const discarded = await this.sessions.discard(loaded).catch((err: unknown) => {
          // Claimed or changed since it was read: not stale after all.
          if (err instanceof RegistryError && err.status === 416) return false;
          throw err;
        });
        if (discarded) purged++;
        this.hashes.forget(loaded.state.id);
      }
      if (!page.truncated || page.keys.length === 0) return purged;
      startAfter = page.keys[page.keys.length - 1];
    }
  }

  /** Loads the session, checks the chunk starts where it ends, and claims it for this request. */
  private async claim(
    repo: RepositoryName,
    id: string,
    expect: ChunkExpectation,
    owner: string | undefined,
    client: string | undefined,
    change?: (state: OpenSession) => OpenSession,
  ): Promise<[Claim<OpenSession>, Budget | undefined]> {
    const loaded = await this.sessions.load(repo, id, owner);
    if (loaded.state.status !== 'open') {
      throw new RegistryError(
        'BLOB_UPLOAD_INVALID',
        `upload ${id} is a direct upload: its parts go to the presigned URLs and it is completed with POST /v2/${repo}/_berth/v1/uploads/${id}/complete (docs/upload-extension.md)`,
      );
    }
    checkStart(loaded.state, expect);
    // Bytes are counted before they come: a client whose open sessions hold its cap sends no more,
    // and one request may bring at most what is left.
    const quota = this.sessions.quota;
    const budget =
      client !== undefined && quota
        ? { remaining: quota.admit(client, id, loaded.state.offset, expect.length), client }
        : undefined;
    return [await this.sessions.claim(loaded as LoadedSession<OpenSession>, change), budget];
  }

  /**
   * Streams the request body into parts, hashing as it goes. The session's tail is read and put in
   * front of the body's bytes when the first of them arrives; a request without bytes leaves it be.
   */
  private async receive(
    claim: Claim<OpenSession>,
    body: AsyncIterable<Uint8Array> | null,
    expect: ChunkExpectation,
    budget: Budget | undefined,
  ): Promise<Received> {
    const state = claim.state;
    const writer = new PartWriter(
      this.storage,
      keys.data(state.id),
      this.limits.partSize,
      state.parts,
      state.multipartId,
      async (multipartId) => {
        // Recorded at once, so that cancelling or expiring the session can abort it.
        await this.commitOrBusy(claim, { ...claim.state, multipartId });
      },
    );
    let unloadedTail = state.tail;
    const loadTail = async () => {
      if (!unloadedTail) return;
      const { key, size } = unloadedTail;
      unloadedTail = undefined;
      const tail = await this.storage.get(key);
      if (!tail || tail.size !== size) {
        throw new RegistryError(
          'BLOB_UPLOAD_UNKNOWN',
          'the upload session lost its buffered bytes; start the upload again',
        );
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
          if (expect.length !== undefined && received > expect.length) {
            throw new RegistryError(
              'BLOB_UPLOAD_INVALID',
              `request body is longer than the ${expect.length} bytes announced`,
            );
          }
          if (budget && received > budget.remaining) {
            throw this.sessions.quota!.overflow(budget.client, budget.remaining, received);
          }
          if (state.offset + received > this.limits.maxBlobSize) {
            throw new RegistryError(
              'SIZE_INVALID',
              `blob exceeds this registry's limit of ${this.limits.maxBlobSize} bytes`,
              { status: 413 },
            );
          }
          if (chunk.byteLength === 0) continue;
          await loadTail();
          hash?.update(chunk);
          await writer.write(chunk);
        }
      }
      if (expect.length !== undefined && received !== expect.length) {
        throw lengthMismatch(expect.length, String(received));
      }
      return { writer, hash, offset: state.offset + received, unloadedTail, loadTail };
    } catch (err) {
      await writer.abandon();
      throw err;
    }
  }

  /** Checks the digest and completes the data; what is left is storing and linking the blob. */
  private async finish(
    claim: Claim<OpenSession>,
    received: Received,
    digest: ParsedDigest,
  ): Promise<BlobSource> {
    const { writer, hash, offset } = received;
    const dataKey = keys.data(claim.state.id);
    const running = hash && hash.algorithm === digest.algorithm ? hash : undefined;
    const tail = received.unloadedTail;
    if (tail?.published) {
      // The claim publishes a tail only when it holds every byte of the upload.
      if (tail.size !== offset) throw new Error(`published tail holds ${tail.size} of ${offset} bytes`);
      if (running) checkDigest(digest, running.hex());
      else {
        const object = await this.storage.getStream(tail.key);
        if (!object || object.size !== tail.size) {
          throw new RegistryError(
            'BLOB_UPLOAD_UNKNOWN',
            'the upload session lost its buffered bytes; start the upload again',
          );
        }
        checkDigest(digest, await hashStream(object.body, digest.algorithm));
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
      if (!object)
        throw new RegistryError('UNAVAILABLE', 'the uploaded data vanished before it could be verified');
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

  /** The request's last write to the session: its new state, the claim dropped. */
  private async finishClaim(claim: Claim<OpenSession>, next: OpenSession): Promise<void> {
    try {
      await claim.finish(next);
    } catch (err) {
      if (err instanceof PreconditionFailed) throw changedMeanwhile();
      throw err;
    }
  }

  private async commitOrBusy(claim: Claim<OpenSession>, next: OpenSession): Promise<void> {
    try {
      await claim.commit(next);
    } catch (err) {
      if (err instanceof PreconditionFailed) throw changedMeanwhile();
      throw err;
    }
  }
}

function changedMeanwhile(): RegistryError {
  return new RegistryError(
    'BLOB_UPLOAD_INVALID',
    'the upload session was changed by another request; retry',
    {
      status: 416,
    },
  );
}

function view(state: SessionState): UploadStatus {
  return { id: state.id, repo: state.repo as RepositoryName, offset: state.offset };
}

function checkStart(state: SessionState, expect: ChunkExpectation): void {
  if (expect.start !== undefined && expect.start !== state.offset) {
    throw new RegistryError(
      'BLOB_UPLOAD_INVALID',
      `chunk starts at byte ${expect.start} but the upload has ${state.offset} bytes; send the chunk starting at ${state.offset}`,
      { status: 416, detail: { offset: state.offset } },
    );
  }
}

function lengthMismatch(announced: number, actual: string): RegistryError {
  return new RegistryError(
    'BLOB_UPLOAD_INVALID',
    `request body has ${actual} bytes but ${announced} were announced; resend it`,
  );
}

/** A multipart upload that vanished under a request: the session was cancelled or expired meanwhile. */
function translate(err: unknown): unknown {
  if (err instanceof NoSuchUpload) {
    return new RegistryError('BLOB_UPLOAD_UNKNOWN', 'the upload was cancelled while this request ran');
  }
  return err;
}

function checkDigest(expected: ParsedDigest, actualHex: string): void {
  if (actualHex !== expected.hex) {
    throw new RegistryError(
      'DIGEST_INVALID',
      `uploaded content has digest ${expected.algorithm}:${actualHex}, not ${expected.digest}; nothing was stored`,
    );
  }
}
