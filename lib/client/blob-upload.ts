import { randomUUID } from 'node:crypto';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
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

/**
 * How the bytes went: `single`, one request to the registry; `checked`, one PUT straight to the store,
 * which checks the digest itself; `direct`, parts straight to the store; `streamed`, PATCH requests.
 */
export type UploadMode = 'direct' | 'checked' | 'streamed' | 'single';

/** The store takes at most this much in one PUT (S3: 5 GiB); larger blobs go in parts. */
const MAX_CHECKED_PUT = 5 * 1024 * MiB;

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
  /** The blob's digest and size, when known before its bytes (see `expect`). */
  private expected: { readonly digest: string; readonly size: number } | undefined;
  /** The checked PUT being sent (mode `checked`). */
  private checked: CheckedPut | undefined;

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

  /**
   * Says what the blob will be before any byte is written: a blob too large for one request then
   * goes to the store in one PUT that the store checks against the digest (the registry then needs
   * no read-back to verify it), when the registry offers that. Ignored once bytes were written.
   */
  expect(digest: string, size: number): void {
    if (this.written > 0 || this.mode !== undefined || this.starting) return;
    if (!digest.startsWith('sha256:') || !Number.isSafeInteger(size) || size < 0) return;
    this.expected = { digest, size };
  }

  /** How the bytes go, once decided. */
  get way(): UploadMode | undefined {
    return this.mode;
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
    if (this.expected && this.written + chunk.byteLength > this.expected.size) {
      throw this.fail(new Error(`the blob has more than the ${this.expected.size} bytes announced`));
    }
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
    if (this.mode === 'checked') return this.sendChecked(this.take(this.heldSize));
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
    if (this.mode === 'checked') {
      const expected = this.expected!;
      if (digest !== expected.digest || size !== expected.size) {
        throw this.fail(
          new Error(
            `the blob is ${digest} of ${size} bytes, not ${expected.digest} of ${expected.size} as announced`,
          ),
        );
      }
      await this.sendChecked(this.take(this.heldSize));
      await this.checked!.end().catch((err: unknown) => {
        throw this.fail(err);
      });
      this.events.onPart?.(1);
      await this.complete(digest, size);
      return { digest, size, mode: 'checked', parts: 1 };
    }
    if (this.heldSize > 0 || this.partNumber === 0) await this.sendPart(this.take(this.heldSize));
    await this.drain();
    await this.complete(digest, size);
    return { digest, size, mode: 'direct', parts: this.partNumber };
  }

  /** Abandons the upload: the remote discards the session and every part sent. */
  async cancel(): Promise<void> {
    this.failure ??= new Error('the upload was cancelled');
    this.checked?.abort();
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
      const expected = this.expected;
      if (expected && expected.size <= MAX_CHECKED_PUT) {
        const put = await this.checkedPut(expected.digest, expected.size);
        if (put === 'unsupported') return 'streamed';
        if (put) {
          this.checked = put;
          return 'checked';
        }
      }
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

  /**
   * Asks for a checked PUT's URL and starts the PUT. 'unsupported': the registry's store signs no
   * URLs (the filesystem store); undefined: the registry has no checked PUTs (an older one).
   */
  private async checkedPut(digest: string, size: number): Promise<CheckedPut | 'unsupported' | undefined> {
    const res = await this.extension('object', { digest, size });
    if (res.status !== 200) {
      const err = await RemoteError.from(res, 'asking for the upload URL');
      if (err.code === 'UNSUPPORTED') return 'unsupported';
      if (err.status === 404 || err.status === 405) return undefined;
      throw err;
    }
    const body = (await res.json()) as { url: string; headers: Record<string, string> };
    return new CheckedPut(body.url, body.headers, size, digest);
  }

  private async sendChecked(bytes: Uint8Array): Promise<void> {
    if (bytes.byteLength === 0) return;
    await this.checked!.write(bytes).catch((err: unknown) => {
      throw this.fail(err);
    });
    this.events.onBytes?.(bytes.byteLength);
  }

  /** Records the first failure (later writes and finish throw it) and gives it back. */
  private fail(err: unknown): unknown {
    this.failure ??= err;
    this.checked?.abort();
    return this.failure;
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
    const res = await this.extension('parts', { parts: batch });
    if (res.status !== 200) throw await RemoteError.from(res, 'asking for part URLs');
    const body = (await res.json()) as { expiresAt: string; parts: { partNumber: number; url: string }[] };
    // A minute of margin: a part that starts just before expiry still gets in.
    const until = Date.parse(body.expiresAt) - 60_000;
    for (const p of body.parts) this.urls.set(p.partNumber, { url: p.url, until });
  }

  /** A request of the direct-upload extension on this upload's session (docs/upload-extension.md). */
  private extension(action: 'parts' | 'object' | 'complete', body: unknown): Promise<Response> {
    return this.remote.request({
      method: 'POST',
      path: `/v2/${this.repo}/_berth/v1/uploads/${this.remoteSession.id}/${action}`,
      scope: repositoryScope(this.repo, true),
      headers: { 'Content-Type': 'application/json' },
      body: new TextEncoder().encode(JSON.stringify(body)),
    });
  }

  private async complete(digest: string, size: number): Promise<void> {
    const res = await this.extension('complete', { digest, size });
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

/**
 * One PUT of a whole blob to a URL the store checks against the blob's SHA-256, sent as the bytes
 * come (with backpressure). S3 answers 400 (BadDigest, XAmzContentChecksumMismatch) to other bytes.
 */
class CheckedPut {
  private readonly request: ClientRequest;
  private readonly answer: Promise<{ readonly status: number; readonly body: string }>;
  private sent = 0;

  constructor(
    url: string,
    headers: Record<string, string>,
    private readonly size: number,
    private readonly digest: string,
  ) {
    const target = new URL(url);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    this.request = send(target, {
      method: 'PUT',
      headers: { ...headers, 'content-length': String(size) },
    });
    this.answer = new Promise((resolve, reject) => {
      this.request.once('error', reject);
      this.request.once('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (chunk: Buffer) => {
          // An error document is small; keep enough of it to name the problem.
          if (kept < 16 * 1024) chunks.push(chunk);
          kept += chunk.length;
        });
        res.once('error', reject);
        res.once('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
        );
      });
    });
    // Awaited by write and end; an early answer (a refusal) must not go unhandled meanwhile.
    this.answer.catch(() => undefined);
  }

  async write(bytes: Uint8Array): Promise<void> {
    this.sent += bytes.byteLength;
    if (this.request.write(bytes)) return;
    // Waits for the socket, or for the store's answer if it refuses before reading everything.
    await Promise.race([
      new Promise((resolve) => this.request.once('drain', resolve)),
      this.answer.then((a) => {
        throw this.refusal(a);
      }),
    ]);
  }

  async end(): Promise<void> {
    if (this.sent !== this.size) {
      this.abort();
      throw new Error(`the blob has ${this.sent} bytes, not the ${this.size} announced`);
    }
    this.request.end();
    const answer = await this.answer;
    if (answer.status !== 200) throw this.refusal(answer);
  }

  /** Drops the connection; a write waiting for it fails (the error settles the answer). */
  abort(): void {
    if (!this.request.destroyed) this.request.destroy(new Error('the upload was cancelled'));
  }

  private refusal(answer: { status: number; body: string }): Error {
    const code = /<Code>([^<]{1,100})<\/Code>/.exec(answer.body)?.[1];
    if (
      answer.status === 400 &&
      code !== undefined &&
      /BadDigest|ChecksumMismatch|InvalidDigest/.test(code)
    ) {
      return new RemoteError(
        400,
        'DIGEST_INVALID',
        `the store refused the blob's bytes: they do not have digest ${this.digest} (${code})`,
        '',
      );
    }
    return new Error(`uploading the blob: the store answered ${answer.status}${code ? ` ${code}` : ''}`);
  }
}
