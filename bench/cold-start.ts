/**
 * Cold start of the registry bundle: a fresh `node` imports dist/registry/index.mjs (module load
 * plus app construction, Lambda's "init") and answers one GET /v2/ event. Median of 5 runs.
 *
 *   npm run build && npx tsx bench/cold-start.ts [bundle] [path]
 *
 * `path` (default /v2/) is the GET the first request makes: `dist/ui/index.mjs /` measures the web
 * UI's function.
 *
 * The store is S3 with dummy credentials: init builds the S3 client as on AWS, and GET /v2/ needs
 * no storage call, so no server is involved.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchLambdaEnv } from './lib/lambda-env.ts';

const RUNS = 5;
const bundle = resolve(process.argv[2] ?? 'dist/registry/index.mjs');
const path = process.argv[3] ?? '/v2/';
if (!existsSync(bundle)) {
  process.stderr.write(`no bundle at ${bundle}: run \`npm run build\` first\n`);
  process.exit(2);
}

// Runs in the fresh process; prints its timings as one JSON line.
const probe = `
const t0 = performance.now();
const { handler } = await import(${JSON.stringify(pathToFileURL(bundle).href)});
const t1 = performance.now();
const event = { version: '2.0', routeKey: '$default', rawPath: ${JSON.stringify(path)}, rawQueryString: '',
  headers: { host: 'bench.local' }, isBase64Encoded: false,
  requestContext: { domainName: 'bench.local', requestId: 'bench', http: { method: 'GET', path: ${JSON.stringify(path)},
  protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'bench' }, routeKey: '$default', stage: '$default',
  timeEpoch: Date.now() } };
const result = await handler(event, { awsRequestId: 'bench' });
const t2 = performance.now();
if (result.statusCode !== 200) throw new Error('GET ${path} answered ' + result.statusCode);
console.log(JSON.stringify({ processMs: t0, initMs: t1 - t0, firstRequestMs: t2 - t1 }));
`;

const env = benchLambdaEnv();

type Sample = { processMs: number; initMs: number; firstRequestMs: number; wallMs: number };
const samples: Sample[] = [];
for (let i = 0; i < RUNS; i++) {
  const started = performance.now();
  // stderr dropped: on Node 20 the AWS SDK warns once per process that it will soon need Node 22.
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', probe], {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const wallMs = performance.now() - started;
  samples.push({ ...(JSON.parse(out.trim().split('\n').pop()!) as Omit<Sample, 'wallMs'>), wallMs });
}

const median = (key: keyof Sample) => {
  const sorted = samples.map((s) => s[key]).sort((a, b) => a - b);
  return Math.round(sorted[Math.floor(sorted.length / 2)]! * 10) / 10;
};
process.stdout.write(
  `${bundle} (node ${process.version}, ${RUNS} fresh processes, medians):\n` +
    `  init (import + app construction): ${median('initMs')} ms\n` +
    `  first GET ${path}:`.padEnd(36) +
    `${median('firstRequestMs')} ms\n` +
    `  node startup before import:       ${median('processMs')} ms\n` +
    `  whole process (spawn to exit):    ${median('wallMs')} ms\n`,
);
