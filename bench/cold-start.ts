/**
 * Cold start of the registry bundle: a fresh `node` imports dist/registry/index.mjs (module load
 * plus app construction, Lambda's "init") and answers one GET /v2/ event. Median of BENCH_COLD_RUNS
 * runs (default 9), with the process's CPU time of the init beside the wall time (on a shared
 * machine the CPU time moves less with the load).
 *
 *   npm run build && npx tsx bench/cold-start.ts [bundle] [path]
 *   BENCH_COLD_S3=1 npx tsx bench/cold-start.ts      # also the first S3-backed request, on MinIO
 *
 * `path` (default /v2/) is the GET the first request makes: `dist/ui/index.mjs /` measures the web
 * UI's function.
 *
 * BENCH_COLD_AGAINST=<another bundle> compares two builds on a shared machine: each run starts one
 * process of each bundle in turn (interleaved, so that a change of load hits both alike), and the
 * other bundle's medians are printed after the first's.
 *
 * The store is S3 with dummy credentials: init builds the S3 client as on AWS, and GET /v2/ needs
 * no storage call, so no server is involved. With BENCH_COLD_S3=1 a private MinIO
 * (test/e2e/setup-s3.sh) is started and each process then also answers a manifest GET (one S3
 * GetObject: the S3 client's first request, which sets up its connection, signer and credentials),
 * then the same GET again: the difference is what the first S3 call after a cold start costs here.
 * On AWS that first call also pays a TLS handshake to S3 (MinIO here speaks plain HTTP); the
 * credentials come from the environment on Lambda too, so no extra request fetches them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startS3Server, type S3TestServer } from '../test/storage/s3-server.ts';
import { benchLambdaEnv } from './lib/lambda-env.ts';

const RUNS = Number(process.env.BENCH_COLD_RUNS ?? 9);
const WITH_S3 = process.env.BENCH_COLD_S3 === '1';
const bundle = resolve(process.argv[2] ?? 'dist/registry/index.mjs');
const path = process.argv[3] ?? '/v2/';
const bundles = [
  bundle,
  ...(process.env.BENCH_COLD_AGAINST ? [resolve(process.env.BENCH_COLD_AGAINST)] : []),
];
for (const b of bundles) {
  if (!existsSync(b)) {
    process.stderr.write(`no bundle at ${b}: run \`npm run build\` first\n`);
    process.exit(2);
  }
}

// Runs in the fresh process; prints its timings as one JSON line.
const probe = (bundle: string) => `
const event = (path) => ({ version: '2.0', routeKey: '$default', rawPath: path, rawQueryString: '',
  headers: { host: 'bench.local' }, isBase64Encoded: false,
  requestContext: { domainName: 'bench.local', requestId: 'bench', http: { method: 'GET', path,
  protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'bench' }, routeKey: '$default', stage: '$default',
  timeEpoch: Date.now() } });
const cpu = (since) => { const u = process.cpuUsage(since); return (u.user + u.system) / 1000; };
const t0 = performance.now();
const c0 = process.cpuUsage();
const { handler } = await import(${JSON.stringify(pathToFileURL(bundle).href)});
const t1 = performance.now();
const initCpuMs = cpu(c0);
const result = await handler(event(${JSON.stringify(path)}), { awsRequestId: 'bench' });
const t2 = performance.now();
if (result.statusCode !== 200) throw new Error('GET ${path} answered ' + result.statusCode);
const out = { processMs: t0, initMs: t1 - t0, initCpuMs, firstRequestMs: t2 - t1 };
if (process.env.BENCH_COLD_S3 === '1') {
  // A manifest nobody pushed: one GetObject, answered 404 MANIFEST_UNKNOWN.
  const manifest = event('/v2/bench/app/manifests/latest');
  const t3 = performance.now();
  const first = await handler(manifest, { awsRequestId: 'bench-s3-1' });
  const t4 = performance.now();
  const second = await handler(manifest, { awsRequestId: 'bench-s3-2' });
  const t5 = performance.now();
  if (first.statusCode !== 404 || second.statusCode !== 404) throw new Error('manifest GET answered ' + first.statusCode + ', ' + second.statusCode);
  Object.assign(out, { firstS3Ms: t4 - t3, warmS3Ms: t5 - t4 });
}
console.log(JSON.stringify(out));
`;

let s3: S3TestServer | undefined;
let env = benchLambdaEnv();
if (WITH_S3) {
  s3 = await startS3Server();
  env = {
    ...env,
    BERTH_S3_BUCKET: s3.bucket,
    BERTH_S3_ENDPOINT: s3.endpoint,
    BERTH_S3_FORCE_PATH_STYLE: 'true',
    AWS_REGION: s3.region,
    // startS3Server put MinIO's credentials in this process's environment.
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY,
    BENCH_COLD_S3: '1',
  };
}

type Sample = {
  processMs: number;
  initMs: number;
  initCpuMs: number;
  firstRequestMs: number;
  wallMs: number;
  firstS3Ms?: number;
  warmS3Ms?: number;
};
const samplesOf = bundles.map((): Sample[] => []);
try {
  for (let i = 0; i < RUNS; i++) {
    for (const [b, file] of bundles.entries()) {
      const started = performance.now();
      // stderr dropped: on Node 20 the AWS SDK warns once per process that it will soon need Node 22.
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', probe(file)], {
        env,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      const wallMs = performance.now() - started;
      samplesOf[b]!.push({
        ...(JSON.parse(out.trim().split('\n').pop()!) as Omit<Sample, 'wallMs'>),
        wallMs,
      });
    }
  }
} finally {
  await s3?.stop();
}

const round = (n: number) => Math.round(n * 10) / 10;
// The first two lines keep their wording: bench/run.ts reads the init and first-GET medians.
for (const [b, file] of bundles.entries()) {
  const samples = samplesOf[b]!;
  const sorted = (key: keyof Sample) => samples.map((s) => s[key] ?? NaN).sort((x, y) => x - y);
  const median = (key: keyof Sample) => round(sorted(key)[Math.floor(samples.length / 2)]!);
  const min = (key: keyof Sample) => round(sorted(key)[0]!);
  process.stdout.write(
    `${file} (node ${process.version}, ${RUNS} fresh processes${bundles.length > 1 ? ', interleaved' : ''}, medians):\n` +
      `  init (import + app construction): ${median('initMs')} ms\n` +
      `  first GET ${path}:`.padEnd(36) +
      `${median('firstRequestMs')} ms\n` +
      `  node startup before import:       ${median('processMs')} ms\n` +
      `  whole process (spawn to exit):    ${median('wallMs')} ms\n` +
      `  the same import, CPU time:        ${median('initCpuMs')} ms (least ${min('initCpuMs')}; wall least ${min('initMs')})\n` +
      (WITH_S3
        ? `  first S3-backed request (MinIO):  ${median('firstS3Ms')} ms (the S3 client's first call)\n` +
          `  the same request again:           ${median('warmS3Ms')} ms\n`
        : ''),
  );
}
