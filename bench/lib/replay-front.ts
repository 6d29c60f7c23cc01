import { createServer, request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The bound on a pull: a front that has recorded a registry's answers to a pull and then gives the
 * same answers from memory, at once, with no storage request of its own. Blob GETs are answered with
 * the registry's recorded redirect, so the client still fetches the bytes from the same storage
 * (through the same latency proxy) as from any registry that redirects. A pull through it in replay
 * is what a registry that spent no time at all would give: no registry that redirects to that
 * storage can pull faster, and its ratio to Distribution's pull is the highest ratio any such
 * registry could reach (BENCHMARKS.md, "Misses of issue #21").
 *
 * Record: requests go to the registry and GET/HEAD answers are kept, keyed by method, URL and
 * Accept. Replay: a kept answer is given again (see the lookups below); anything else still
 * goes to the registry and is listed in `misses`, so that a replay that was not one shows.
 */
export interface ReplayFront {
  /** host:port the client uses. */
  readonly host: string;
  /** From now on, answers come from memory. */
  replay(): void;
  /** Requests in replay that had no recorded answer (forwarded to the registry): method, URL, Accept. */
  readonly misses: readonly string[];
  close(): Promise<void>;
}

interface Answer {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer;
}

/** Headers of one hop that must not be replayed (the front sends its own). */
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date']);

export async function startReplayFront(upstream: string): Promise<ReplayFront> {
  const [upHost, upPort] = splitHost(upstream);
  const answers = new Map<string, Answer>();
  const byUrl = new Map<string, Answer>();
  const byDigest = new Map<string, Answer>();
  let replaying = false;
  const misses: string[] = [];
  const server = createServer((req, res) => {
    const key = `${req.method} ${req.url} ${req.headers.accept ?? ''}`;
    // Looked up by method, URL and Accept; then by method and URL (docker orders its Accept list
    // differently on every pull); a HEAD also from a GET of the URL (docker GETs a manifest on its
    // first pull and HEADs it on the next); a manifest by digest from the GET by tag that answered
    // with that digest (docker's second pull HEADs the tag, then GETs the digest).
    const url = req.url ?? '';
    const kept = replaying
      ? (answers.get(key) ??
        byUrl.get(`${req.method} ${url}`) ??
        (req.method === 'HEAD' ? byUrl.get(`GET ${url}`) : undefined) ??
        byDigest.get(/\/manifests\/(sha256:[0-9a-f]{64})$/.exec(url)?.[1] ?? ''))
      : undefined;
    if (kept) {
      res.writeHead(kept.status, kept.headers);
      res.end(req.method === 'HEAD' ? undefined : kept.body);
      return;
    }
    if (replaying) misses.push(key);
    const out = request(
      { host: upHost, port: upPort, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('error', () => res.destroy());
        answer.on('end', () => {
          const body = Buffer.concat(chunks);
          const headers = replayable(answer.headers);
          if (req.method === 'GET' || req.method === 'HEAD') {
            const kept = { status: answer.statusCode!, headers, body };
            answers.set(key, kept);
            byUrl.set(`${req.method} ${req.url ?? ''}`, kept);
            const digest = answer.headers['docker-content-digest'];
            if (
              req.method === 'GET' &&
              answer.statusCode === 200 &&
              /\/manifests\//.test(req.url ?? '') &&
              typeof digest === 'string'
            )
              byDigest.set(digest, kept);
          }
          res.writeHead(answer.statusCode!, headers);
          res.end(req.method === 'HEAD' ? undefined : body);
        });
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    replay: () => {
      replaying = true;
    },
    get misses() {
      return misses;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function replayable(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP.has(name)) out[name] = value;
  }
  return out;
}

function splitHost(hostPort: string): [string, number] {
  const i = hostPort.lastIndexOf(':');
  return [hostPort.slice(0, i), Number(hostPort.slice(i + 1))];
}
