import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { matchRoute } from '../http/route.ts';
import { BlobUpload, DEFAULT_TUNING, type UploadTuning } from '../client/blob-upload.ts';
import type { Progress, BlobProgress } from '../client/progress.ts';
import { RemoteError, repositoryScope, type RemoteRegistry } from '../client/remote.ts';

export interface RelayOptions {
  readonly remote: RemoteRegistry;
  readonly port: number;
  readonly host?: string;
  readonly tuning?: UploadTuning;
  readonly progress?: Progress;
}

export interface RunningRelay {
  readonly url: string;
  close(): Promise<void>;
}

interface LocalSession {
  readonly upload: BlobUpload;
  readonly progress?: BlobProgress;
  busy: boolean;
}

/** Small bodies (manifests, JSON) are read whole before forwarding, so they can be re-sent after a challenge. */
const MAX_BUFFERED_BODY = 16 * 1024 * 1024;

/** Request headers not passed on: hop-by-hop, and the ones the relay sets itself. */
const DROPPED_REQUEST = new Set([
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'authorization',
  'content-length',
  'accept-encoding',
  'expect',
  'upgrade',
  'proxy-authorization',
]);
const DROPPED_RESPONSE = new Set(['connection', 'keep-alive', 'transfer-encoding', 'www-authenticate']);

/**
 * `berth relay`: a registry endpoint on loopback that forwards to a remote Berth registry. Blob
 * uploads are taken over: the bytes a client PATCHes or PUTs go in parallel parts straight to S3
 * through the remote's direct-upload extension, so any layer size gets through a Lambda's 4.4 MB
 * request limit. Everything else (manifests, HEADs, pulls) is passed through with the relay's own
 * token for the remote; local clients need no login. Locations are rewritten to stay on the relay.
 */
export async function startRelay(options: RelayOptions): Promise<RunningRelay> {
  const sessions = new Map<string, LocalSession>();
  const tuning = options.tuning ?? DEFAULT_TUNING;
  const server = createServer((req, res) => {
    handle(req, res, options, sessions, tuning).catch((err: unknown) => fail(res, err));
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address}:${port}`,
    close: () => close(server, sessions),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  options: RelayOptions,
  sessions: Map<string, LocalSession>,
  tuning: UploadTuning,
): Promise<void> {
  const url = req.url ?? '/';
  const [path = '/', query = ''] = url.split('?', 2) as [string, string?];
  const params = new URLSearchParams(query);
  const route = matchRoute(path);
  const method = req.method ?? 'GET';
  const { remote, progress } = options;

  if (route?.kind === 'uploads' && method === 'POST') {
    const repo = route.name;
    const digest = params.get('digest');
    if (params.has('mount')) {
      const answer = await forward(req, remote, url, repositoryScope(repo, true), await readSmall(req));
      if (answer.status !== 202) return reply(res, answer);
      await answer.body?.cancel();
      const upload = BlobUpload.adopt(remote, repo, answer.headers.get('Location') ?? '', tuning);
      return openLocal(res, sessions, upload, progress);
    }
    // The remote session is opened only for a blob larger than a single request carries; a small
    // one goes up at the end in one monolithic POST (docs/upload-extension.md).
    await remote.authorize(repositoryScope(repo, true));
    const upload = BlobUpload.deferred(remote, repo, tuning);
    if (digest === null) return openLocal(res, sessions, upload, progress);
    expectWhole(upload, req, digest);
    const session = track(sessions, upload, progress);
    await receive(req, sessions, session);
    return finish(res, sessions, session, digest);
  }

  if (route?.kind === 'upload') {
    const session = sessions.get(route.id);
    if (!session) {
      // Not one of ours (another relay run): let the remote answer for it.
      return reply(res, await forward(req, remote, url, repositoryScope(route.name, true)));
    }
    if (session.busy)
      return replyError(
        res,
        416,
        'BLOB_UPLOAD_INVALID',
        'another request is writing to this upload',
        rangeHeaders(session),
      );
    switch (method) {
      case 'GET':
        return replyEmpty(res, 204, rangeHeaders(session));
      case 'DELETE':
        sessions.delete(route.id);
        await session.upload.cancel();
        session.progress?.fail('cancelled by the client');
        return replyEmpty(res, 204, {});
      case 'PATCH':
      case 'PUT': {
        const start = contentRangeStart(req.headers['content-range']);
        if (start !== undefined && start !== session.upload.offset) {
          return replyError(
            res,
            416,
            'BLOB_UPLOAD_INVALID',
            `chunk starts at byte ${start} but the upload has ${session.upload.offset} bytes`,
            rangeHeaders(session),
          );
        }
        const digest = params.get('digest');
        // A PUT that carries the whole blob (containerd, buildx): its digest and size are known first.
        if (method === 'PUT' && digest) expectWhole(session.upload, req, digest);
        await receive(req, sessions, session);
        if (method === 'PATCH') return replyEmpty(res, 202, rangeHeaders(session));
        if (!digest) {
          return replyError(
            res,
            400,
            'DIGEST_INVALID',
            'finishing an upload needs ?digest=<digest of the whole blob>',
            {},
          );
        }
        return finish(res, sessions, session, digest);
      }
    }
  }

  const write = method !== 'GET' && method !== 'HEAD';
  const scope =
    route && 'name' in route
      ? repositoryScope(route.name, write)
      : route?.kind === 'catalog'
        ? 'registry:catalog:*'
        : undefined;
  return reply(res, await forward(req, remote, url, scope, write ? await readSmall(req) : undefined));
}

/**
 * A request whose body is the whole blob, with its digest and length announced: the upload may go to
 * the store in one PUT that the store checks (BlobUpload.expect).
 */
function expectWhole(upload: BlobUpload, req: IncomingMessage, digest: string): void {
  const length = Number(req.headers['content-length'] ?? NaN);
  if (upload.offset === 0 && Number.isSafeInteger(length)) upload.expect(digest, length);
}

function track(sessions: Map<string, LocalSession>, upload: BlobUpload, progress?: Progress): LocalSession {
  const bar = progress?.blob(`${upload.repo} ${upload.id.slice(0, 8)}`);
  const session: LocalSession = { upload, busy: false, ...(bar && { progress: bar }) };
  if (bar) upload.events = { onBytes: (n) => bar.bytes(n), onPart: () => bar.part() };
  sessions.set(upload.id, session);
  return session;
}

function openLocal(
  res: ServerResponse,
  sessions: Map<string, LocalSession>,
  upload: BlobUpload,
  progress?: Progress,
): void {
  const session = track(sessions, upload, progress);
  replyEmpty(res, 202, rangeHeaders(session));
}

/**
 * Streams the request body into the upload (the client waits while parts are sent: backpressure).
 * If the client goes away or a part cannot be sent, the upload is cancelled on the remote, which
 * drops every part: the client starts the blob again, as it does after any failed upload.
 */
async function receive(
  req: IncomingMessage,
  sessions: Map<string, LocalSession>,
  session: LocalSession,
): Promise<void> {
  session.busy = true;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) await session.upload.write(chunk);
  } catch (err) {
    sessions.delete(session.upload.id);
    session.progress?.fail(err instanceof Error ? err.message : String(err));
    await session.upload.cancel();
    throw err;
  } finally {
    session.busy = false;
  }
}

async function finish(
  res: ServerResponse,
  sessions: Map<string, LocalSession>,
  session: LocalSession,
  digest: string,
): Promise<void> {
  const { upload } = session;
  try {
    const result = await upload.finish(digest);
    session.progress?.done(result);
    res.writeHead(201, {
      Location: `/v2/${upload.repo}/blobs/${digest}`,
      'Docker-Content-Digest': digest,
      'Content-Length': '0',
    });
    res.end();
  } catch (err) {
    session.progress?.fail(err instanceof Error ? err.message : String(err));
    throw err;
  } finally {
    sessions.delete(upload.id);
  }
}

async function readSmall(req: IncomingMessage): Promise<Uint8Array | ReadableStream<Uint8Array> | undefined> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > MAX_BUFFERED_BODY) {
    return Readable.toWeb(req) as ReadableStream<Uint8Array>;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (size > MAX_BUFFERED_BODY) throw new Error('request body too large for the relay to pass on');
  }
  return size === 0 && req.headers['content-length'] === undefined ? undefined : Buffer.concat(chunks, size);
}

async function forward(
  req: IncomingMessage,
  remote: RemoteRegistry,
  url: string,
  scope: string | undefined,
  body?: Uint8Array | ReadableStream<Uint8Array>,
): Promise<Response> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || DROPPED_REQUEST.has(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  if (body instanceof Uint8Array) headers['content-length'] = String(body.byteLength);
  else if (req.headers['content-length']) headers['content-length'] = req.headers['content-length'];
  return remote.request({
    method: req.method ?? 'GET',
    path: url,
    headers,
    ...(body !== undefined && { body }),
    ...(scope && { scope }),
  });
}

/** Passes a remote answer on, with Locations on the remote pointed back at the relay. */
async function reply(res: ServerResponse, answer: Response): Promise<void> {
  const headers: Record<string, string> = {};
  answer.headers.forEach((value, name) => {
    if (!DROPPED_RESPONSE.has(name)) headers[name] = value;
  });
  const location = answer.headers.get('location');
  if (location) headers.location = localLocation(location, answer.url);
  res.writeHead(answer.status, headers);
  if (!answer.body) return void res.end();
  for await (const chunk of answer.body) {
    if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
  }
  res.end();
}

/** A Location on the remote registry becomes relative (on the relay); others (S3) stay as they are. */
function localLocation(location: string, requestUrl: string): string {
  if (location.startsWith('/')) return location;
  try {
    const target = new URL(location);
    const origin = new URL(requestUrl).origin;
    return target.origin === origin ? target.pathname + target.search : location;
  } catch {
    return location;
  }
}

function rangeHeaders(session: LocalSession): Record<string, string> {
  const { upload } = session;
  return {
    Location: `/v2/${upload.repo}/blobs/uploads/${upload.id}`,
    Range: `0-${Math.max(0, upload.offset - 1)}`,
    'Docker-Upload-UUID': upload.id,
  };
}

function contentRangeStart(header: string | undefined): number | undefined {
  const match = /^(?:bytes )?(\d+)-\d+$/.exec(header?.trim() ?? '');
  return match ? Number(match[1]) : undefined;
}

function replyEmpty(res: ServerResponse, status: number, headers: Record<string, string>): void {
  res.writeHead(status, {
    ...headers,
    'Content-Length': '0',
    'Docker-Distribution-Api-Version': 'registry/2.0',
  });
  res.end();
}

function replyError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string>,
): void {
  const body = JSON.stringify({ errors: [{ code, message }] });
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(body)),
    'Docker-Distribution-Api-Version': 'registry/2.0',
  });
  res.end(body);
}

/** A remote error is passed on as the remote said it; anything else is the relay's own 502. */
function fail(res: ServerResponse, err: unknown): void {
  if (res.headersSent) return void res.destroy();
  if (err instanceof RemoteError && err.body) {
    res.writeHead(err.status, {
      'Content-Type': 'application/json',
      'Content-Length': String(Buffer.byteLength(err.body)),
    });
    return void res.end(err.body);
  }
  if (err instanceof RemoteError) return replyError(res, err.status, err.code ?? 'UNKNOWN', err.message, {});
  const message = err instanceof Error ? err.message : String(err);
  replyError(res, 502, 'UNAVAILABLE', `the relay could not reach the remote registry: ${message}`, {});
}

async function close(server: Server, sessions: Map<string, LocalSession>): Promise<void> {
  await Promise.allSettled([...sessions.values()].map((s) => s.upload.cancel()));
  sessions.clear();
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
