/**
 * S3 requests per registry operation: Berth next to CNCF Distribution's S3 driver, in one run on one
 * MinIO, doing the same work through the same client.
 *
 *   npx tsx bench/s3-requests.ts            # BENCH_LAYERS=10, BENCH_LAYER_SIZE=1048576 by default
 *
 * BENCH_S3_JSON=<file> also writes the counts as JSON there (bench/run.ts, `npm run bench`, reads them).
 *
 * Starts a private MinIO (test/storage/s3-server.ts), one counting proxy per registry in front of it
 * (bench/s3-counting-proxy.ts), Berth (`bin/berth.ts serve --storage s3`) and Distribution
 * (`docker-registry`, Debian's 2.8) twice: without a blob descriptor cache and with the in-memory
 * one that its shipped config.yml turns on. Each registry's S3 endpoint is its proxy, so presigned
 * URLs point at the proxy too and the client's redirected GETs are counted (as "client -> S3").
 *
 * The client is this script: plain OCI requests, one at a time, docker/crane style. Each S3 request
 * is attributed to the client request in flight (plus a short settle time after its answer).
 * Prints markdown tables; everything started is stopped and temp dirs removed, also on failure.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startS3Server, MINIO_PATH, type S3TestServer } from '../test/storage/s3-server.ts';
import { runScript, sleep, Started } from './lib/proc.ts';
import { createBucket, distributionConfig, distributionEnv } from './lib/registries.ts';
import { table } from './lib/markdown.ts';
import { CountingProxy, type S3Request } from './s3-counting-proxy.ts';

const LAYERS = Number(process.env.BENCH_LAYERS ?? 10);
const LAYER_SIZE = Number(process.env.BENCH_LAYER_SIZE ?? 1024 * 1024);
const DISTRIBUTION = process.env.BENCH_DISTRIBUTION ?? '/usr/bin/docker-registry';
const RUN_TIMEOUT_MS = 110_000;
const START_TIMEOUT_MS = 30_000;
/** After each answer, S3 requests still arriving within this time count for that client request. */
const SETTLE_MS = 30;
const REPO = 'bench/app';
const TAG = 'v1';
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Target {
  readonly name: string;
  readonly url: string;
  readonly proxy: CountingProxy;
  readonly child: ChildProcess;
  /** How many client requests each step label was used for. */
  readonly calls: Map<string, number>;
}

interface Blob {
  readonly digest: string;
  readonly bytes: Buffer;
  readonly mediaType: string;
}

// ---------- processes ----------

const started = new Started();
const cleanup = () => started.cleanup();

async function startBerth(s3: S3TestServer): Promise<Target> {
  const proxy = await CountingProxy.start(s3.endpoint);
  started.proxies.push(proxy);
  const port = await freePort();
  proxy.label = 'startup';
  const proc = started.launch(
    join(ROOT, 'node_modules', '.bin', 'tsx'),
    ['bin/berth.ts', 'serve', '--port', String(port), '--storage', 's3'],
    {
      ...process.env,
      BERTH_S3_BUCKET: s3.bucket,
      BERTH_S3_REGION: s3.region,
      BERTH_S3_ENDPOINT: proxy.endpoint,
      BERTH_S3_FORCE_PATH_STYLE: 'true',
      BERTH_LOG_LEVEL: 'warn',
    },
  );
  const url = `http://127.0.0.1:${port}`;
  await started.waitReady(url, proc, 'Berth', START_TIMEOUT_MS);
  await sleep(SETTLE_MS);
  proxy.label = undefined;
  return { name: 'Berth', url, proxy, child: proc.child, calls: new Map() };
}

async function startDistribution(
  s3: S3TestServer,
  dir: string,
  bucket: string,
  cache: boolean,
): Promise<Target> {
  await createBucket(s3, bucket);
  const proxy = await CountingProxy.start(s3.endpoint);
  started.proxies.push(proxy);
  const port = await freePort();
  const file = join(dir, `${bucket}.yml`);
  await writeFile(
    file,
    distributionConfig({ region: s3.region, endpoint: proxy.endpoint, bucket }, port, cache),
    { mode: 0o600 },
  );
  const env = distributionEnv();
  proxy.label = 'startup';
  const proc = started.launch(DISTRIBUTION, ['serve', file], env);
  const url = `http://127.0.0.1:${port}`;
  const name = cache ? 'Distribution + cache' : 'Distribution';
  await started.waitReady(url, proc, name, START_TIMEOUT_MS);
  await sleep(SETTLE_MS);
  proxy.label = undefined;
  return { name, url, proxy, child: proc.child, calls: new Map() };
}

// ---------- the client ----------

/** Runs one client request with every S3 request it causes tagged `phase|step|n`. */
async function step<T>(t: Target, phase: string, name: string, fn: () => Promise<T>): Promise<T> {
  const label = `${phase}|${name}`;
  const n = (t.calls.get(label) ?? 0) + 1;
  t.calls.set(label, n);
  t.proxy.label = `${label}|${n}`;
  try {
    return await fn();
  } finally {
    await sleep(SETTLE_MS);
    t.proxy.label = undefined;
  }
}

async function send(
  method: string,
  url: string,
  init: { headers?: Record<string, string>; body?: Uint8Array } = {},
): Promise<{ res: Response; body: Buffer }> {
  const body = init.body && new Uint8Array(init.body); // a copy on an ArrayBuffer, as BodyInit wants
  const res = await fetch(url, { method, headers: init.headers, body, redirect: 'manual' });
  return { res, body: Buffer.from(await res.arrayBuffer()) };
}

/** A request whose 3xx is followed by hand, as docker and crane do (also for HEAD). */
async function sendFollowing(method: string, url: string, headers: Record<string, string> = {}) {
  const first = await send(method, url, { headers });
  const location = first.res.headers.get('location');
  if (first.res.status < 300 || first.res.status >= 400 || !location) return first;
  return send(method, new URL(location, url).href);
}

function expect(status: number, got: { res: Response; body: Buffer }, what: string): void {
  if (got.res.status !== status) {
    throw new Error(
      `${what}: expected ${status}, got ${got.res.status} ${got.body.toString().slice(0, 300)}`,
    );
  }
}

function location(base: string, got: { res: Response }): string {
  const value = got.res.headers.get('location');
  if (!value) throw new Error('no Location header');
  return new URL(value, base).href;
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function makeImage() {
  const layers: Blob[] = Array.from({ length: LAYERS }, () => {
    const bytes = randomBytes(LAYER_SIZE);
    return { digest: sha256(bytes), bytes, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
  });
  const configBytes = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    }),
  );
  const config: Blob = {
    digest: sha256(configBytes),
    bytes: configBytes,
    mediaType: 'application/vnd.oci.image.config.v1+json',
  };
  const descriptor = (b: Blob) => ({ mediaType: b.mediaType, digest: b.digest, size: b.bytes.length });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: descriptor(config),
      layers: layers.map(descriptor),
    }),
  );
  return { blobs: [config, ...layers], manifest, manifestDigest: sha256(manifest) };
}

type Image = ReturnType<typeof makeImage>;

async function workload(t: Target, image: Image): Promise<void> {
  const v2 = `${t.url}/v2/${REPO}`;
  const putManifest = async (phase: string) =>
    step(t, phase, 'PUT manifest by tag', async () => {
      const got = await send('PUT', `${v2}/manifests/${TAG}`, {
        headers: { 'Content-Type': MANIFEST_TYPE },
        body: image.manifest,
      });
      expect(201, got, `${t.name} PUT manifest`);
    });

  // Push, crane style: HEAD (absent), then POST, PATCH with the whole blob, PUT ?digest.
  for (const blob of image.blobs) {
    await step(t, 'push', 'HEAD blob (absent)', async () =>
      expect(404, await send('HEAD', `${v2}/blobs/${blob.digest}`), `${t.name} HEAD absent blob`),
    );
    const post = await step(t, 'push', 'POST upload', async () => {
      const got = await send('POST', `${v2}/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
      expect(202, got, `${t.name} POST upload`);
      return got;
    });
    const patch = await step(t, 'push', 'PATCH whole blob', async () => {
      const got = await send('PATCH', location(t.url, post), {
        headers: { 'Content-Type': 'application/octet-stream' },
        body: blob.bytes,
      });
      expect(202, got, `${t.name} PATCH`);
      return got;
    });
    await step(t, 'push', 'PUT ?digest', async () => {
      const url = new URL(location(t.url, patch));
      url.searchParams.set('digest', blob.digest);
      const got = await send('PUT', url.href, { headers: { 'Content-Length': '0' } });
      expect(201, got, `${t.name} PUT ?digest`);
    });
  }
  await putManifest('push');

  // Pull by tag, docker style: GET the manifest by tag, then every blob, following the redirects.
  await step(t, 'pull', 'GET manifest by tag', async () => {
    const got = await send('GET', `${v2}/manifests/${TAG}`, { headers: { Accept: MANIFEST_TYPE } });
    expect(200, got, `${t.name} GET manifest`);
    if (sha256(got.body) !== image.manifestDigest) throw new Error(`${t.name}: wrong manifest`);
  });
  for (const blob of image.blobs) {
    await step(t, 'pull', 'GET blob', async () => {
      const got = await sendFollowing('GET', `${v2}/blobs/${blob.digest}`);
      expect(200, got, `${t.name} GET blob`);
      if (sha256(got.body) !== blob.digest) throw new Error(`${t.name}: wrong blob bytes`);
    });
  }

  const layer = image.blobs[1] ?? image.blobs[0]!;
  await step(t, 'head-blob', 'HEAD blob', async () =>
    expect(200, await sendFollowing('HEAD', `${v2}/blobs/${layer.digest}`), `${t.name} HEAD blob`),
  );

  // Re-push of the same image: every blob exists, the manifest is put again.
  for (const blob of image.blobs) {
    await step(t, 're-push', 'HEAD blob (present)', async () =>
      expect(200, await sendFollowing('HEAD', `${v2}/blobs/${blob.digest}`), `${t.name} HEAD blob`),
    );
  }
  await putManifest('re-push');

  // Single requests outside the four operations, for reference.
  await step(t, 'other', 'HEAD manifest by tag', async () => {
    const got = await send('HEAD', `${v2}/manifests/${TAG}`, { headers: { Accept: MANIFEST_TYPE } });
    expect(200, got, `${t.name} HEAD manifest`);
  });
  await step(t, 'other', 'GET manifest by digest', async () => {
    const got = await send('GET', `${v2}/manifests/${image.manifestDigest}`, {
      headers: { Accept: MANIFEST_TYPE },
    });
    expect(200, got, `${t.name} GET manifest by digest`);
  });
}

// ---------- report ----------

const PHASES: [string, string][] = [
  ['push', `Push of a ${LAYERS}-layer image (${LAYERS + 1} blobs with the config, then the manifest by tag)`],
  ['pull', `Pull by tag (GET manifest by tag, then ${LAYERS + 1} blob GETs following redirects)`],
  ['head-blob', 'HEAD of one blob (redirect followed)'],
  ['re-push', `Re-push of the same image (${LAYERS + 1} HEADs of present blobs, then the manifest by tag)`],
];

/** What S3 bills at the PUT/COPY/POST/LIST rate (GET and HEAD are ~12x cheaper, DELETEs are free). */
const DEAR =
  /^(PutObject|CopyObject|UploadPart|UploadPartCopy|CreateMultipartUpload|CompleteMultipartUpload|List)/;

const phaseOf = (r: S3Request) => r.label?.split('|')[0];
const stepOf = (r: S3Request) => r.label?.split('|').slice(0, 2).join('|');
const opName = (r: S3Request) => (r.presigned ? `client -> S3: ${r.op}` : r.op);

function count(requests: S3Request[], pred: (r: S3Request) => boolean): number {
  return requests.filter(pred).length;
}

function phaseTable(targets: Target[], phase: string): string {
  const inPhase = targets.map((t) => t.proxy.requests.filter((r) => phaseOf(r) === phase));
  const ops = [...new Set(inPhase.flat().map(opName))].sort(
    (a, b) => Number(a.startsWith('client')) - Number(b.startsWith('client')) || a.localeCompare(b),
  );
  const rows = ops
    .filter((op) => !op.startsWith('client'))
    .map((op) => [op, ...inPhase.map((rs) => String(count(rs, (r) => opName(r) === op)))]);
  rows.push([
    '**S3 requests by the registry**',
    ...inPhase.map((rs) => `**${count(rs, (r) => !r.presigned)}**`),
  ]);
  for (const op of ops.filter((o) => o.startsWith('client')))
    rows.push([op, ...inPhase.map((rs) => String(count(rs, (r) => opName(r) === op)))]);
  rows.push(['**all S3 requests**', ...inPhase.map((rs) => `**${rs.length}**`)]);
  rows.push([
    'of which in the PUT/COPY/POST/LIST price class',
    ...inPhase.map((rs) => String(count(rs, (r) => !r.presigned && DEAR.test(r.op)))),
  ]);
  return table(['S3 request', ...targets.map((t) => t.name)], rows);
}

function perRequestTable(targets: Target[]): string {
  const labels = [...new Set(targets.flatMap((t) => [...t.calls.keys()]))];
  const rows = labels.map((label) => {
    const calls = targets[0]!.calls.get(label) ?? 0;
    const cells = targets.map((t) => {
      const rs = t.proxy.requests.filter((r) => stepOf(r) === label);
      const n = t.calls.get(label) ?? 1;
      const fmt = (x: number) => String(Math.round((x / n) * 100) / 100);
      const own = count(rs, (r) => !r.presigned);
      const via = count(rs, (r) => r.presigned);
      return via ? `${fmt(own)} + ${fmt(via)}` : fmt(own);
    });
    return [`${label.replace('|', ': ')} (x${calls})`, ...cells];
  });
  return table(['client request (times)', ...targets.map((t) => t.name)], rows);
}

function trace(t: Target, label: string): string {
  const rs = t.proxy.requests.filter((r) => r.label === label);
  const short = (key: string) =>
    key
      .replace(/[0-9a-f]{64}/g, (hex) => `${hex.slice(0, 12)}…`)
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<upload>');
  return rs
    .map((r) => `  ${opName(r).padEnd(28)} ${short(r.key)}${r.status ? ` -> ${r.status}` : ''}`)
    .join('\n');
}

function version(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split('\n')[0]!;
  } catch {
    return 'unknown';
  }
}

// ---------- main ----------

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-s3-'));
  started.dirs.push(dir);
  const s3 = await startS3Server();
  started.s3 = s3;
  const targets = [
    await startBerth(s3),
    await startDistribution(s3, dir, 'distribution', false),
    await startDistribution(s3, dir, 'distribution-cache', true),
  ];
  const image = makeImage();
  const t0 = performance.now();
  for (const t of targets) await workload(t, image);
  const workMs = performance.now() - t0;

  const out: string[] = [];
  out.push(
    `Date: ${new Date().toISOString()}. Node ${process.version}. Berth ${version('git', ['rev-parse', '--short', 'HEAD'])}.`,
    `Distribution: ${version(DISTRIBUTION, ['--version'])}. MinIO: ${version(MINIO_PATH, ['--version'])}.`,
    `Image: ${LAYERS} layers of ${LAYER_SIZE} random bytes + a ${image.blobs[0]!.bytes.length}-byte config; workload took ${Math.round(workMs)} ms for all three registries.`,
    '',
  );
  for (const [phase, title] of PHASES) out.push(`#### ${title}`, '', phaseTable(targets, phase), '');
  out.push(
    '#### S3 requests per client request',
    '',
    'Average per call; "a + b": b are client -> S3 requests through the redirect.',
    '',
    perRequestTable(targets),
    '',
  );
  for (const t of targets) {
    const startup = t.proxy.requests
      .filter((r) => r.label === 'startup')
      .map((r) => `${r.op} ${r.key}`.trim());
    const stray = t.proxy.requests.filter((r) => r.label === undefined);
    out.push(
      `${t.name}: ${startup.length} S3 requests at startup${startup.length ? ` (${startup.join(', ')})` : ''}, ${stray.length} between client requests${stray.length ? ': ' + stray.map((r) => `${r.op} ${r.key}`).join(', ') : ''}.`,
    );
  }
  out.push('');
  for (const label of [
    'push|POST upload|2',
    'push|PATCH whole blob|2',
    'push|PUT ?digest|2',
    'push|PUT manifest by tag|1',
    'pull|GET manifest by tag|1',
    'pull|GET blob|2',
    'head-blob|HEAD blob|1',
    're-push|PUT manifest by tag|1',
  ]) {
    const [phase, name, n] = label.split('|');
    out.push(
      `Trace of ${phase}: ${name}${n === '2' ? ' (first layer; call 1 was the config blob)' : ''}:`,
      '```',
    );
    for (const t of targets) out.push(`${t.name}:`, trace(t, label));
    out.push('```', '');
  }
  process.stdout.write(out.join('\n'));
  if (process.env.BENCH_S3_JSON) await writeFile(process.env.BENCH_S3_JSON, JSON.stringify(summary(targets)));
}

/** Counts per registry, per phase and per client request, by S3 call ("client -> S3: X" for redirects). */
function summary(targets: Target[]) {
  const tally = (rs: S3Request[]) => {
    const ops: Record<string, number> = {};
    for (const r of rs) ops[opName(r)] = (ops[opName(r)] ?? 0) + 1;
    return ops;
  };
  return {
    layers: LAYERS,
    layerSize: LAYER_SIZE,
    targets: targets.map((t) => ({
      name: t.name,
      phases: Object.fromEntries(
        PHASES.map(([phase]) => {
          const rs = t.proxy.requests.filter((r) => phaseOf(r) === phase);
          return [
            phase,
            {
              registry: count(rs, (r) => !r.presigned),
              all: rs.length,
              dear: count(rs, (r) => !r.presigned && DEAR.test(r.op)),
              ops: tally(rs),
            },
          ];
        }),
      ),
      steps: Object.fromEntries(
        [...t.calls].map(([label, calls]) => [
          label,
          {
            calls,
            ops: tally(t.proxy.requests.filter((r) => stepOf(r) === label)),
            /** Body bytes between the registry and S3, both directions (redirected clients not included). */
            registryBytes: t.proxy.requests
              .filter((r) => stepOf(r) === label && !r.presigned)
              .reduce((n, r) => n + r.sentBytes + r.receivedBytes, 0),
          },
        ]),
      ),
    })),
  };
}

await runScript(main, cleanup, RUN_TIMEOUT_MS);
