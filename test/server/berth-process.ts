import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach } from 'vitest';
import { ENV_VARS } from '../../lib/config/sources.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSX = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url));

export type LogRecord = Record<string, unknown>;

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** `berth` run as a user runs it (`tsx bin/berth.ts ...`), its stdout read as JSON log lines. */
export class BerthProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  stdout = '';
  stderr = '';
  private readonly waiters = new Set<() => void>();

  constructor(args: readonly string[], env: Record<string, string> = {}) {
    // The environment of the test run must not leak into the server's configuration.
    const inherited = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !(name in ENV_VARS) && !name.startsWith('BERTH_')),
    );
    this.child = spawn(TSX, ['bin/berth.ts', ...args], {
      cwd: ROOT,
      env: { ...inherited, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so that cleanup can reach tsx's child process too.
      detached: true,
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      this.notify();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.notify();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        resolve({ code, signal });
        this.notify();
      });
    });
  }

  /** Complete stdout lines so far. */
  get lines(): string[] {
    return this.stdout.split('\n').slice(0, -1);
  }

  /** Stdout lines parsed as JSON (throws if one is not JSON). */
  get records(): LogRecord[] {
    return this.lines.map((line) => JSON.parse(line) as LogRecord);
  }

  /** Resolves with the first log record matching `match`; rejects after `timeoutMs` or at exit. */
  async waitForRecord(match: (record: LogRecord) => boolean, timeoutMs = 10_000): Promise<LogRecord> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines
        .map((line) => tryJson(line))
        .find((record) => record !== undefined && match(record));
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `berth exited before logging the record; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `no matching log record in ${timeoutMs} ms; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
        );
      }
      await this.change(deadline - Date.now());
    }
  }

  /** The URL from the `berth listening` log line. */
  async url(): Promise<string> {
    const record = await this.waitForRecord((r) => r.msg === 'berth listening');
    return String(record.url);
  }

  /** Resolves at exit; rejects if it takes longer than `timeoutMs`. */
  async exit(timeoutMs = 10_000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`berth did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Kills the whole process group, if it is still there. */
  async kill(): Promise<void> {
    if (this.child.pid === undefined || this.child.exitCode !== null || this.child.signalCode !== null)
      return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await this.exited;
  }

  private change(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      this.waiters.add(done);
    });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/**
 * For a test file: `berth(args, env)` starts a BerthProcess that is killed after the test, and
 * `tempDir()` makes a directory (named `<dirPrefix>...`) that is removed after the file.
 */
export function berthProcesses(dirPrefix: string): {
  berth(args: readonly string[], env?: Record<string, string>): BerthProcess;
  tempDir(): string;
} {
  const processes: BerthProcess[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(processes.splice(0).map((p) => p.kill()));
  });
  afterAll(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return {
    berth(args, env = {}) {
      const process = new BerthProcess(args, env);
      processes.push(process);
      return process;
    },
    tempDir() {
      const dir = mkdtempSync(join(tmpdir(), dirPrefix));
      dirs.push(dir);
      return dir;
    },
  };
}

function tryJson(line: string): LogRecord | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as LogRecord) : undefined;
  } catch {
    return undefined;
  }
}
