/**
 * A registry that stores nothing: it answers a push's requests (HEAD 404, POST 202, PATCH 202 once
 * the body is read, PUT 201) at once and throws the bytes away. What a client takes to push an image
 * to it is the floor no registry can beat on this machine: the client's own reading, hashing and
 * sending (BENCHMARKS.md, "2026-12-08: a small layer's bytes written as they arrive").
 *
 *   npx tsx bench/null-registry.ts 5999 &
 *   time skopeo copy -q --preserve-digests --dest-tls-verify=false oci:<layout>:<tag> docker://127.0.0.1:5999/null/x:1
 *
 * With BENCH_NULL_LOG=1 it prints one JSON line per request (method, path, durationMs), as
 * `berth serve --log-level info` does, to compare request times.
 */
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 5999);
const logging = process.env.BENCH_NULL_LOG === '1';
let uploads = 0;

const server = createServer((req, res) => {
  const started = performance.now();
  const url = new URL(req.url ?? '/', 'http://null');
  const path = url.pathname;
  if (logging) {
    res.on('finish', () => {
      const durationMs = performance.now() - started;
      process.stdout.write(`${JSON.stringify({ msg: 'request', method: req.method, path, durationMs })}\n`);
    });
  }
  let size = 0;
  req.on('data', (chunk: Buffer) => (size += chunk.length));
  req.on('end', () => {
    const reply = (status: number, headers: Record<string, string> = {}) => {
      res.writeHead(status, {
        'content-length': '0',
        'docker-distribution-api-version': 'registry/2.0',
        ...headers,
      });
      res.end();
    };
    if (path === '/v2/') return reply(200);
    if (req.method === 'POST' && path.endsWith('/blobs/uploads/')) {
      const id = String(++uploads);
      return reply(202, { location: `${path}${id}`, range: '0-0', 'docker-upload-uuid': id });
    }
    if (req.method === 'PATCH') return reply(202, { location: path, range: `0-${Math.max(size - 1, 0)}` });
    if (req.method === 'PUT' && path.includes('/blobs/uploads/')) {
      const digest = url.searchParams.get('digest') ?? '';
      return reply(201, { location: `/v2/null/blobs/${digest}`, 'docker-content-digest': digest });
    }
    if (req.method === 'PUT' && path.includes('/manifests/')) return reply(201, { location: path });
    if (req.method === 'HEAD' || req.method === 'GET') return reply(404);
    reply(405);
  });
});
server.listen(port, '127.0.0.1', () => process.stderr.write(`null registry on 127.0.0.1:${port}\n`));
