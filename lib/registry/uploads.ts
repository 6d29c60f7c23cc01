import { createHash } from 'node:crypto';
import { RegistryError } from '../oci/errors.ts';
import type { DigestAlgorithm, ParsedDigest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { readLimited } from './read-body.ts';
import { NoSuchUpload, PreconditionFailed, type StorageDriver } from '../storage/port.ts';
import type { BlobInfo, Blobs, BlobSource } from './blobs.ts';
import { hashStream, type HashStates, type RunningHash } from './hashing.ts';
import { parseStoredJson } from './json.ts';
import { keys } from './keys.ts';
import { PartWriter } from './part-writer.ts';
import { storeTime } from './store-clock.ts';
import { discardSession, SessionStore, type LoadedSession, type SessionState } from './upload-session.ts';

export interface UploadLimits {
  /** Largest blob a client may upload, in bytes. */
  readonly maxBlobSize: number;
  /** Size of the multipart parts cut from a request body (bounded memory per request). */
  readonly partSize: number;
  /** How long one request may hold a session before another may take it over (after a crash). */
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

interface Received {
  session: LoadedSession;
  writer: PartWriter;
  hash: RunningHash | undefined;
  offset: number;
  /** The session's tail when no bytes came to be joined to it: still in its object, not in `writer`. */
  unloadedTail: SessionState['tail'];
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
  private readonly sessions: SessionStore;

  constructor(
    private readonly storage: StorageDriver,
    private readonly blobs: Blobs,
    private readonly hashes: HashStates,
    private readonly limits: UploadLimits,
  ) {
    this.sessions = new SessionStore(storage, limits.leaseMs);
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
  ): Promise<UploadStatus> {
    return view((await this.sessions.create(repo, algorithm, owner)).state);
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
  ): Promise<UploadStatus> {
    const claimed = await this.claim(repo, id, expect, owner);
    let current = claimed;
    let newTail: { key: string; size: number } | undefined;
    let writer: PartWriter | undefined;
    try {
      const received = await this.receive(claimed, body, expect, (s) => (current = s));
      writer = received.writer;
      if (received.offset === claimed.state.offset) {
        // No bytes: nothing changes.
        await this.sessions.release(current);
        return view(current.state);
      }
      await writer.endRequest();
      const state = current.state;
      if (writer.buffered > 0) {
        newTail = { key: keys.tail(state.id, state.tailSeq + 1), size: writer.buffered };
        await this.storage.put(newTail.key, writer.drain());
      }
      const next: SessionState = {
        ...state,
        offset: received.offset,
        multipartId: writer.uploadId,
        parts: writer.parts,
        tail: newTail,
        tailSeq: state.tailSeq + 1,
        hashState: received.hash
          ? await this.hashes.save(state.id, received.offset, received.hash)
          : undefined,
        lease: undefined,
      };
      current = await this.commit(current, next);
      if (state.tail && !state.tail.published) await this.storage.delete(state.tail.key);
      return view(next);
    } catch (err) {
      await writer?.abandon();
      if (newTail) await this.storage.delete(newTail.key).catch(() => undefined);
      await this.sessions.release(current);
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
  ): Promise<BlobInfo> {
    // A last request without bytes on a session whose bytes are all in its tail (a small blob pushed
    // as PATCH then PUT, docker's way): the tail object becomes the blob's data as it is, with no
    // read and no rewrite. Marked in the claim, before a blob can name it (see SessionState.tail).
    const empty = body === null || expect.length === 0;
    const claimed = await this.claim(repo, id, expect, owner, (state) =>
      empty && state.tail && !state.multipartId && state.tail.key.startsWith('data/')
        ? { ...state, tail: { ...state.tail, published: true } }
        : state,
    );
    let current = claimed;
    let writer: PartWriter | undefined;
    try {
      const received = await this.receive(claimed, body, expect, (s) => (current = s));
      writer = received.writer;
      const source = await this.finish(received, digest);
      const info = await this.blobs.storeAndLink(repo, digest, source);
      // The multipart upload is complete and a published tail is the blob's: neither is removed.
      await this.discard({ ...current.state, multipartId: undefined });
      return info;
    } catch (err) {
      await writer?.abandon();
      if (err instanceof RegistryError && err.code === 'DIGEST_INVALID') {
        // Refused before any blob could name the tail: it goes with the session.
        const tail = current.state.tail && { ...current.state.tail, published: false };
        await this.discard({ ...current.state, tail });
      } else {
        await this.sessions.release(current);
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
  ): Promise<BlobInfo> {
    if (
      expect.length === undefined ||
      expect.length > Math.min(this.limits.partSize, this.limits.maxBlobSize)
    ) {
      const session = await this.sessions.create(repo, digest.algorithm, owner);
      return this.complete(repo, session.state.id, digest, body, expect, owner);
    }
    const length = expect.length;
    const bytes = await readLimited(body, length, () => lengthMismatch(length, `more than ${length}`));
    if (bytes.byteLength !== length) throw lengthMismatch(length, String(bytes.byteLength));
    const hex = createHash(digest.algorithm).update(bytes).digest('hex');
    checkDigest(digest, hex);
    const sha256 = digest.algorithm === 'sha256' ? Buffer.from(hex, 'hex').toString('base64') : undefined;
    return this.blobs.storeAndLink(repo, digest, { bytes, sha256Base64: sha256 });
  }

  async cancel(repo: RepositoryName, id: string, owner?: string): Promise<void> {
    const { state } = await this.sessions.load(repo, id, owner);
    if (state.verifying) {
      throw new RegistryError(
        'BLOB_UPLOAD_INVALID',
        'the upload is complete and its content is being verified; it cannot be cancelled now',
      );
    }
    await this.discard(state);
  }

  /**
   * Cancels sessions untouched for `maxAgeMs` (clients that went away). Returns how many. Ages are
   * measured on the store's clock (`now`, default: read from the store), never the caller's.
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
        const match = /^uploads\/([0-9a-f-]{36})\.json$/.exec(key);
        const state = match ? await this.readState(key) : undefined;
        if (state) await this.discard(state);
        else await this.storage.delete(key);
        purged++;
      }
      if (!page.truncated || page.keys.length === 0) return purged;
      startAfter = page.keys[page.keys.length - 1];
    }
  }

  private async readState(key: string): Promise<SessionState | undefined> {
    const object = await this.storage.get(key);
    const stored = object
      ? (parseStoredJson(object.body) as { repo?: unknown; id?: unknown } | undefined)
      : undefined;
    if (typeof stored?.repo !== 'string' || typeof stored.id !== 'string') return undefined;
    return (await this.sessions.load(stored.repo as RepositoryName, stored.id).catch(() => undefined))?.state;
  }

  /** Loads the session, checks the chunk starts where it ends, and claims it for this request. */
  private async claim(
    repo: RepositoryName,
    id: string,
    expect: ChunkExpectation,
    owner: string | undefined,
    change?: (state: SessionState) => SessionState,
  ): Promise<LoadedSession> {
    const loaded = await this.sessions.load(repo, id, owner);
    if (loaded.state.direct || loaded.state.verifying || loaded.state.failure !== undefined) {
      throw new RegistryError(
        'BLOB_UPLOAD_INVALID',
        `upload ${id} is a direct upload: its parts go to the presigned URLs and it is completed with POST /v2/${repo}/_berth/v1/uploads/${id}/complete (docs/upload-extension.md)`,
      );
    }
    checkStart(loaded.state, expect);
    return this.sessions.claim(loaded, change);
  }

  /**
   * Streams the request body into parts, hashing as it goes. The session's tail is read and put in
   * front of the body's bytes when the first of them arrives; a request without bytes leaves it be.
   */
  private async receive(
    claimed: LoadedSession,
    body: AsyncIterable<Uint8Array> | null,
    expect: ChunkExpectation,
    onSessionChange: (s: LoadedSession) => void,
  ): Promise<Received> {
    let session = claimed;
    const state = claimed.state;
    const writer = new PartWriter(
      this.storage,
      keys.data(state.id),
      this.limits.partSize,
      state.parts,
      state.multipartId,
      async (multipartId) => {
        // Recorded at once, so that cancelling or expiring the session can abort it.
        session = await this.commit(session, { ...session.state, multipartId });
        onSessionChange(session);
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
      return { session, writer, hash, offset: state.offset + received, unloadedTail, loadTail };
    } catch (err) {
      await writer.abandon();
      throw err;
    }
  }

  /** Checks the digest and completes the data; what is left is storing and linking the blob. */
  private async finish(received: Received, digest: ParsedDigest): Promise<BlobSource> {
    const { writer, hash, offset } = received;
    const dataKey = keys.data(received.session.state.id);
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

  /** Removes every trace of a session: multipart upload, tail, unverified data and state. */
  private async discard(state: SessionState): Promise<void> {
    await discardSession(this.storage, this.sessions, state);
    this.hashes.forget(state.id);
  }

  private async commit(session: LoadedSession, next: SessionState): Promise<LoadedSession> {
    try {
      return await this.sessions.replace(session, next);
    } catch (err) {
      if (err instanceof PreconditionFailed) {
        throw new RegistryError(
          'BLOB_UPLOAD_INVALID',
          'the upload session was changed by another request; retry',
          {
            status: 416,
          },
        );
      }
      throw err;
    }
  }
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
