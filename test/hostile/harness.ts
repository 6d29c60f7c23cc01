import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import { ENV_VARS } from '../../lib/config/sources.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** What `npm start` runs (built by `npm run build`, which `npm run test:hostile` runs first). */
export const CLI = `${ROOT}dist/cli/berth.mjs`;

export type Target = 'local' | 'gateway';

export interface BerthOptions {
  readonly target: Target;
  readonly dataDir: string;
  readonly authFile?: string;
  /** Run under `ulimit -n <openFiles>`, as the issue's descriptor-limit finding did. */
  readonly openFiles?: number;
  readonly env?: Record<string, string>;
}

/** A `berth serve` (or `serve --lambda`) process of the bundled command, on a free loopback port. */
export class Berth {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  private partial = '';
  url = '';
  port = 0;

  private constructor(readonly options: BerthOptions) {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    const args = [CLI, 'serve', '--port', '0', '--data-dir', options.dataDir];
    if (options.target === 'gateway') args.push('--lambda');
    if (options.authFile) args.push('--auth-file', options.authFile);
    // The test's own environment must not leak into the server's configuration.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !(name in ENV_VARS) && !name.startsWith('BERTH_')),
    );
    const command = options.openFiles
      ? spawn('bash', ['-c', `ulimit -n ${options.openFiles} && exec "$0" "$@"`, process.execPath, ...args], {
          env: { ...env, ...options.env },
          stdio: ['ignore', 'pipe', 'pipe'],
        })
      : spawn(process.execPath, args, { env: { ...env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = command;
    const collect = (chunk: Buffer) => {
      const text = this.partial + chunk.toString('utf8');
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      this.lines.push(...parts);
    };
    command.stdout!.on('data', collect);
    command.stderr!.on('data', collect);
  }

  static async start(options: BerthOptions): Promise<Berth> {
    const berth = new Berth(options);
    const deadline = Date.now() + 20_000;
    while (!berth.url) {
      const listening = berth.records().find((r) => r.msg === 'berth listening');
      if (listening) {
        berth.url = String(listening.url);
        berth.port = Number(new URL(berth.url).port);
        break;
      }
      if (berth.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`berth did not start:\n${berth.lines.join('\n')}`);
      }
      await sleep(50);
    }
    return berth;
  }

  records(): Record<string, unknown>[] {
    return this.lines.flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  /** The server's resident memory, MiB. */
  rssMiB(): number {
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
  }

  /** Open file descriptors of the server. */
  fds(): number {
    return readdirSync(`/proc/${this.child.pid}/fd`).length;
  }

  /** TCP connections established to the server's port, as the kernel counts them (accepted or queued). */
  held(): number {
    let count = 0;
    const port = this.port.toString(16).toUpperCase().padStart(4, '0');
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      if (!existsSync(file)) continue;
      for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
        const fields = line.trim().split(/\s+/);
        if (fields[1]?.endsWith(`:${port}`) && fields[3] === '01') count++;
      }
    }
    return count;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('close', resolve));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Samples the server's memory and held connections while an attack runs. */
export class Sampler {
  peakRss = 0;
  peakHeld = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly berth: Berth) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 200);
  }

  private sample(): void {
    try {
      this.peakRss = Math.max(this.peakRss, this.berth.rssMiB());
      this.peakHeld = Math.max(this.peakHeld, this.berth.held());
    } catch {
      // the process is gone
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export interface Exchange {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

/** One HTTP request on its own connection, from `source` (a loopback address: another client). */
export function call(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: Buffer | string;
    source?: string;
  } = {},
): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        headers: { Connection: 'close', ...options.headers },
        agent: false,
        ...(options.source ? { localAddress: options.source } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

export async function token(
  base: string,
  user: string,
  password: string,
  scope: string,
  source?: string,
): Promise<Exchange & { token?: string }> {
  const res = await call(`${base}/token?service=berth&scope=${encodeURIComponent(scope)}`, {
    headers: { Authorization: basic(user, password) },
    ...(source ? { source } : {}),
  });
  const parsed = res.status === 200 ? (JSON.parse(res.body.toString()) as { token: string }) : undefined;
  return { ...res, ...(parsed ? { token: parsed.token } : {}) };
}

/**
 * What a normal client does, timed: log in (with credentials), push a 1 KiB blob in one request,
 * pull it back (following a redirect). Throws unless every step got the expected answer.
 */
export async function normalClient(
  base: string,
  options: { source: string; credentials?: [string, string]; repo?: string },
): Promise<number> {
  const started = performance.now();
  const repo = options.repo ?? 'normal/app';
  const headers: Record<string, string> = {};
  if (options.credentials) {
    const login = await token(base, ...options.credentials, `repository:${repo}:pull,push`, options.source);
    if (!login.token) throw new Error(`normal client: login got ${login.status} ${login.body.toString()}`);
    headers.Authorization = `Bearer ${login.token}`;
  }
  const blob = Buffer.from(`normal client ${Math.random()} ${'x'.repeat(1000)}`);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const push = await call(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/octet-stream' },
    body: blob,
    source: options.source,
  });
  if (push.status !== 201) throw new Error(`normal client: push got ${push.status} ${push.body.toString()}`);
  let pull = await call(`${base}/v2/${repo}/blobs/${digest}`, { headers, source: options.source });
  if (pull.status === 307)
    pull = await call(new URL(String(pull.headers.location), base).href, { source: options.source });
  if (pull.status !== 200 || !pull.body.equals(blob))
    throw new Error(`normal client: pull got ${pull.status}`);
  return performance.now() - started;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Counts of each outcome kind, e.g. `{"408": 128, "503": 372}`. */
export function tally(values: readonly (string | number | undefined)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[String(v)] = (out[String(v)] ?? 0) + 1;
  return out;
}

/** One row of the figures table RELIABILITY.md shows. */
export interface Figure {
  readonly target: Target;
  readonly attack: string;
  readonly held: string;
  readonly memory: string;
  readonly normalClient: string;
  readonly outcome: string;
}

export function figuresTable(figures: readonly Figure[]): string {
  const rows = figures.map(
    (f) =>
      `| ${f.target === 'local' ? '`npm start`' : '`serve --lambda`'} | ${f.attack} | ${f.held} | ${f.memory} | ${f.normalClient} | ${f.outcome} |`,
  );
  return [
    '| Server | Attack | Connections held | Server memory (RSS) | Normal client during the attack | What the attacker got |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}
