// Reads the registry's own request log to count what clients did. Understands:
//  - Berth: one JSON object per line with `method`, `path` (query optional, or a `query` field) and
//    `status` (top level, or under `req`/`request`/`res`/`response`);
//  - Distribution (the reference registry) with `log.formatter: json`: "http.request.method",
//    "http.request.uri", "http.response.status";
//  - Combined/common access-log lines: `"GET /v2/ HTTP/1.1" 200`.
// Lines that are none of these are ignored.
import { existsSync, readFileSync } from 'node:fs';
import { sleep } from './proc.ts';

export interface LoggedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  /** The query string without '?', '' if none or not logged. */
  query: string;
  status: number;
  userAgent?: string;
}

type Json = Record<string, unknown>;

function pick(o: Json, ...keys: string[]): unknown {
  for (const k of keys) {
    if (o[k] !== undefined) return o[k];
  }
  for (const nest of ['req', 'request', 'res', 'response', 'http']) {
    const n = o[nest];
    if (n && typeof n === 'object') {
      for (const k of keys) {
        const v = (n as Json)[k];
        if (v !== undefined) return v;
      }
    }
  }
  return undefined;
}

function splitUri(uri: string): { path: string; query: string } {
  const i = uri.indexOf('?');
  return i < 0 ? { path: uri, query: '' } : { path: uri.slice(0, i), query: uri.slice(i + 1) };
}

export function parseLogLine(line: string): LoggedRequest | undefined {
  const t = line.trim();
  if (t.startsWith('{')) {
    let o: Json;
    try {
      o = JSON.parse(t) as Json;
    } catch {
      return undefined;
    }
    if (typeof o['http.request.method'] === 'string' && o['http.response.status'] !== undefined) {
      const { path, query } = splitUri(String(o['http.request.uri'] ?? ''));
      return {
        method: o['http.request.method'] as string,
        path,
        query,
        status: Number(o['http.response.status']),
        userAgent: o['http.request.useragent'] as string | undefined,
      };
    }
    const method = pick(o, 'method');
    const rawPath = pick(o, 'path', 'url', 'uri');
    const status = pick(o, 'status', 'statusCode');
    if (typeof method !== 'string' || typeof rawPath !== 'string' || status === undefined) return undefined;
    const { path, query } = splitUri(rawPath);
    const q = pick(o, 'query', 'search');
    const ua = pick(o, 'userAgent', 'user_agent', 'ua', 'user-agent');
    return {
      method,
      path,
      query: query || (typeof q === 'string' ? q.replace(/^\?/, '') : ''),
      status: Number(status),
      userAgent: typeof ua === 'string' ? ua : undefined,
    };
  }
  const m = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3})/.exec(t);
  if (m) {
    const { path, query } = splitUri(m[2]!);
    return { method: m[1]!, path, query, status: Number(m[3]) };
  }
  return undefined;
}

export class RequestLog {
  constructor(readonly file: string) {}

  all(): LoggedRequest[] {
    if (!existsSync(this.file)) return [];
    return this.parse(readFileSync(this.file, 'utf8').split('\n')).filter((r) => r.path.startsWith('/v2'));
  }

  protected parse(lines: string[]): LoggedRequest[] {
    return lines.map(parseLogLine).filter((r): r is LoggedRequest => r !== undefined);
  }

  /** A position in the log; pass it to since(). */
  mark(): number {
    return this.all().length;
  }

  /** Requests logged after the mark, once the log has stopped growing (servers log after responding). */
  async since(mark: number): Promise<LoggedRequest[]> {
    let n = -1;
    for (let i = 0; i < 20; i++) {
      const now = this.all().length;
      if (now === n) break;
      n = now;
      await sleep(150);
    }
    return this.all().slice(mark);
  }
}

/**
 * The log of `berth serve --lambda`, where each request is logged twice: by the function
 * (`msg: "request"`, with the query) and by the gateway (`msg: "gateway"`, with the status the
 * client saw, also for requests the gateway refused before the function ran). One entry per
 * gateway line, with the query of the function's line for the same API Gateway request id.
 */
export class GatewayRequestLog extends RequestLog {
  protected override parse(lines: string[]): LoggedRequest[] {
    const queries = new Map<string, string>();
    const out: LoggedRequest[] = [];
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      let o: Json;
      try {
        o = JSON.parse(line) as Json;
      } catch {
        continue;
      }
      const id = typeof o.apiRequestId === 'string' ? o.apiRequestId : undefined;
      if (o.msg === 'request' && id) queries.set(id, typeof o.query === 'string' ? o.query : '');
      if (o.msg !== 'gateway') continue;
      const r = parseLogLine(line);
      if (!r) continue;
      if (id && queries.has(id)) {
        r.query = queries.get(id)!;
        queries.delete(id);
      }
      out.push(r);
    }
    return out;
  }
}

// ---------------------------------------------------------------- questions asked of a request list

const UPLOADS = /^\/v2\/(.+)\/blobs\/uploads\/?([^/]*)$/;

export function inRepo(reqs: LoggedRequest[], repo: string): LoggedRequest[] {
  return reqs.filter((r) => r.path.startsWith(`/v2/${repo}/`));
}

export interface UploadSummary {
  /** POST /blobs/uploads/ answered 202 (a session opened), mount attempts included. */
  sessionsOpened: number;
  /** PATCH requests on upload sessions. */
  patches: number;
  /** PUT requests that completed an upload session (one per blob actually uploaded). */
  completions: number;
  /** POST with mount= answered 201 (or any POST /blobs/uploads/ answered 201 when the query is not logged). */
  mountsDone: number;
  /** POST with mount= answered 202 (the registry declined; the client must upload). */
  mountsDeclined: number;
  /** POST with mount= whatever the answer (0 when the log has no query strings). */
  mountAttempts: number;
  /** DELETE of upload sessions (podman cancels a declined mount this way). */
  sessionDeletes: number;
  /** HEAD /blobs/<digest> requests. */
  blobHeads: number;
}

export function summarizeUploads(reqs: LoggedRequest[]): UploadSummary {
  const s: UploadSummary = {
    sessionsOpened: 0,
    patches: 0,
    completions: 0,
    mountsDone: 0,
    mountsDeclined: 0,
    mountAttempts: 0,
    sessionDeletes: 0,
    blobHeads: 0,
  };
  for (const r of reqs) {
    const m = UPLOADS.exec(r.path);
    if (m) {
      const isMount = /(^|&)mount=/.test(r.query);
      if (r.method === 'POST') {
        if (isMount) s.mountAttempts++;
        if (r.status === 201) {
          // A 201 to POST is a mount, or a single-request upload (POST ?digest=, which no client used).
          if (!isMount && /(^|&)digest=/.test(r.query)) s.completions++;
          else s.mountsDone++;
        } else if (r.status === 202) {
          s.sessionsOpened++;
          if (isMount) s.mountsDeclined++;
        }
      } else if (r.method === 'PATCH') s.patches++;
      else if (r.method === 'PUT' && r.status >= 200 && r.status < 300) s.completions++;
      else if (r.method === 'DELETE') s.sessionDeletes++;
    } else if (r.method === 'HEAD' && /\/blobs\/[a-z0-9]+:[a-f0-9]+$/.test(r.path)) s.blobHeads++;
  }
  return s;
}

export function serverErrors(reqs: LoggedRequest[]): LoggedRequest[] {
  return reqs.filter((r) => r.status >= 500);
}

export function formatRequests(reqs: LoggedRequest[], max = 60): string {
  const lines = reqs.map(
    (r) => `${r.method} ${r.path}${r.query ? '?' + r.query.slice(0, 80) : ''} -> ${r.status}`,
  );
  return (lines.length > max ? [...lines.slice(0, max), `... ${lines.length - max} more`] : lines).join('\n');
}
