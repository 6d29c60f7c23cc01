/**
 * The harness's Markdown: side-by-side tables (median, min, max, ratio Berth/Distribution, server
 * CPU seconds, peak RSS), the targets of issue #9 with what was measured, and the rewrite of
 * BENCHMARKS.md between its markers.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Ceilings } from './ceilings.ts';
import { table } from './markdown.ts';
import {
  BERTH_LAMBDA,
  BERTH_SERVE,
  renderCriticalPath,
  targetOf,
  withDerivedSteps,
  type CriticalPathSummary,
} from './critical-path-table.ts';
import { renderIdleMemory, type IdleMemory } from './idle-memory.ts';
import type { Kind, Store } from './registries.ts';

export interface Sample {
  value: number;
  cpuSeconds: number;
  peakRssMiB: number;
  /** RSS of the registry process after its start, before its first measured operation (settled). */
  idleRssMiB?: number;
  p50ms?: number;
  p99ms?: number;
}

export interface TransferRow {
  workload: string;
  client: string;
  kind: Kind;
  store: Store;
  bytes: number;
  command: string;
  /**
   * 'lambda': Berth's registry bundle behind the local API Gateway (`berth serve --lambda`), reached
   * through `berth relay` as a client of the serverless registry would; 'bound': the same pull
   * answered from memory by a front that recorded Berth's answers (bench/lib/replay-front.ts), the
   * fastest any registry redirecting to that storage could be; absent: the registry itself.
   */
  path?: 'lambda' | 'bound';
  /** value = seconds */
  samples: Sample[];
}

export interface LoadRow {
  endpoint: string;
  kind: Kind;
  store: Store;
  command: string;
  /** value = requests per second */
  samples: Sample[];
}

interface S3Summary {
  command: string;
  layers: number;
  layerSize: number;
  targets: {
    name: string;
    phases: Record<string, { registry: number; all: number; dear: number; ops: Record<string, number> }>;
    steps: Record<string, { calls: number; ops: Record<string, number>; registryBytes: number }>;
  }[];
}

export interface Results {
  quick: boolean;
  command: string;
  machine: Record<string, string | number>;
  ceilings?: Ceilings;
  transfers: TransferRow[];
  loads: LoadRow[];
  lambda:
    | {
        bundles: { name: string; bytes: number; initMs: number[] }[];
        handler: { path: 'lambda' | 'node'; endpoint: string; samples: Sample[] }[];
        handlerCommand?: string;
      }
    | undefined;
  s3: S3Summary[];
  /** bench/critical-path.ts's figures (BENCH_CP_JSON). */
  criticalPath?: { command: string; summary: CriticalPathSummary };
  /** bench/cold-start.ts's medians, under the node it names (Node 22, Lambda's major, when installed). */
  coldStart?: { command: string; node: string; initMs: number; firstRequestMs: number };
  /** bench/idle-memory.ts: where an idle `berth serve` keeps its RSS, next to an idle Distribution. */
  idleMemory?: IdleMemory;
}

export const START =
  '<!-- bench:results:start (written by `npm run bench`, bench/run.ts; edits here are lost) -->';
export const END = '<!-- bench:results:end -->';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
const min = (xs: number[]) => Math.min(...xs);
const max = (xs: number[]) => Math.max(...xs);

function f(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(Math.min(1, digits));
  return x.toFixed(digits);
}

const storeName = (s: Store) =>
  s === 'fs' ? 'filesystem' : s === 's3' ? 'S3 (MinIO)' : 'S3 (MinIO + AWS-like latency)';
const spread = (xs: number[], digits = 2) =>
  `${f(median(xs), digits)} (${f(min(xs), digits)}–${f(max(xs), digits)})`;

interface Pair<T> {
  berth?: T;
  distribution?: T;
}

function pairs<T extends { kind: Kind }>(rows: T[], key: (r: T) => string): [string, Pair<T>][] {
  const out = new Map<string, Pair<T>>();
  for (const r of rows) {
    const k = key(r);
    const p = out.get(k) ?? {};
    p[r.kind] = r;
    out.set(k, p);
  }
  return [...out];
}

// ---------------------------------------------------------------- derived figures, shared with the targets

function transferFigures(r: TransferRow | undefined) {
  if (!r) return undefined;
  const secs = r.samples.map((s) => s.value);
  const mibs = median(secs.map((s) => r.bytes / MiB / s));
  const cpu = median(r.samples.map((s) => s.cpuSeconds));
  return {
    secs,
    mibs,
    cpu,
    cpuPerGiB: cpu / (r.bytes / GiB),
    rss: max(r.samples.map((s) => s.peakRssMiB)),
  };
}

function loadFigures(r: LoadRow | undefined) {
  if (!r) return undefined;
  return {
    rps: r.samples.map((s) => s.value),
    p50: median(r.samples.map((s) => s.p50ms!)),
    p99: median(r.samples.map((s) => s.p99ms!)),
    cpu: median(r.samples.map((s) => s.cpuSeconds)),
    rss: max(r.samples.map((s) => s.peakRssMiB)),
  };
}

interface Target {
  target: string;
  measured: string;
  met: boolean;
}

/** The rows measured without injected latency (the realistic-latency ones have their own section). */
const direct = (rows: TransferRow[]) => rows.filter((r) => r.store !== 's3-aws');

/** The realistic-latency rows by workload and client: Berth serve, Berth through the Lambda gateway, Distribution. */
function latencyGroups(res: Results) {
  const groups = new Map<
    string,
    { berth?: TransferRow; lambda?: TransferRow; bound?: TransferRow; distribution?: TransferRow }
  >();
  for (const r of res.transfers.filter((t) => t.store === 's3-aws')) {
    const key = `${r.workload}|${r.client}`;
    const g = groups.get(key) ?? {};
    if (r.kind === 'distribution') g.distribution = r;
    else if (r.path === 'lambda') g.lambda = r;
    else if (r.path === 'bound') g.bound = r;
    else g.berth = r;
    groups.set(key, g);
  }
  return [...groups.values()];
}

const isSmallLayers = (workload: string) => /\d+ layers of (128 KiB|4 MiB)$/.test(workload);

/**
 * Issue #21's targets, each computed from this run's results: the ratios against Distribution, CPU
 * per GiB on every push, the cold start, and the critical path per request type. A target whose
 * workload did not run (--only, --quick) is left out.
 */
export function targets21(res: Results): Target[] {
  const out: Target[] = [];
  const ratioTarget = (
    target: string,
    b: TransferRow | undefined,
    d: TransferRow | undefined,
    min: number,
    bound?: TransferRow,
  ) => {
    const bf = transferFigures(b);
    const df = transferFigures(d);
    if (!bf || !df) return;
    const ratio = bf.mibs / df.mibs;
    const boundFigures = transferFigures(bound);
    out.push({
      target: `${target}: ratio >= ${min.toFixed(1)}`,
      measured:
        `${f(ratio)} (${f(bf.mibs, 1)} vs ${f(df.mibs, 1)} MiB/s)` +
        (boundFigures ? `; bound ${f(boundFigures.mibs / df.mibs)}` : ''),
      met: ratio >= min,
    });
  };
  for (const g of latencyGroups(res)) {
    const row = (g.berth ?? g.lambda ?? g.distribution)!;
    const what = `${row.workload} (${row.client}, S3 with AWS-like latency)`;
    ratioTarget(what, g.berth, g.distribution, 1.5, g.bound);
    ratioTarget(`${what}, through the Lambda gateway`, g.lambda, g.distribution, 1.5, g.bound);
  }
  for (const [, p] of pairs(direct(res.transfers), (r) => `${r.workload}|${r.client}|${r.store}`)) {
    const row = (p.berth ?? p.distribution)!;
    const where = `${row.workload} (${row.client}, ${storeName(row.store)})`;
    if (
      row.store === 'fs' &&
      row.client === 'skopeo' &&
      row.workload.startsWith('push') &&
      isSmallLayers(row.workload)
    )
      ratioTarget(`small-layer ${where}`, p.berth, p.distribution, 1.2);
    if (row.store === 'fs' && row.client === 'docker') ratioTarget(where, p.berth, p.distribution, 1.0);
    if (row.store === 's3' && row.workload.startsWith('pull') && isSmallLayers(row.workload))
      ratioTarget(`small-blob ${where}`, p.berth, p.distribution, 1.0);
  }
  // Server CPU per GiB on every push, every store and path.
  const pushes = res.transfers.filter((t) => t.workload.startsWith('push'));
  for (const b of pushes.filter((t) => t.kind === 'berth')) {
    const d = pushes.find(
      (t) =>
        t.kind === 'distribution' &&
        t.workload === b.workload &&
        t.client === b.client &&
        t.store === b.store,
    );
    const bf = transferFigures(b);
    const df = transferFigures(d);
    if (!bf || !df) continue;
    out.push({
      target: `${b.workload} (${b.client}, ${storeName(b.store)}${b.path === 'lambda' ? ', Lambda gateway' : ''}): server CPU-s/GiB <= Distribution's`,
      measured: `${f(bf.cpuPerGiB)} vs ${f(df.cpuPerGiB)}`,
      met: bf.cpuPerGiB <= df.cpuPerGiB,
    });
  }
  if (res.coldStart) {
    out.push({
      target: `cold start: registry bundle init median < 70 ms (bench/cold-start.ts, ${res.coldStart.node})`,
      measured: `${f(res.coldStart.initMs, 1)} ms (first GET /v2/ ${f(res.coldStart.firstRequestMs, 1)} ms)`,
      met: res.coldStart.initMs < 70,
    });
  }
  if (res.criticalPath) {
    // One row per Berth registry and target of the issue: the worst request type it covers.
    for (const t of res.criticalPath.summary.targets.filter(
      (x) => x.name === BERTH_SERVE || x.name === BERTH_LAMBDA,
    )) {
      const byTarget = new Map<string, { max: number; steps: [string, number][] }>();
      for (const [step, fig] of Object.entries(withDerivedSteps(t.steps))) {
        const limit = targetOf(step);
        if (!limit) continue;
        const g = byTarget.get(limit.what) ?? { max: limit.max, steps: [] };
        g.steps.push([step, fig.sequential]);
        byTarget.set(limit.what, g);
      }
      for (const [what, g] of byTarget) {
        const worst = Math.max(...g.steps.map(([, n]) => n));
        const over = g.steps.filter(([, n]) => n > g.max);
        out.push({
          target: `critical path, ${t.name}: ${what} <= ${g.max} sequential S3 requests`,
          measured: over.length
            ? over.map(([step, n]) => `${step}: ${n}`).join('; ')
            : `at most ${worst} (${g.steps.length} request types)`,
          met: worst <= g.max,
        });
      }
    }
  }
  return out;
}

/** Median idle RSS and highest peak RSS of a row's samples, in MiB ("-" when not measured). */
function memoryCell(r: TransferRow | LoadRow | undefined): string {
  if (!r) return '-';
  const idle = r.samples.map((s) => s.idleRssMiB).filter((x): x is number => x !== undefined);
  return `${idle.length ? f(median(idle), 0) : '-'} / ${f(max(r.samples.map((s) => s.peakRssMiB)), 0)}`;
}

function targets(res: Results): Target[] {
  const out: Target[] = [];
  for (const [, p] of pairs(direct(res.transfers), (r) => `${r.workload}|${r.client}|${r.store}`)) {
    const b = transferFigures(p.berth);
    const d = transferFigures(p.distribution);
    const row = p.berth ?? p.distribution!;
    if (!b || !d || row.store !== 'fs') continue;
    const ratio = b.mibs / d.mibs;
    out.push({
      target: `${row.workload} (${row.client}, filesystem): throughput ratio >= 1.0`,
      measured: `${f(ratio)} (${f(b.mibs, 0)} vs ${f(d.mibs, 0)} MiB/s)`,
      met: ratio >= 1,
    });
    if (row.workload.startsWith('push'))
      out.push({
        target: `${row.workload} (${row.client}, filesystem): server CPU s per GiB <= Distribution's`,
        measured: `${f(b.cpuPerGiB)} vs ${f(d.cpuPerGiB)}`,
        met: b.cpuPerGiB <= d.cpuPerGiB,
      });
  }
  for (const [, p] of pairs(res.loads, (r) => `${r.endpoint}|${r.store}`)) {
    const b = loadFigures(p.berth);
    const d = loadFigures(p.distribution);
    const row = p.berth ?? p.distribution!;
    if (!b || !d || row.store !== 'fs') continue;
    out.push({
      target: `${row.endpoint} (filesystem): req/s >= Distribution's`,
      measured: `${f(median(b.rps), 0)} vs ${f(median(d.rps), 0)} req/s`,
      met: median(b.rps) >= median(d.rps),
    });
    out.push({
      target: `${row.endpoint} (filesystem): p99 <= Distribution's`,
      measured: `${f(b.p99, 1)} vs ${f(d.p99, 1)} ms`,
      met: b.p99 <= d.p99,
    });
  }
  for (const s3 of res.s3) {
    const berth = s3.targets.find((t) => t.name === 'Berth');
    if (!berth) continue;
    const registryOps = (step: string) =>
      Object.entries(berth.steps[step]?.ops ?? {})
        .filter(([op]) => !op.startsWith('client'))
        .reduce((n, [, c]) => n + c, 0);
    const size = `${s3.layers} x ${fmtBytes(s3.layerSize)}`;
    const manifest = registryOps('pull|GET manifest by tag');
    out.push({
      target: `S3, ${size}: pull by tag, manifest path <= 2 S3 requests`,
      measured: String(manifest),
      met: manifest <= 2,
    });
    const blobCalls = berth.steps['pull|GET blob']?.calls ?? 1;
    const perBlob = registryOps('pull|GET blob') / blobCalls;
    out.push({
      target: `S3, ${size}: pull, <= 1 S3 request per blob (by the registry)`,
      measured: f(perBlob),
      met: perBlob <= 1,
    });
    const put = berth.steps['push|PUT ?digest'];
    if (put) {
      const copies = (put.ops.CopyObject ?? 0) + (put.ops.UploadPartCopy ?? 0);
      const perBlobBytes = put.registryBytes / put.calls;
      // Session and hash-state objects are small; blob bytes are at least the layer size.
      const moved = copies > 0 || perBlobBytes >= s3.layerSize / 2;
      out.push({
        target: `S3, ${size}: completing an upload moves no blob bytes inside S3`,
        measured: `${copies} copies; ${fmtBytes(Math.round(perBlobBytes))} between Berth and S3 per PUT ?digest`,
        met: !moved,
      });
    }
  }
  const registryBundle = res.lambda?.bundles.find((b) => b.name === 'registry');
  if (registryBundle) {
    out.push({
      target: 'Lambda: registry bundle init < 150 ms (median of fresh processes)',
      measured: `${f(median(registryBundle.initMs), 1)} ms`,
      met: median(registryBundle.initMs) < 150,
    });
    out.push({
      target: 'Lambda: registry bundle < 1 MB',
      measured: `${(registryBundle.bytes / 1e6).toFixed(3)} MB`,
      met: registryBundle.bytes < 1e6,
    });
  }
  for (const row of res.transfers.filter((t) => t.kind === 'berth' && t.client.startsWith('HTTP'))) {
    const peak = max(row.samples.map((s) => s.peakRssMiB));
    out.push({
      target: `Memory: Berth RSS < 200 MB during ${row.workload} (${storeName(row.store)})`,
      measured: `peak ${f((peak * MiB) / 1e6, 0)} MB`,
      met: (peak * MiB) / 1e6 < 200,
    });
  }
  return out;
}

function fmtBytes(n: number): string {
  return n >= GiB
    ? `${f(n / GiB)} GiB`
    : n >= MiB
      ? `${f(n / MiB)} MiB`
      : n >= 1024
        ? `${f(n / 1024)} KiB`
        : `${n} B`;
}

// ---------------------------------------------------------------- rendering

export function renderReport(res: Results): string {
  const m = res.machine;
  const out: string[] = [];
  out.push(
    `### Results of \`${res.command}\`${res.quick ? ' (quick mode: small sizes and short loads, a check that the harness works, not figures to quote)' : ''}`,
    '',
    `Run ${m.date}, ${m.minutes} min. Machine: ${m.cpu}, ${m.memoryGiB} GiB RAM; load average ${m.loadBefore} before and ${m.loadAfter} after.`,
    `Berth ${m.berth} on Node ${m.node}; ${m.distribution}; ${m.skopeo}; ${m.docker}; ${m.hey}; MinIO ${m.minio}.`,
    'Every figure: median of the runs, (min–max) in brackets; "ratio" is Berth/Distribution, so above 1.0 is Berth faster.',
    'Server CPU: user+system seconds of the registry process during the operation (/proc/<pid>/stat), median; peak RSS:',
    'VmHWM of the registry process during the operation (reset before it), the highest of the runs. MinIO and the client are',
    'not included. Each run starts a fresh registry with fresh storage (a new data dir or bucket), Berth and Distribution',
    'taking turns.',
    '',
  );
  if (res.ceilings) {
    const c = res.ceilings;
    out.push(
      '#### Machine ceilings (same run)',
      '',
      table(
        ['ceiling', 'MB/s', 'how'],
        [
          [
            'sha256, openssl',
            f(c.sha256OpensslMBs, 0),
            '`openssl speed -evp sha256 -bytes 16384 -seconds 2`',
          ],
          [
            'sha256, Node crypto',
            f(c.sha256NodeMBs, 0),
            '`createHash` fed 64 KiB chunks, in the harness process',
          ],
          [
            'disk write + fsync',
            f(c.diskWriteFsyncMBs, 0),
            '1 MiB writes then `fsync`, in the work dir (same disk as the stores)',
          ],
          ['loopback TCP', f(c.loopbackTcpMBs, 0), 'Node socket to a Node sink process, 256 KiB writes'],
        ],
      ),
      '',
    );
  }
  out.push(...issue21Sections(res));
  const tg = targets(res);
  if (tg.length) {
    out.push(
      '#### Targets of issue #9 (the first round)',
      '',
      table(
        ['target', 'measured (Berth vs Distribution)', 'met'],
        tg.map((t) => [t.target, t.measured, t.met ? 'yes' : '**no**']),
      ),
      '',
    );
  }
  if (direct(res.transfers).length) {
    out.push(
      '#### Push and pull',
      '',
      'Seconds for the whole client command (skopeo, docker) or the three requests (HTTP), median (min–max); MiB/s of',
      'the medians; CPU s per GiB of the image; peak RSS in MiB.',
      '',
    );
    const rows = pairs(direct(res.transfers), (r) => `${r.workload}|${r.client}|${r.store}`).map(([, p]) => {
      const row = (p.berth ?? p.distribution)!;
      const b = transferFigures(p.berth);
      const d = transferFigures(p.distribution);
      return [
        `${row.workload}, ${row.client}`,
        storeName(row.store),
        b ? spread(b.secs) : '',
        d ? spread(d.secs) : '',
        b ? f(b.mibs, 0) : '',
        d ? f(d.mibs, 0) : '',
        b && d ? `**${f(b.mibs / d.mibs)}**` : '',
        b && d ? `${f(b.cpuPerGiB)} / ${f(d.cpuPerGiB)}` : '',
        b && d ? `${f(b.rss, 0)} / ${f(d.rss, 0)}` : '',
      ];
    });
    out.push(
      table(
        [
          'workload, client',
          'store',
          'Berth s',
          'Distribution s',
          'Berth MiB/s',
          'Distr. MiB/s',
          'ratio',
          'CPU s/GiB B / D',
          'peak RSS B / D',
        ],
        rows,
      ),
      '',
      'Commands (the harness runs them; `<layout>` is an OCI layout it wrote, layers uncompressed):',
      '',
      ...[...new Set(direct(res.transfers).map((t) => `- ${t.client}: \`${t.command}\``))],
      '',
    );
  }
  if (res.loads.length) {
    out.push(
      `#### Request rates at 32 connections`,
      '',
      `\`${res.loads[0]!.command}\` (Accept header on every request; hey follows redirects, as clients do). hey runs on`,
      'the same two cores as the registry.',
      '',
    );
    const rows = pairs(res.loads, (r) => `${r.endpoint}|${r.store}`).map(([, p]) => {
      const row = (p.berth ?? p.distribution)!;
      const b = loadFigures(p.berth);
      const d = loadFigures(p.distribution);
      return [
        row.endpoint,
        storeName(row.store),
        b ? spread(b.rps, 0) : '',
        d ? spread(d.rps, 0) : '',
        b && d ? `**${f(median(b.rps) / median(d.rps))}**` : '',
        b && d ? `${f(b.p50, 1)} / ${f(d.p50, 1)}` : '',
        b && d ? `${f(b.p99, 1)} / ${f(d.p99, 1)}` : '',
        b && d ? `${f(b.cpu, 1)} / ${f(d.cpu, 1)}` : '',
        b && d ? `${f(b.rss, 0)} / ${f(d.rss, 0)}` : '',
      ];
    });
    out.push(
      table(
        [
          'request',
          'store',
          'Berth req/s',
          'Distribution req/s',
          'ratio',
          'p50 ms B / D',
          'p99 ms B / D',
          'CPU s B / D',
          'peak RSS B / D',
        ],
        rows,
      ),
      '',
    );
  }
  if (res.lambda) {
    const l = res.lambda;
    out.push(
      '#### Lambda path',
      '',
      'Bundles from `npm run build`; init is the `import()` of the bundle in a fresh `node` (S3 store configured with',
      'dummy credentials, no storage call), median (min–max) of fresh processes:',
      '',
      table(
        ['bundle', 'size KiB', 'init ms'],
        l.bundles.map((b) => [b.name, f(b.bytes / 1024, 1), spread(b.initMs, 1)]),
      ),
      '',
      `Per-request latency, one request at a time (${l.handlerCommand}); the gateway runs the bundle's handler in`,
      'process, so this is handler + gateway time; the Node server is the same registry without the Lambda adapter:',
      '',
      table(
        ['request', 'path', 'p50 ms', 'p99 ms', 'req/s'],
        l.handler.map((h) => [
          h.endpoint,
          h.path === 'lambda' ? '`berth serve --lambda` (gateway + bundle)' : '`berth serve` (Node server)',
          spread(h.samples.map((s) => s.p50ms!)),
          spread(h.samples.map((s) => s.p99ms!)),
          spread(
            h.samples.map((s) => s.value),
            0,
          ),
        ]),
      ),
      '',
    );
  }
  for (const s3 of res.s3) {
    out.push(
      `#### S3 requests per operation, ${s3.layers} layers of ${fmtBytes(s3.layerSize)}`,
      '',
      `\`${s3.command}\`: counts at a counting proxy in front of MinIO, one per registry (see the S3 section below for`,
      'the method and the per-request breakdown). "registry": S3 requests made by the registry; "all": including the',
      'client\'s presigned GET/HEAD after a redirect; "dear": in the PUT/COPY/POST/LIST price class.',
      '',
      table(
        ['operation', ...s3.targets.map((t) => `${t.name} registry / all / dear`)],
        Object.keys(s3.targets[0]?.phases ?? {}).map((phase) => [
          phase,
          ...s3.targets.map((t) => {
            const p = t.phases[phase]!;
            return `${p.registry} / ${p.all} / ${p.dear}`;
          }),
        ]),
      ),
      '',
    );
  }
  return out.join('\n');
}

/** How to profile a miss of each kind (the explanation itself follows the final run, outside this block). */
function profileFor(t: Target): string {
  if (t.target.startsWith('critical path'))
    return '`npm run build && BENCH_CP_TRACE=1 npx tsx bench/critical-path.ts` lists each S3 call of the request';
  if (t.target.startsWith('cold start'))
    return '`node --cpu-prof` on the import of dist/registry/index.mjs; the bundle composition (esbuild `--metafile`)';
  if (t.target.includes('CPU-s/GiB'))
    return '`BENCH_BERTH_NODE_ARGS="--cpu-prof --cpu-prof-dir=<dir>" npm run bench -- --only=<workload> --no-write`';
  if (t.target.includes('AWS-like latency'))
    return '`BENCH_CP_TRACE=1` critical path of the request types the client sends, times the layer count';
  return 'server-side request times (access logs) and `--cpu-prof` of the server during the workload';
}

function issue21Sections(res: Results): string[] {
  const out: string[] = [];
  const tg = targets21(res);
  if (tg.length) {
    out.push(
      '#### Targets (issue #21)',
      '',
      'Each computed from this run: throughput ratios Berth/Distribution (medians), server CPU per GiB, the cold start of',
      '`bench/cold-start.ts`, and the sequential S3 requests of `bench/critical-path.ts` (median of its repetitions).',
      '',
      table(
        ['target', 'measured (Berth vs Distribution)', 'met'],
        tg.map((t) => [t.target, t.measured, t.met ? 'yes' : '**no**']),
      ),
      '',
    );
    const misses = tg.filter((t) => !t.met);
    if (misses.length) {
      out.push(
        `${misses.length} of ${tg.length} missed; the profile that explains each is in "Misses of issue #21" below this block. To profile:`,
        '',
        ...[...new Set(misses.map(profileFor))].map((p) => `- ${p}`),
        '',
      );
    }
  }
  const groups = latencyGroups(res);
  if (groups.length) {
    out.push(
      '#### Realistic S3 latency: the typical 10-layer image',
      '',
      'Both registries on S3 (MinIO) behind the latency proxy (`bench/s3-counting-proxy.ts`, `AWS_LIKE`: 15 ms GET/HEAD, 30 ms',
      'PUT/POST/LIST, 20 ms DELETE, +-5 ms jitter, each registry its own proxy), in the same run. "Lambda": the registry bundle',
      'behind the local API Gateway (`berth serve --lambda`), pushed and pulled through `berth relay` (layers above 4.4 MB',
      "cannot reach Lambda in one request); CPU and RSS are the gateway process's (the relay is the client's side).",
      '"Bound" (pulls): the same client pulls the image again from a front that recorded Berth\'s answers and gives them',
      'from memory, with the same redirects to the same storage (`bench/lib/replay-front.ts`): no registry that redirects',
      'blob GETs to that storage can pull faster, so its ratio is the highest any such registry could reach. Seconds median',
      "(min–max); ratio = throughput over Distribution's.",
      '',
      table(
        [
          'workload, client',
          'Berth serve s',
          'Berth Lambda s',
          'Distribution s',
          'bound s',
          'ratio serve',
          'ratio Lambda',
          'ratio bound',
          'CPU s/GiB serve / Lambda / D',
          'idle / peak RSS MiB serve / Lambda / D',
        ],
        groups.map((g) => {
          const row = (g.berth ?? g.lambda ?? g.distribution)!;
          const b = transferFigures(g.berth);
          const l = transferFigures(g.lambda);
          const d = transferFigures(g.distribution);
          const bound = transferFigures(g.bound);
          const ratio = (x: typeof b) => (x && d ? `**${f(x.mibs / d.mibs)}**` : '-');
          return [
            `${row.workload}, ${row.client}`,
            b ? spread(b.secs) : '-',
            l ? spread(l.secs) : '-',
            d ? spread(d.secs) : '-',
            bound ? spread(bound.secs) : '-',
            ratio(b),
            ratio(l),
            bound && d ? f(bound.mibs / d.mibs) : '-',
            [b, l, d].map((x) => (x ? f(x.cpuPerGiB) : '-')).join(' / '),
            [g.berth, g.lambda, g.distribution].map(memoryCell).join(' ; '),
          ];
        }),
      ),
      '',
      'Commands:',
      '',
      ...[
        ...new Set(
          res.transfers.filter((t) => t.store === 's3-aws').map((t) => `- ${t.client}: \`${t.command}\``),
        ),
      ],
      '',
    );
  }
  if (res.criticalPath) {
    const s = res.criticalPath.summary;
    out.push(
      '#### S3 requests on the critical path, per client request',
      '',
      `\`${res.criticalPath.command}\`: each registry behind its own latency proxy${s.latency ? ` (${s.latency.readMs} ms reads, ${s.latency.writeMs} ms writes and lists, ${s.latency.deleteMs} ms deletes, +-${s.latency.jitterMs} ms)` : ' (no delay)'},`,
      `one request at a time, ${s.repeat} repetition${s.repeat === 1 ? '' : 's'}, medians. "seq": the longest chain of S3 requests made one after`,
      'another before the answer (what the client waits for, in round trips); "total": every S3 request the client request',
      'caused, "(n after)" of them after the answer; "ms": the client\'s wall time. Targets from issue #21; "met" against',
      "Berth's median. The derived row adds POST upload and PUT ?digest with the bytes, which the client sends one after the other.",
      '',
      renderCriticalPath(s),
      '',
    );
  }
  const memRows: string[][] = [];
  for (const [, p] of pairs(direct(res.transfers), (r) => `${r.workload}|${r.client}|${r.store}`)) {
    const row = (p.berth ?? p.distribution)!;
    memRows.push([
      `${row.workload}, ${row.client}`,
      storeName(row.store),
      memoryCell(p.berth),
      memoryCell(p.distribution),
    ]);
  }
  for (const [, p] of pairs(res.loads, (r) => `${r.endpoint}|${r.store}`)) {
    const row = (p.berth ?? p.distribution)!;
    memRows.push([
      `${row.endpoint}, hey -c 32`,
      storeName(row.store),
      memoryCell(p.berth),
      memoryCell(p.distribution),
    ]);
  }
  if (memRows.length || res.idleMemory) {
    out.push(
      '#### Memory: idle and peak RSS of each registry server, per workload',
      '',
      'MiB. Idle: VmRSS of the fresh server once the machine settled, before its first measured operation (median over',
      "the runs; for the request rates, after one small image was seeded). Peak: VmHWM during the workload's operations",
      '(reset before each), the highest of the runs. The realistic-latency rows are in their own table above.',
      '',
    );
    if (memRows.length)
      out.push(table(['workload', 'store', 'Berth idle / peak', 'Distribution idle / peak'], memRows), '');
    if (res.idleMemory) out.push(renderIdleMemory(res.idleMemory), '');
  }
  return out;
}

/** Replaces the text between the markers in BENCHMARKS.md (or inserts a section before the first `## `). */
export function writeBenchmarks(file: string, report: string): void {
  const text = readFileSync(file, 'utf8');
  const block = `${START}\n\n${report.trim()}\n\n${END}`;
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  let next: string;
  if (start >= 0 && end > start) {
    next = text.slice(0, start) + block + text.slice(end + END.length);
  } else {
    const at = text.indexOf('\n## ');
    const section = `\n## Berth and Distribution side by side (\`npm run bench\`)\n\n${block}\n`;
    next = at >= 0 ? text.slice(0, at) + section + text.slice(at) : `${text}\n${section}`;
  }
  writeFileSync(file, next);
}
