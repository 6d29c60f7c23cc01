/**
 * S3 requests on the critical path of each client request type, under AWS-like S3 latency: Berth's
 * `berth serve`, Berth's Lambda bundle behind the local API Gateway (`berth serve --lambda`), and CNCF
 * Distribution 2.8 (Debian's `docker-registry`, with its in-memory blob descriptor cache), in one run
 * on one MinIO.
 *
 *   npm run build && npx tsx bench/critical-path.ts
 *
 * BENCH_CP_JSON=<file> also writes the figures as JSON (bench/run.ts reads them); BENCH_CP_REPEAT
 * (default 5) is how often each request type is measured; BENCH_CP_LATENCY=off counts without delays;
 * BENCH_CP_LAYERS (default 10) is the layer count of the image pushed (the quick bench uses 2).
 *
 * Each registry has its own latency proxy in front of MinIO (bench/s3-counting-proxy.ts): every S3
 * request is held 15 ms (GET, HEAD), 30 ms (PUT, POST, LIST) or 20 ms (DELETE), +-5 ms, before it is
 * forwarded, and its start and end are recorded. For one client request:
 *
 * - "sequential" is the longest chain of its S3 requests each started after the previous one was
 *   answered, counting only requests that started before the client had its answer: what the
 *   client waited for, in S3 round trips;
 * - "total" is every S3 request it caused, including any made after the answer (background work);
 * - "ms" is the client's wall time for the request (loopback, so mostly the S3 delays).
 *
 * The client is this script, one request at a time; figures are medians over the repetitions. Blob
 * GETs and HEADs are not followed to S3 (that request is the client's, the same for every registry).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startS3Server, type S3TestServer } from '../test/storage/s3-server.ts';
import {
  BERTH_LAMBDA,
  BERTH_SERVE,
  renderCriticalPath,
  type CriticalPathSummary,
  type StepFigures,
} from './lib/critical-path-table.ts';
import { runScript, sleep, Started } from './lib/proc.ts';
import { createBucket, distributionConfig, distributionEnv } from './lib/registries.ts';
import { AWS_LIKE, CountingProxy, criticalPath, type S3Request } from './s3-counting-proxy.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'cli', 'berth.mjs');
const BUNDLE = join(ROOT, 'dist', 'registry', 'index.mjs');
const DISTRIBUTION = process.env.BENCH_DISTRIBUTION ?? '/usr/bin/docker-registry';
const REPEAT = Number(process.env.BENCH_CP_REPEAT ?? 5);
const LATENCY = process.env.BENCH_CP_LATENCY === 'off' ? undefined : AWS_LIKE;
const LAYERS = Number(process.env.BENCH_CP_LAYERS ?? 10);
const BLOB = 1024 * 1024;
// About 40 s per repetition on a quiet machine (three registries, 25 client requests each, S3 delays).
const RUN_TIMEOUT_MS = 60_000 + REPEAT * 90_000;
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

interface Target {
  readonly name: string;
  readonly url: string;
  readonly proxy: CountingProxy;
  /** Per step: the S3 requests of each instance, the answer time and the wall time. */
  readonly samples: Map<string, { requests: S3Request[]; answeredAt: number; ms: number }[]>;
}

const started = new Started();
const cleanup = () => started.cleanup();

/** Starts a registry and waits until it answers. */
async function launch(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, url: string) {
  await started.waitReady(url, started.launch(command, args, env), name);
}

async function startBerth(s3: S3TestServer, lambda: boolean): Promise<Target> {
  const bucket = lambda ? 'cp-berth-lambda' : 'cp-berth';
  await createBucket(s3, bucket);
  const proxy = await CountingProxy.start(s3.endpoint, { latency: LATENCY });
  started.proxies.push(proxy);
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BERTH_')) env[k] = v;
  Object.assign(env, {
    BERTH_STORAGE: 's3',
    BERTH_S3_BUCKET: bucket,
    BERTH_S3_REGION: s3.region,
    BERTH_S3_ENDPOINT: proxy.endpoint,
    BERTH_S3_FORCE_PATH_STYLE: 'true',
    BERTH_LOG_LEVEL: 'warn',
  });
  const name = lambda ? BERTH_LAMBDA : BERTH_SERVE;
  const url = `http://127.0.0.1:${port}`;
  proxy.label = 'startup';
  await launch(
    name,
    process.execPath,
    [CLI, 'serve', '--port', String(port), ...(lambda ? ['--lambda'] : [])],
    env,
    url,
  );
  await proxy.idle();
  proxy.label = undefined;
  return { name, url, proxy, samples: new Map() };
}

async function startDistribution(s3: S3TestServer, dir: string): Promise<Target> {
  const bucket = 'cp-distribution';
  await createBucket(s3, bucket);
  const proxy = await CountingProxy.start(s3.endpoint, { latency: LATENCY });
  started.proxies.push(proxy);
  const port = await freePort();
  const file = join(dir, 'distribution.yml');
  await writeFile(file, distributionConfig({ region: s3.region, endpoint: proxy.endpoint, bucket }, port), {
    mode: 0o600,
  });
  const env = distributionEnv();
  const url = `http://127.0.0.1:${port}`;
  proxy.label = 'startup';
  await launch('Distribution', DISTRIBUTION, ['serve', file], env, url);
  await proxy.idle();
  proxy.label = undefined;
  return { name: 'Distribution + cache', url, proxy, samples: new Map() };
}

// ---------- the client ----------

interface Answer {
  res: Response;
  body: Buffer;
}

async function send(
  method: string,
  url: string,
  init: { headers?: Record<string, string>; body?: Uint8Array } = {},
): Promise<Answer> {
  const body = init.body && new Uint8Array(init.body);
  const res = await fetch(url, { method, headers: init.headers, body, redirect: 'manual' });
  return { res, body: Buffer.from(await res.arrayBuffer()) };
}

function expectStatus(status: number | number[], got: Answer, what: string): void {
  const ok = Array.isArray(status) ? status : [status];
  if (!ok.includes(got.res.status)) {
    throw new Error(
      `${what}: expected ${ok.join('/')}, got ${got.res.status} ${got.body.toString().slice(0, 300)}`,
    );
  }
}

function locationOf(base: string, got: Answer): string {
  const value = got.res.headers.get('location');
  if (!value) throw new Error('no Location header');
  return new URL(value, base).href;
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Runs one client request with its S3 requests recorded as one sample of `step`. */
async function step(
  t: Target,
  name: string,
  fn: () => Promise<Answer>,
  status: number | number[],
): Promise<Answer> {
  await t.proxy.idle();
  const from = t.proxy.requests.length;
  t.proxy.label = name;
  const t0 = performance.now();
  const got = await fn();
  const answeredAt = performance.now();
  expectStatus(status, got, `${t.name} ${name}`);
  // Whatever the registry still does after answering (background deletes) belongs to this request.
  await sleep(LATENCY ? 60 : 20);
  await t.proxy.idle();
  t.proxy.label = undefined;
  const requests = t.proxy.requests.slice(from).filter((r) => !r.presigned);
  const list = t.samples.get(name) ?? [];
  list.push({ requests, answeredAt, ms: answeredAt - t0 });
  t.samples.set(name, list);
  return got;
}

function blobOf(
  size: number,
  mediaType = 'application/vnd.oci.image.layer.v1.tar',
): {
  bytes: Buffer;
  digest: string;
  mediaType: string;
} {
  const bytes = randomBytes(size);
  return { bytes, digest: sha256(bytes), mediaType };
}

async function workload(t: Target, round: number): Promise<void> {
  const repo = `bench/cp${round}`;
  const v2 = `${t.url}/v2/${repo}`;
  const octet = { 'Content-Type': 'application/octet-stream' };

  // The image: LAYERS layers pushed docker's way (HEAD, POST, PATCH, PUT), and a config.
  const layers = Array.from({ length: LAYERS }, () => blobOf(BLOB));
  const config = blobOf(600, 'application/vnd.oci.image.config.v1+json');
  for (const blob of [config, ...layers]) {
    await step(t, 'HEAD blob (absent)', () => send('HEAD', `${v2}/blobs/${blob.digest}`), 404);
    const post = await step(t, 'POST upload', () => send('POST', `${v2}/blobs/uploads/`), 202);
    const patch = await step(
      t,
      'PATCH (whole blob)',
      () => send('PATCH', locationOf(t.url, post), { headers: octet, body: blob.bytes }),
      202,
    );
    const url = new URL(locationOf(t.url, patch));
    url.searchParams.set('digest', blob.digest);
    await step(t, 'PUT ?digest (after PATCH)', () => send('PUT', url.href), 201);
  }
  const descriptor = (b: ReturnType<typeof blobOf>) => ({
    mediaType: b.mediaType,
    digest: b.digest,
    size: b.bytes.length,
  });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: descriptor(config),
      layers: layers.map(descriptor),
    }),
  );
  const putManifest = (name: string) =>
    step(
      t,
      name,
      () => send('PUT', `${v2}/manifests/v1`, { headers: { 'Content-Type': MANIFEST_TYPE }, body: manifest }),
      201,
    );
  await putManifest(`PUT manifest (${LAYERS} layers, new)`);
  await putManifest(`PUT manifest (${LAYERS} layers, again)`);

  // A monolithic POST ?digest, and POST then PUT ?digest with the bytes.
  const mono = blobOf(BLOB);
  await step(
    t,
    'POST ?digest (monolithic)',
    () => send('POST', `${v2}/blobs/uploads/?digest=${mono.digest}`, { headers: octet, body: mono.bytes }),
    // Distribution 2.8 ignores ?digest on POST and opens a session (202); the bytes are then pushed again.
    [201, 202],
  );
  if (!(await send('HEAD', `${v2}/blobs/${mono.digest}`)).res.ok) await pushBlob(t, v2, mono);
  const twoStep = blobOf(BLOB);
  const started2 = await send('POST', `${v2}/blobs/uploads/`);
  expectStatus(202, started2, 'POST');
  const putUrl = new URL(locationOf(t.url, started2));
  putUrl.searchParams.set('digest', twoStep.digest);
  await step(
    t,
    'PUT ?digest with the bytes',
    () => send('PUT', putUrl.href, { headers: octet, body: twoStep.bytes }),
    201,
  );

  // A chunked upload: two PATCHes with Content-Range, then PUT ?digest.
  const chunked = blobOf(BLOB);
  const half = BLOB / 2;
  const post = await send('POST', `${v2}/blobs/uploads/`);
  expectStatus(202, post, 'POST');
  const first = await step(
    t,
    'PATCH (first chunk)',
    () =>
      send('PATCH', locationOf(t.url, post), {
        headers: { ...octet, 'Content-Range': `0-${half - 1}` },
        body: chunked.bytes.subarray(0, half),
      }),
    202,
  );
  const second = await step(
    t,
    'PATCH (next chunk)',
    () =>
      send('PATCH', locationOf(t.url, first), {
        headers: { ...octet, 'Content-Range': `${half}-${BLOB - 1}` },
        body: chunked.bytes.subarray(half),
      }),
    202,
  );
  const done = new URL(locationOf(t.url, second));
  done.searchParams.set('digest', chunked.digest);
  await step(t, 'PUT ?digest (after chunks)', () => send('PUT', done.href), 201);

  // Berth's direct-upload extension (what `berth relay` and `berth push` send): its completions.
  if (t.name.startsWith('Berth')) await directUploads(t, v2);

  // Reads.
  const accept = { Accept: MANIFEST_TYPE };
  await step(t, 'HEAD blob (present)', () => send('HEAD', `${v2}/blobs/${layers[0]!.digest}`), [200, 307]);
  await step(
    t,
    'GET blob (to the redirect)',
    () => send('GET', `${v2}/blobs/${layers[1]!.digest}`),
    [200, 307],
  );
  await step(t, 'GET manifest by tag', () => send('GET', `${v2}/manifests/v1`, { headers: accept }), 200);
  await step(t, 'HEAD manifest by tag', () => send('HEAD', `${v2}/manifests/v1`, { headers: accept }), 200);
  await step(
    t,
    'GET manifest by digest',
    () => send('GET', `${v2}/manifests/${sha256(manifest)}`, { headers: accept }),
    200,
  );
  await step(t, 'GET tags/list', () => send('GET', `${v2}/tags/list`), 200);
  await step(t, 'GET _catalog?n=100', () => send('GET', `${t.url}/v2/_catalog?n=100`), 200);
  // A mount from the previous round's repository (201 when the blob is there).
  if (round > 0) {
    const from = `bench/cp${round - 1}`;
    await step(
      t,
      'POST ?mount&from',
      () => send('POST', `${v2}/blobs/uploads/?mount=${mono.digest}&from=${encodeURIComponent(from)}`),
      [201, 202],
    );
  }
}

/**
 * The `_berth` extension's completions (docs/upload-extension.md): of a blob sent in one part to a
 * presigned UploadPart URL (then listed, completed and read back), and of one sent in one checked PUT
 * (then verified by the store's SHA-256). The bytes go to the store outside the measured request.
 */
async function directUploads(t: Target, v2: string): Promise<void> {
  const json = { 'Content-Type': 'application/json' };
  const open = async () => {
    const post = await send('POST', `${v2}/blobs/uploads/`);
    expectStatus(202, post, 'POST');
    const ref = new URL(locationOf(t.url, post)).pathname.split('/').pop()!;
    return `${v2}/_berth/v1/uploads/${ref}`;
  };
  const complete = (base: string, blob: ReturnType<typeof blobOf>) =>
    send('POST', `${base}/complete`, {
      headers: json,
      body: Buffer.from(JSON.stringify({ digest: blob.digest, size: blob.bytes.length })),
    });

  const parted = blobOf(BLOB);
  const partsBase = await open();
  const urls = await send('POST', `${partsBase}/parts`, {
    headers: json,
    body: Buffer.from('{"parts":[1]}'),
  });
  expectStatus(200, urls, 'parts');
  const [part] = (JSON.parse(urls.body.toString()) as { parts: { url: string }[] }).parts;
  expectStatus(200, await send('PUT', part!.url, { body: parted.bytes }), 'part PUT');
  await step(t, 'extension: complete (parts, read back)', () => complete(partsBase, parted), 201);

  const checked = blobOf(BLOB);
  const objectBase = await open();
  const object = await send('POST', `${objectBase}/object`, {
    headers: json,
    body: Buffer.from(JSON.stringify({ digest: checked.digest, size: checked.bytes.length })),
  });
  expectStatus(200, object, 'object');
  const put = JSON.parse(object.body.toString()) as { url: string; headers: Record<string, string> };
  expectStatus(200, await send('PUT', put.url, { headers: put.headers, body: checked.bytes }), 'checked PUT');
  await step(t, 'extension: complete (checked PUT)', () => complete(objectBase, checked), 201);
}

/** A blob pushed outside the measured steps (POST, PUT ?digest with the bytes). */
async function pushBlob(t: Target, v2: string, blob: ReturnType<typeof blobOf>): Promise<void> {
  const post = await send('POST', `${v2}/blobs/uploads/`);
  expectStatus(202, post, 'POST');
  const url = new URL(locationOf(t.url, post));
  url.searchParams.set('digest', blob.digest);
  expectStatus(201, await send('PUT', url.href, { body: blob.bytes }), 'PUT');
}

// ---------- figures ----------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
}

function figures(t: Target): Record<string, StepFigures> {
  const out: Record<string, StepFigures> = {};
  for (const [name, samples] of t.samples) {
    const seq = samples.map((s) => criticalPath(s.requests.filter((r) => r.start < s.answeredAt)));
    const last = samples[samples.length - 1]!;
    out[name] = {
      sequential: median(seq),
      sequentialMax: Math.max(...seq),
      total: median(samples.map((s) => s.requests.length)),
      after: median(samples.map((s) => s.requests.filter((r) => r.start >= s.answeredAt).length)),
      ms: median(samples.map((s) => s.ms)),
      ops: last.requests.map(
        (r) => `${r.op} ${shortKey(r.key)}${r.start >= last.answeredAt ? ' (after the answer)' : ''}`,
      ),
    };
  }
  return out;
}

function shortKey(key: string): string {
  return key
    .replace(/[0-9a-f]{64}/g, (hex) => `${hex.slice(0, 8)}…`)
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>');
}

async function main(): Promise<void> {
  if (!existsSync(CLI) || !existsSync(BUNDLE))
    throw new Error('run `npm run build` first (dist/cli and dist/registry)');
  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-cp-'));
  started.dirs.push(dir);
  const s3 = await startS3Server();
  started.s3 = s3;
  const targets = [await startBerth(s3, false), await startBerth(s3, true), await startDistribution(s3, dir)];
  for (let round = 0; round < REPEAT; round++) for (const t of targets) await workload(t, round);
  const summary: CriticalPathSummary = {
    latency: LATENCY,
    repeat: REPEAT,
    targets: targets.map((t) => ({ name: t.name, steps: figures(t) })),
  };
  process.stdout.write(`${renderCriticalPath(summary)}\n\n`);
  if (process.env.BENCH_CP_TRACE) {
    for (const t of summary.targets) {
      process.stdout.write(`${t.name}:\n`);
      for (const [name, f] of Object.entries(t.steps))
        process.stdout.write(`  ${name}:\n    ${f.ops.join('\n    ')}\n`);
    }
  }
  if (process.env.BENCH_CP_JSON) await writeFile(process.env.BENCH_CP_JSON, JSON.stringify(summary));
}

await runScript(main, cleanup, RUN_TIMEOUT_MS);
