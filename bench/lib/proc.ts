/**
 * Processes for the benchmark harness: commands with a time limit, long-running servers stopped by
 * pid, their CPU time and peak RSS read from /proc, and the system packages the harness installs
 * with apt when they are missing.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/** User + system CPU seconds of a live process (its threads included), from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const { user, system } = cpuSplit(pid);
  return user + system;
}

/** User and system CPU seconds of a live process (its threads included), apart. */
export function cpuSplit(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return { user: Number(fields[11]) / CLOCK_TICKS, system: Number(fields[12]) / CLOCK_TICKS };
}

/** Peak resident set size in MiB since start or the last resetPeakRss (VmHWM). */
export function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
  return kib ? Number(kib) / 1024 : NaN;
}

/** Sets VmHWM back to the current RSS (writing 5 to clear_refs; needs the same user or root). */
export function resetPeakRss(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // Not allowed: the peak then covers the process's whole life, which is still an upper bound.
  }
}

/** A long-running process started by the harness, stopped by its pid. */
export class Server {
  private output = '';
  readonly exited: Promise<number | null>;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    const keep = (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-6000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((done) => child.once('exit', (code) => done(code)));
    Server.live.add(this);
  }

  static readonly live = new Set<Server>();

  static start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Server {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    return new Server(name, child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  tail(): string {
    return this.output;
  }

  /** Waits until `url` answers 200 (or 401), failing early if the process exits. */
  async waitHttp(url: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited before answering ${url}:\n${this.output}`);
      const status = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200 || status === 401) return;
      await sleep(50);
    }
    throw new Error(`${this.name} did not answer ${url} within ${timeoutMs} ms:\n${this.output}`);
  }

  /** SIGTERM, then SIGKILL after 5 s. */
  async stop(): Promise<void> {
    Server.live.delete(this);
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }

  static async stopAll(): Promise<void> {
    await Promise.all([...Server.live].map((s) => s.stop()));
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command to its end (or kills it after timeoutMs); throws on a non-zero exit unless allowFailure. */
export function run(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; allowFailure?: boolean; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(command, args, {
      cwd: opts.cwd ?? ROOT,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout = (stdout + c.toString()).slice(-200_000)));
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code, stdout, stderr, seconds: (performance.now() - t0) / 1000 };
      if ((code !== 0 || signal) && !opts.allowFailure) {
        fail(
          new Error(
            `${command} ${args.join(' ')} ${signal ? `killed by ${signal}` : `exited ${code}`}:\n${stderr.slice(-3000)}${stdout.slice(-1000)}`,
          ),
        );
      } else done(result);
    });
  });
}

export function have(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v "${command}"`], { stdio: 'ignore' }).status === 0;
}

export function versionOf(command: string, args: string[]): string {
  try {
    const r = spawnSync(command, args, { encoding: 'utf8', timeout: 20_000 });
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

let aptUpdated = false;

/** Installs Debian packages whose command is missing: `apt-get install`, once more after `apt-get update`. */
export async function ensureApt(wanted: { command: string; pkg: string }[], log: (s: string) => void) {
  const missing = wanted.filter((w) => !have(w.command));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((m) => m.pkg))];
  log(`installing with apt: ${pkgs.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { env });
  try {
    await install();
  } catch {
    if (aptUpdated) throw new Error(`apt-get install ${pkgs.join(' ')} failed`);
    aptUpdated = true;
    await run('apt-get', ['update'], { env, timeoutMs: 300_000 });
    await install();
  }
  const still = missing.filter((m) => !have(m.command));
  if (still.length) throw new Error(`still missing after apt: ${still.map((s) => s.command).join(' ')}`);
}
export { freePort } from '../../test/storage/s3-server.ts';

/**
 * Runs a bench script's `main`, then `cleanup` whatever happened: on success, on an error (printed,
 * exit code 1), on SIGINT/SIGTERM (exit 130), and when it runs longer than `timeoutMs` (exit 1), so
 * no registry, proxy or MinIO it started outlives it.
 */
export async function runScript(
  main: () => Promise<void>,
  cleanup: () => Promise<void>,
  timeoutMs: number,
): Promise<void> {
  const timer = setTimeout(() => {
    process.stderr.write(`bench: gave up after ${timeoutMs} ms\n`);
    void cleanup().finally(() => process.exit(1));
  }, timeoutMs);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void cleanup().finally(() => process.exit(130)));
  }
  try {
    await main();
  } catch (err) {
    process.exitCode = 1;
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  } finally {
    await cleanup();
    clearTimeout(timer);
  }
}

/** A process a bench script started, with the tail of its output. */
export interface Launched {
  readonly child: ChildProcess;
  output(): string;
}

/**
 * What a bench script started (registries, proxies, MinIO, temporary directories), so that its
 * cleanup (`runScript`) stops and removes all of it whatever happened.
 */
export class Started {
  children: ChildProcess[] = [];
  proxies: { close(): Promise<void> }[] = [];
  dirs: string[] = [];
  s3: { stop(): Promise<void> } | undefined;

  /** Spawns `command` in the project root, keeping the last 4,000 characters of its output. */
  launch(command: string, args: string[], env: NodeJS.ProcessEnv): Launched {
    const child = spawn(command, args, { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    let output = '';
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    return { child, output: () => output };
  }

  /** Waits until `url`/v2/ answers 200; fails with the process's output if it exits or `timeoutMs` passes. */
  async waitReady(url: string, proc: Launched, name: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (proc.child.exitCode !== null) throw new Error(`${name} exited:\n${proc.output()}`);
      const status = await fetch(`${url}/v2/`).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) return;
      await sleep(100);
    }
    throw new Error(`${name} did not answer /v2/ within ${timeoutMs} ms:\n${proc.output()}`);
  }

  /** Stops every process (SIGTERM, SIGKILL after 5 s), proxy and MinIO, and removes the directories. */
  async cleanup(): Promise<void> {
    await Promise.all(this.children.map(stopProcess));
    await Promise.all(this.proxies.map((p) => p.close()));
    await this.s3?.stop();
    await Promise.all(this.dirs.map((d) => rm(d, { recursive: true, force: true })));
    this.children = [];
    this.proxies = [];
    this.dirs = [];
    this.s3 = undefined;
  }
}

/** SIGTERM, then SIGKILL if the process has not exited after 5 s. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
