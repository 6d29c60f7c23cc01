// Process helpers for the client harness: run a command and fail with a readable message, start a
// long-lived daemon with its output in a log file, and stop what we started by pid (never by name).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Milliseconds before the command is killed (SIGKILL) and the run fails. Default 5 minutes. */
  timeoutMs?: number;
  /** Data written to stdin (stdin is closed either way). */
  input?: string | Buffer;
  /** Do not throw on a non-zero exit; the caller inspects `code`. */
  allowFailure?: boolean;
  /** Called with the child right after it starts (used by the interruption tests). */
  onSpawn?: (child: ChildProcess) => void;
}

export interface RunResult {
  cmd: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

let transcript: string | undefined;

/** Every command run (and its outcome) is appended to this file; useful when a test fails. */
export function setTranscript(file: string | undefined): void {
  transcript = file;
}

export function note(line: string): void {
  if (transcript) appendFileSync(transcript, line + '\n');
}

function quote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

export function commandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map(quote).join(' ');
}

function tail(s: string, lines = 25): string {
  const all = s.trimEnd().split('\n');
  return (all.length > lines ? [`... (${all.length - lines} lines before)`] : [])
    .concat(all.slice(-lines))
    .map((l) => '    ' + l)
    .join('\n');
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly result: RunResult,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

export function describeResult(r: RunResult): string {
  const how = r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
  return (
    `command failed (${how}, ${r.ms} ms): ${r.cmd}\n` +
    (r.stderr.trim() ? `  stderr:\n${tail(r.stderr)}\n` : '') +
    (r.stdout.trim() ? `  stdout:\n${tail(r.stdout)}\n` : '')
  );
}

/** Runs a command with arguments (no shell), capturing stdout and stderr. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const line = commandLine(cmd, args);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    opts.onSpawn?.(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${line}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const r: RunResult = {
        cmd: line,
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ms: Date.now() - started,
      };
      note(`$ ${line}\n  -> ${signal ?? code} in ${r.ms} ms${r.code !== 0 ? '\n' + tail(r.stderr, 10) : ''}`);
      if (timedOut)
        return reject(new CommandError(`timed out after ${timeoutMs} ms: ` + describeResult(r), r));
      if (r.code !== 0 && !opts.allowFailure) return reject(new CommandError(describeResult(r), r));
      resolve(r);
    });
  });
}

/** A free TCP port on 127.0.0.1 (the port can in theory be taken before it is used). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Thrown from a waitFor() check to stop waiting at once (the process being waited for died). */
export class GiveUp extends Error {}

export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (e) {
      if (e instanceof GiveUp) throw e;
      lastError = e instanceof Error ? e.message : String(e);
    }
    await sleep(200);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}`,
  );
}

// ---------------------------------------------------------------- daemons

/**
 * Pids of the daemons this harness started, in a file, so that a later run can stop leftovers of a
 * run that was killed before its teardown (only pids whose command line still matches are signalled).
 */
const pidRegistry = path.join(
  process.env.BERTH_CACHE ?? path.join(process.env.HOME ?? '/tmp', '.cache/berth'),
  'e2e-pids.json',
);

interface PidEntry {
  pid: number;
  cmdline: string;
  /** The harness process that started it; entries of a harness still running are left alone. */
  owner?: number;
}

function readPidRegistry(): PidEntry[] {
  try {
    return JSON.parse(readFileSync(pidRegistry, 'utf8')) as PidEntry[];
  } catch {
    return [];
  }
}

function writePidRegistry(entries: PidEntry[]): void {
  mkdirSync(path.dirname(pidRegistry), { recursive: true });
  writeFileSync(pidRegistry, JSON.stringify(entries));
}

function cmdlineOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return cmdlineOf(pid) !== undefined && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

/** Stops daemons left running by an earlier run that died before its teardown. */
export async function reapLeftovers(): Promise<void> {
  const keep: PidEntry[] = [];
  for (const e of readPidRegistry()) {
    if (e.owner !== undefined && e.owner !== process.pid && isAlive(e.owner)) {
      keep.push(e); // another harness run, still going
    } else if (cmdlineOf(e.pid) === e.cmdline) {
      note(`stopping leftover pid ${e.pid}: ${e.cmdline.replace(/\0/g, ' ')}`);
      await stopPid(e.pid, 10_000, true);
    }
  }
  writePidRegistry(keep);
}

function remember(pid: number): void {
  const cmdline = cmdlineOf(pid);
  if (cmdline === undefined) return;
  writePidRegistry([...readPidRegistry().filter((e) => e.pid !== pid), { pid, cmdline, owner: process.pid }]);
}

function forget(pid: number): void {
  writePidRegistry(readPidRegistry().filter((e) => e.pid !== pid));
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Sends SIGTERM, waits, then SIGKILL. Only ever called with pids this harness started. With
 * `group`, the signals go to the process group the harness created for that daemon (detached
 * spawn), which takes wrappers like `sh -c 'npm start'` down together with the server they run.
 */
export async function stopPid(pid: number, graceMs = 15_000, group = false): Promise<void> {
  const alive = () => (group ? groupAlive(pid) : isAlive(pid));
  if (!alive()) return;
  try {
    process.kill(group ? -pid : pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!alive()) return;
    await sleep(100);
  }
  try {
    process.kill(group ? -pid : pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

export interface Daemon {
  name: string;
  pid: number;
  logFile: string;
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
  /** SIGTERM (then SIGKILL) to the daemon; with `group` to its whole process group. */
  stop(graceMs?: number): Promise<void>;
  /** The end of its log, for error messages. */
  logTail(lines?: number): string;
}

const running = new Set<Daemon>();

process.once('exit', () => {
  // Last resort when the worker exits without running the teardown hooks.
  for (const d of running) {
    try {
      process.kill(-d.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

export function startDaemon(
  name: string,
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; logFile: string; group?: boolean },
): Daemon {
  const fd = openSync(opts.logFile, 'a');
  const child = spawn(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ['ignore', fd, fd],
    // Own process group, so that stop() can take down what the daemon itself started; a Ctrl-C
    // in the terminal reaches only the harness, whose exit handler then kills the group by id.
    detached: true,
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${name}: ${commandLine(cmd, args)}`);
  const pid = child.pid;
  note(`started ${name} pid ${pid}: ${commandLine(cmd, args)} (log ${opts.logFile})`);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const d: Daemon = {
    name,
    pid,
    logFile: opts.logFile,
    child,
    exited,
    async stop(graceMs = 15_000) {
      await stopPid(pid, graceMs, opts.group ?? false);
      await Promise.race([exited, sleep(2_000)]);
      // Whatever the daemon left in the group we created for it (dockerd's containerd, shims).
      if (groupAlive(pid)) await stopPid(pid, 5_000, true);
      running.delete(d);
      forget(pid);
      note(`stopped ${name} pid ${pid}`);
    },
    logTail(lines = 30) {
      return existsSync(opts.logFile) ? tail(readFileSync(opts.logFile, 'utf8'), lines) : '(no log)';
    },
  };
  running.add(d);
  remember(pid);
  return d;
}

/** Whether a binary can be run (found on PATH or given as a path). */
export function have(cmd: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { encoding: 'utf8', env });
  return r.status === 0 && r.stdout.trim() !== '';
}
