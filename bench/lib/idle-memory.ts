/**
 * Where an idle `berth serve` keeps its resident memory, next to an idle Distribution and a bare
 * `node`: RSS split into anonymous (heap, code, buffers) and file-backed (the node binary and
 * libraries), V8's heap by space and by kind of object (a heap snapshot), the bundle's bytes by
 * package, and what importing its biggest packages alone costs a fresh node.
 *
 *   npm run bench -- --only=idle           # as part of the bench (the table in BENCHMARKS.md)
 *
 * The server is the bundle `npm start` runs (dist/cli/berth.mjs) on the filesystem store, with
 * bench/lib/memory-probe.mjs preloaded: on SIGUSR2 it writes process.memoryUsage(), V8's code and
 * space statistics and a heap snapshot. Nothing is sent to the server before the measurement but
 * the readiness probe's GET /v2/.
 */
import { build } from 'esbuild';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, MiB, ROOT, run, Server, sleep } from './proc.ts';
import { table } from './markdown.ts';

export interface ProcMemory {
  /** VmRSS, RssAnon, RssFile (+ RssShmem) from /proc/<pid>/status, MiB. */
  rss: number;
  anon: number;
  file: number;
}

export interface IdleMemory {
  command: string;
  settleSeconds: number;
  bareNode: ProcMemory;
  berth: ProcMemory & {
    usage: { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number };
    code: { codeAndMetadata: number; bytecodeAndMetadata: number; externalScriptSource: number };
    spaces: { name: string; size: number; used: number }[];
    /** Heap snapshot: self sizes by node type, the biggest object constructors, the biggest strings. */
    byType: { type: string; count: number; bytes: number }[];
    constructors: { name: string; count: number; bytes: number }[];
    strings: { preview: string; bytes: number }[];
  };
  distribution: ProcMemory;
  /** dist/cli/berth.mjs's bytes by npm package (esbuild metafile), the biggest first; "berth" is lib/ and bin/. */
  bundle: { total: number; packages: { name: string; bytes: number }[] };
  /** A fresh node importing one package alone, over a bare node: MiB of RSS and of V8 heap used. */
  imports: { name: string; rss: number; heapUsed: number }[];
}

export function procMemory(pid: number): ProcMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return {
    rss: kib('VmRSS') / 1024,
    anon: kib('RssAnon') / 1024,
    file: (kib('RssFile') + kib('RssShmem')) / 1024,
  };
}

async function waitFile(file: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`no ${file} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** A long-running process that does nothing, started the way the servers are, for node's own share. */
async function bareNode(settleMs: number): Promise<ProcMemory> {
  const server = Server.start('bare node', process.execPath, ['-e', 'setInterval(() => {}, 1e6)']);
  try {
    await sleep(settleMs);
    return procMemory(server.pid);
  } finally {
    await server.stop();
  }
}

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Self sizes by node type, by constructor (objects), and the biggest strings, from a .heapsnapshot. */
export function summarizeSnapshot(snap: HeapSnapshot) {
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [
    number,
    number,
    number,
  ];
  const byType = new Map<string, { count: number; bytes: number }>();
  const byCtor = new Map<string, { count: number; bytes: number }>();
  const strings: { preview: string; bytes: number }[] = [];
  const add = (m: Map<string, { count: number; bytes: number }>, k: string, bytes: number) => {
    const e = m.get(k) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += bytes;
    m.set(k, e);
  };
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!] ?? 'unknown';
    const name = snap.strings[snap.nodes[i + iName]!] ?? '';
    const bytes = snap.nodes[i + iSize]!;
    add(byType, type, bytes);
    if (type === 'object') add(byCtor, name, bytes);
    if (type === 'string' && bytes >= 16 * 1024)
      strings.push({ preview: name.slice(0, 60).replace(/\s+/g, ' '), bytes });
  }
  const sorted = (m: Map<string, { count: number; bytes: number }>) =>
    [...m].map(([k, v]) => ({ k, ...v })).sort((a, b) => b.bytes - a.bytes);
  return {
    byType: sorted(byType).map(({ k, count, bytes }) => ({ type: k, count, bytes })),
    constructors: sorted(byCtor)
      .slice(0, 12)
      .map(({ k, count, bytes }) => ({ name: k, count, bytes })),
    strings: strings.sort((a, b) => b.bytes - a.bytes).slice(0, 8),
  };
}

/** The CLI bundle's bytes by package, from esbuild's metafile (the same options as build/bundle.ts). */
async function bundleComposition(): Promise<IdleMemory['bundle']> {
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: ['bin/berth.ts'],
    write: false,
    outfile: 'berth.mjs',
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    mainFields: ['module', 'main'],
    metafile: true,
    logLevel: 'silent',
  });
  const output = Object.values(result.metafile.outputs).find((o) => o.entryPoint);
  const packages = new Map<string, number>();
  for (const [path, { bytesInOutput }] of Object.entries(output?.inputs ?? {})) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
    const name = m ? m[1]! : 'berth (lib/, bin/, web/)';
    packages.set(name, (packages.get(name) ?? 0) + bytesInOutput);
  }
  return {
    total: output?.bytes ?? 0,
    packages: [...packages].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes),
  };
}

/** RSS and heap of a fresh node that imported `specifier` (or nothing), after a settle. */
async function importCost(specifier: string | undefined): Promise<{ rss: number; heapUsed: number }> {
  const code = `${specifier ? `await import(${JSON.stringify(specifier)});` : ''}
await new Promise((r) => setTimeout(r, 500));
const u = process.memoryUsage();
console.log(JSON.stringify({ rss: u.rss, heapUsed: u.heapUsed }));`;
  const r = await run(process.execPath, ['--input-type=module', '-e', code], { timeoutMs: 60_000 });
  const { rss, heapUsed } = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    rss: number;
    heapUsed: number;
  };
  return { rss: rss / MiB, heapUsed: heapUsed / MiB };
}

export async function measureIdleMemory(opts: {
  cli: string;
  workDir: string;
  settleMs: number;
  /** Also import the bundle's biggest packages alone in fresh processes (the full run; about 15 s). */
  importCosts: boolean;
  startDistribution: () => Promise<{ server: Server; stop: () => Promise<void> }>;
  log: (line: string) => void;
}): Promise<IdleMemory> {
  const dir = join(opts.workDir, 'idle-memory');
  mkdirSync(join(dir, 'data'), { recursive: true });
  const out = join(dir, 'probe.json');
  const port = await freePort();
  const args = ['--import', pathToFileURL(join(ROOT, 'bench', 'lib', 'memory-probe.mjs')).href, opts.cli];
  args.push('serve', '--port', String(port), '--data-dir', join(dir, 'data'), '--log-level', 'warn');
  const env: NodeJS.ProcessEnv = { ...process.env, BENCH_MEMORY_PROBE_OUT: out };
  for (const name of Object.keys(env)) if (name.startsWith('BERTH_')) delete env[name];
  const berth = Server.start('berth serve (idle)', process.execPath, args, env);
  let berthFigures: IdleMemory['berth'];
  try {
    await berth.waitHttp(`http://127.0.0.1:${port}/v2/`);
    await sleep(opts.settleMs);
    const proc = procMemory(berth.pid);
    process.kill(berth.pid, 'SIGUSR2');
    await waitFile(out, 60_000);
    const probe = JSON.parse(readFileSync(out, 'utf8')) as {
      usage: IdleMemory['berth']['usage'];
      code: {
        code_and_metadata_size: number;
        bytecode_and_metadata_size: number;
        external_script_source_size: number;
      };
      spaces: IdleMemory['berth']['spaces'];
    };
    const snap = JSON.parse(readFileSync(`${out}.heapsnapshot`, 'utf8')) as HeapSnapshot;
    berthFigures = {
      ...proc,
      usage: probe.usage,
      code: {
        codeAndMetadata: probe.code.code_and_metadata_size,
        bytecodeAndMetadata: probe.code.bytecode_and_metadata_size,
        externalScriptSource: probe.code.external_script_source_size,
      },
      spaces: probe.spaces,
      ...summarizeSnapshot(snap),
    };
    opts.log(
      `idle berth serve: RSS ${proc.rss.toFixed(1)} MiB (anon ${proc.anon.toFixed(1)}, file ${proc.file.toFixed(1)})`,
    );
  } finally {
    await berth.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const d = await opts.startDistribution();
  let distribution: ProcMemory;
  try {
    await sleep(opts.settleMs);
    distribution = procMemory(d.server.pid);
  } finally {
    await d.stop();
  }
  const bare = await bareNode(opts.settleMs);
  const bundle = await bundleComposition();
  const base = opts.importCosts ? await importCost(undefined) : undefined;
  const imports: IdleMemory['imports'] = [];
  // The biggest packages that can be imported by their name (some, e.g. @aws-sdk/nested-clients,
  // export only subpaths): up to six.
  for (const p of bundle.packages.filter((x) => !x.name.startsWith('berth')).slice(0, 12)) {
    if (!base || imports.length === 6) break;
    const c = await importCost(p.name).catch(() => undefined);
    if (c) imports.push({ name: p.name, rss: c.rss - base.rss, heapUsed: c.heapUsed - base.heapUsed });
  }
  return {
    command: `node --import bench/lib/memory-probe.mjs dist/cli/berth.mjs serve --data-dir <new> (SIGUSR2 after ${opts.settleMs / 1000} s idle)`,
    settleSeconds: opts.settleMs / 1000,
    bareNode: bare,
    berth: berthFigures,
    distribution,
    bundle,
    imports,
  };
}

const mib = (bytes: number) => (bytes / MiB).toFixed(1);

export function renderIdleMemory(m: IdleMemory): string {
  const b = m.berth;
  const u = b.usage;
  const heapSpaces = b.spaces
    .filter((s) => s.size > 0)
    .sort((x, y) => y.size - x.size)
    .map((s) => `${s.name.replace(/_space$/, '')} ${mib(s.used)}/${mib(s.size)}`)
    .join(', ');
  return [
    `##### Where an idle \`berth serve\` keeps its memory`,
    '',
    `\`${m.command}\`; the same idle wait for Distribution (filesystem) and for a bare \`node -e 'setInterval(…)'\`.`,
    'RSS from /proc/<pid>/status: "anon" is the process\'s own memory (V8 heap, code, buffers, malloc), "file" the',
    'resident pages of the node binary and libraries (shared with other node processes).',
    '',
    table(
      ['process', 'RSS MiB', 'anon MiB', 'file MiB'],
      [
        ['`berth serve` (idle)', b.rss, b.anon, b.file],
        ['Distribution 2.8 (idle)', m.distribution.rss, m.distribution.anon, m.distribution.file],
        ['bare node (idle)', m.bareNode.rss, m.bareNode.anon, m.bareNode.file],
      ].map(([name, ...xs]) => [String(name), ...xs.map((x) => (x as number).toFixed(1))]),
    ),
    '',
    `Inside \`berth serve\` (process.memoryUsage, v8.getHeapSpaceStatistics / getHeapCodeStatistics): V8 heap ${mib(u.heapUsed)} MiB`,
    `used of ${mib(u.heapTotal)} MiB reserved (space used/size MiB: ${heapSpaces}); of it code and metadata`,
    `${mib(b.code.codeAndMetadata)} MiB, bytecode ${mib(b.code.bytecodeAndMetadata)} MiB; external (Buffers, wasm) ${mib(u.external)} MiB, of which`,
    `ArrayBuffers ${mib(u.arrayBuffers)} MiB; script source held outside the heap ${mib(b.code.externalScriptSource)} MiB.`,
    '',
    'Heap snapshot by kind of node (self sizes; the snapshot is taken after a full GC):',
    '',
    table(
      ['node type', 'count', 'MiB'],
      b.byType.slice(0, 10).map((t) => [t.type, String(t.count), mib(t.bytes)]),
    ),
    '',
    `Biggest object constructors: ${b.constructors.map((c) => `${c.name || '(anonymous)'} ${mib(c.bytes)} MiB (${c.count})`).join('; ')}.`,
    '',
    `Biggest strings: ${b.strings.map((s) => `${mib(s.bytes)} MiB "${s.preview.replace(/[|`]/g, ' ')}…"`).join('; ') || 'none above 16 KiB'}.`,
    '',
    `The CLI bundle (${mib(m.bundle.total)} MiB) by package (esbuild metafile), and what importing each of the biggest alone`,
    'costs a fresh node over a bare one (from node_modules, unbundled, so an estimate of its share):',
    '',
    table(
      ['package', 'bytes in bundle KiB', 'import alone: RSS MiB', 'heap used MiB'],
      m.bundle.packages.slice(0, 10).map((p) => {
        const i = m.imports.find((x) => x.name === p.name);
        return [
          p.name,
          (p.bytes / 1024).toFixed(0),
          i ? i.rss.toFixed(1) : '-',
          i ? i.heapUsed.toFixed(1) : '-',
        ];
      }),
    ),
  ].join('\n');
}
