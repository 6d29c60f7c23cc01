import { randomUUID } from 'node:crypto';
import { RemoteError, repositoryScope, type RemoteRegistry } from './remote.ts';

const MiB = 1024 * 1024;

export interface UploadTuning {
  /** Bytes per part sent to a presigned URL (at least S3's 5 MiB). */
  readonly partSize: number;
  /** Parts uploaded at once; memory held is about (concurrency + 1) x partSize. */
  readonly concurrency: number;
  /** Attempts per part before the upload fails. */
  readonly attempts: number;
  /** Blobs up to this size go up in one ordinary request (under Lambda's 4.4 MB body limit). */
  readonly smallLimit: number;
}

export const DEFAULT_TUNING: UploadTuning = {
  partSize: 16 * MiB,
  concurrency: 4,
  attempts: 5,
  smallLimit: 4 * MiB,
};

/** What an upload reports as it goes (bytes acknowledged by the store, parts done). */
export interface UploadEvents {
  onBytes?(sent: number): void;
  onPart?(partNumber: number): void;
}

export type UploadMode = 'direct' | 'streamed' | 'single';

export interface UploadResult {
  readonly digest: string;
  readonly size: number;
  readonly mode: UploadMode;
  readonly parts: number;
}

interface PartUrl {
  readonly url: string;
  readonly until: number;
}

/** Where an upload lives on the remote once it has a session there. */
interface RemoteSession {
  readonly id: string;
  /** The session's path, which a PATCH answer may move on. */
  location: string;
}

/**
 * One blob upload to a remote Berth registry. Bytes are written in any chunking; the first few MiB
 * are held to see whether the blob is small (then it goes up in one request: a monolithic
 * `POST ?digest=` when no session was opened for it, which saves the session's round trip). A larger blob goes
 * in parts straight to S3 through presigned URLs (the direct-upload extension), several parts at
 * once, each retried on failure; a registry without the extension (the filesystem store) gets
 * ordinary PATCH requests of one part each instead. Memory is bounded by the parts in flight.
 */
export class BlobUpload {
  private mode: UploadMode | undefined;
  private held: Uint8Array[] = [];
  private heldSize = 0;
  private written = 0;
  private partNumber = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
  private readonly urls = new Map<number, PartUrl>();
  private session: RemoteSession | undefined;
  /** The session and the way its parts go, being found out while more bytes arrive. */
  private starting: Promise<UploadMode> | undefined;

  private constructor(
    private readonly remote: RemoteRegistry,
    readonly repo: string,
    /** The remote session's id, or for a deferred upload a local one (the remote's is not known yet). */
    readonly id: string,
    session: RemoteSession | undefined,
    private readonly tuning: UploadTuning,
    /** Who hears about progress; may be set after opening. */
    public events: UploadEvents,
  ) {
    this.session = session;
  }

  /**
   * An upload that opens its session on the remote only when the blob turns out larger than
   * `smallLimit`; a small one goes up in a single `POST ?digest=` at `finish` (one request to the
   * remote where a session and its PUT take two, each a Lambda invocation and S3 writes).
   */
  static deferred(
    remote: RemoteRegistry,
    repo: string,
    tuning: UploadTuning = DEFAULT_TUNING,
    events: UploadEvents = {},
  ): BlobUpload {
    return new BlobUpload(remote, repo, randomUUID(), undefined, tuning, events);
  }

  /** Opens an upload session on the remote. */
  static async open(
    remote: RemoteRegistry,
    repo: string,
    tuning: UploadTuning = DEFAULT_TUNING,
    events: UploadEvents = {},
  ): Promise<BlobUpload> {
    const res = await remote.request({
      method: 'POST',
      path: `/v2/${repo}/blobs/uploads/`,
      scope: repositoryScope(repo, true),
      headers: { 'Content-Length': '0' },
    });
    if (res.status !== 202) throw await RemoteError.from(res, `opening an upload in ${repo}`);
    await res.body?.cancel();
    return BlobUpload.adopt(remote, repo, res.headers.get('Location') ?? '', tuning, events);
  }

  private static sessionOf(location: string): RemoteSession {
    const path = location.startsWith('http') ? new URL(location).pathname : location.split('?')[0]!;
    const id = /\/blobs\/uploads\/([^/?]+)$/.exec(path)?.[1];
    if (!id) throw new Error(`the remote answered with an upload location I cannot read: ${location}`);
    return { id, location: path };
  }

  /** Takes over a session the remote already opened (a mount answered 202). */
  static adopt(
    remote: RemoteRegistry,
    repo: string,
    location: string,
    tuning: UploadTuning = DEFAULT_TUNING,
    events: UploadEvents = {},
  ): BlobUpload {
    const session = BlobUpload.sessionOf(location);
    return new BlobUpload(remote, repo, session.id, session, tuning, events);
  }

  /** Bytes written so far. */
  get offset(): number {
    return this.written;
  }

  get parts(): number {
    return this.partNumber;
  }

  /** Takes a chunk; the caller must not reuse its memory afterwards (it may be sent later). */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    if (chunk.byteLength === 0) return;
    this.written += chunk.byteLength;
    this.held.push(chunk);
    this.heldSize += chunk.byteLength;
    if (this.mode === undefined) {
      if (this.heldSize <= this.tuning.smallLimit) return;
      // Opening the session and asking for part URLs (two round trips to the remote) overlap with
      // the client's next bytes: nothing is sent before a whole part is held anyway.
      this.starting ??= this.start();
      if (this.heldSize < this.tuning.partSize) return;
      this.mode = await this.starting;
    }
    while (this.heldSize >= this.tuning.partSize) await this.sendPart(this.take(this.tuning.partSize));
  }

  /** Sends what is left and completes the upload with `digest`; resolves once the blob is visible. */
  async finish(digest: string): Promise<UploadResult> {
    if (this.failure) throw this.failure;
    const size = this.written;
    if (this.mode === undefined && this.starting) this.mode = await this.starting;
    if (this.mode === undefined) {
      const bytes = this.take(this.heldSize);
      await (this.session ? this.put(digest, bytes) : this.postWhole(digest, bytes));
      return { digest, size, mode: 'single', parts: 0 };
    }
    if (this.mode === 'streamed') {
      await this.put(digest, this.take(this.heldSize));
      return { digest, size, mode: 'streamed', parts: this.partNumber };
    }
    if (this.heldSize > 0 || this.partNumber === 0) await this.sendPart(this.take(this.heldSize));
    await this.drain();
    await this.complete(digest, size);
    return { digest, size, mode: 'direct', parts: this.partNumber };
  }

  /** Abandons the upload: the remote discards the session and every part sent. */
  async cancel(): Promise<void> {
    this.failure ??= new Error('the upload was cancelled');
    await Promise.allSettled([...this.inFlight]);
    // A session being opened is discarded once it is; one never opened leaves nothing to discard.
    await this.starting?.catch(() => undefined);
    if (!this.session) return;
    const res = await this.remote
      .request({ method: 'DELETE', path: this.session.location, scope: repositoryScope(this.repo, true) })
      // Called on the way out of a failure the caller reports; when the remote cannot be told, it
      // expires the session itself (its upload TTL), so there is nothing more to say or do here.
      .catch(() => undefined);
    await res?.body?.cancel();
  }

  /** Opens the session if need be and finds out whether parts can go straight to the store. */
  private start(): Promise<UploadMode> {
    const starting = (async (): Promise<UploadMode> => {
      await this.opened();
      return (await this.directAvailable()) ? 'direct' : 'streamed';
    })();
    // Awaited by the next write or by finish; a failure meanwhile must not go unhandled.
    starting.catch(() => undefined);
    return starting;
  }

  /** The remote session, opened now if this upload was deferred. */
  private async opened(): Promise<RemoteSession> {
    if (this.session) return this.session;
    const res = await this.remote.request({
      method: 'POST',
      path: `/v2/${this.repo}/blobs/uploads/`,
      scope: repositoryScope(this.repo, true),
      headers: { 'Content-Length': '0' },
    });
    if (res.status !== 202) throw await RemoteError.from(res, `opening an upload in ${this.repo}`);
    await res.body?.cancel();
    this.session = BlobUpload.sessionOf(res.headers.get('Location') ?? '');
    return this.session;
  }

  /** A session this upload has opened (every path but the monolithic one has). */
  private get remoteSession(): RemoteSession {
    if (!this.session) throw new Error('the upload has no session on the remote');
    return this.session;
  }

  private take(size: number): Uint8Array {
    const all = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held, this.heldSize);
    const part = all.subarray(0, size);
    const rest = all.subarray(size);
    this.held = rest.byteLength > 0 ? [rest] : [];
    this.heldSize = rest.byteLength;
    return part;
  }

  /** Asks for the first part URLs; a registry without the extension (or without S3) says UNSUPPORTED. */
  private async directAvailable(): Promise<boolean> {
    try {
      await this.fetchUrls(1);
      return true;
    } catch (err) {
      if (err instanceof RemoteError && (err.code === 'UNSUPPORTED' || err.status === 404)) return false;
      throw err;
    }
  }

  private async sendPart(bytes: Uint8Array): Promise<void> {
    if (this.mode === 'streamed') {
      await this.patch(bytes);
      return;
    }
    while (this.inFlight.size >= this.tuning.concurrency) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
    const partNumber = ++this.partNumber;
    const task = this.uploadPart(partNumber, bytes).then(
      () => {
        this.events.onPart?.(partNumber);
      },
      (err: unknown) => {
        this.failure ??= err;
      },
    );
    this.inFlight.add(task);
    void task.finally(() => this.inFlight.delete(task));
  }

  private async drain(): Promise<void> {
    await Promise.all([...this.inFlight]);
    if (this.failure) throw this.failure;
  }

  private async uploadPart(partNumber: number, body: Uint8Array): Promise<void> {
    let last: unknown;
    for (let attempt = 1; attempt <= this.tuning.attempts; attempt++) {
      if (attempt > 1) await sleep(Math.min(8000, 250 * 2 ** attempt));
      try {
        const url = await this.urlFor(partNumber);
        const res = await fetch(url, { method: 'PUT', body: body as BodyInit });
        await res.body?.cancel();
        if (res.ok) {
          this.events.onBytes?.(body.byteLength);
          return;
        }
        // 403: the URL expired (or the clock is off); get a fresh one.
        if (res.status === 403) this.urls.delete(partNumber);
        last = new Error(`part ${partNumber}: the store answered ${res.status}`);
        if (res.status >= 400 && res.status < 500 && res.status !== 403 && res.status !== 408) break;
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  private async urlFor(partNumber: number): Promise<string> {
    const cached = this.urls.get(partNumber);
    if (cached && cached.until > Date.now()) return cached.url;
    await this.fetchUrls(partNumber);
    const fresh = this.urls.get(partNumber);
    if (!fresh) throw new Error(`the registry gave no URL for part ${partNumber}`);
    return fresh.url;
  }

  /** Fetches URLs for a batch of parts from `first` on (ahead of need, to save round trips). */
  private async fetchUrls(first: number): Promise<void> {
    const batch = Array.from({ length: 4 * this.tuning.concurrency }, (_, i) => first + i).filter(
      (n) => n <= 10_000,
    );
    const res = await this.remote.request({
      method: 'POST',
      path: `/v2/${this.repo}/_berth/v1/uploads/${this.remoteSession.id}/parts`,
      scope: repositoryScope(this.repo, true),
      headers: { 'Content-Type': 'application/json' },
      body: new TextEncoder().encode(JSON.stringify({ parts: batch })),
    });
    if (res.status !== 200) throw await RemoteError.from(res, 'asking for part URLs');
    const body = (await res.json()) as { expiresAt: string; parts: { partNumber: number; url: string }[] };
    // A minute of margin: a part that starts just before expiry still gets in.
    const until = Date.parse(body.expiresAt) - 60_000;
    for (const p of body.parts) this.urls.set(p.partNumber, { url: p.url, until });
  }

  private async complete(digest: string, size: number): Promise<void> {
    const res = await this.remote.request({
      method: 'POST',
      path: `/v2/${this.repo}/_berth/v1/uploads/${this.remoteSession.id}/complete`,
      scope: repositoryScope(this.repo, true),
      headers: { 'Content-Type': 'application/json' },
      body: new TextEncoder().encode(JSON.stringify({ digest, size })),
    });
    if (res.status === 201) {
      await res.body?.cancel();
      return;
    }
    if (res.status !== 202) throw await RemoteError.from(res, 'completing the upload');
    await res.body?.cancel();
    await this.waitVerified(digest);
  }

  /** Polls a verification the registry runs in the background until the blob is visible or refused. */
  private async waitVerified(digest: string): Promise<void> {
    for (let delay = 250; ; delay = Math.min(2000, delay * 2)) {
      await sleep(delay);
      const res = await this.remote.request({
        method: 'GET',
        path: `/v2/${this.repo}/_berth/v1/uploads/${this.remoteSession.id}`,
        scope: repositoryScope(this.repo, true),
      });
      if (res.status === 202) {
        await res.body?.cancel();
        continue;
      }
      if (res.status !== 404) throw await RemoteError.from(res, 'verifying the upload');
      await res.body?.cancel();
      const head = await this.remote.request({
        method: 'HEAD',
        path: `/v2/${this.repo}/blobs/${digest}`,
        scope: repositoryScope(this.repo, false),
      });
      if (head.ok) return;
      throw new RemoteError(404, 'BLOB_UNKNOWN', 'the verified blob is not in the repository', '');
    }
  }

  private async patch(bytes: Uint8Array): Promise<void> {
    const start = this.written - this.heldSize - bytes.byteLength;
    const session = this.remoteSession;
    const res = await this.remote.request({
      method: 'PATCH',
      path: session.location,
      scope: repositoryScope(this.repo, true),
      headers: {
        'Content-Type': 'application/octet-stream',
        'Content-Range': `${start}-${start + bytes.byteLength - 1}`,
        'Content-Length': String(bytes.byteLength),
      },
      body: bytes,
    });
    if (res.status !== 202) throw await RemoteError.from(res, 'sending a chunk');
    await res.body?.cancel();
    this.partNumber++;
    this.events.onBytes?.(bytes.byteLength);
    this.events.onPart?.(this.partNumber);
    session.location = pathOf(res.headers.get('Location')) ?? session.location;
  }

  /** The last bytes with the digest, on the session's URL (a PUT that completes it). */
  private put(digest: string, bytes: Uint8Array): Promise<void> {
    const { location } = this.remoteSession;
    const path = `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
    return this.sendWhole('PUT', path, bytes, 'completing the upload');
  }

  /** A whole blob in one monolithic upload (`POST ?digest=`), with no session opened before. */
  private postWhole(digest: string, bytes: Uint8Array): Promise<void> {
    const path = `/v2/${this.repo}/blobs/uploads/?digest=${encodeURIComponent(digest)}`;
    return this.sendWhole('POST', path, bytes, 'uploading the blob');
  }

  /** One request carrying `bytes` that must answer 201 (the blob is stored). */
  private async sendWhole(
    method: 'PUT' | 'POST',
    path: string,
    bytes: Uint8Array,
    doing: string,
  ): Promise<void> {
    const res = await this.remote.request({
      method,
      path,
      scope: repositoryScope(this.repo, true),
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.byteLength) },
      body: bytes,
    });
    if (res.status !== 201) throw await RemoteError.from(res, doing);
    await res.body?.cancel();
    this.events.onBytes?.(bytes.byteLength);
  }
}

function pathOf(location: string | null): string | undefined {
  if (!location) return undefined;
  return location.startsWith('http') ? new URL(location).pathname + new URL(location).search : location;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
