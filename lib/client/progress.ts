import cliProgress from 'cli-progress';
import { formatBytes } from '../logging/format.ts';

export interface BlobProgress {
  bytes(n: number): void;
  part(): void;
  done(summary: { digest: string; size: number; mode: string }): void;
  fail(message: string): void;
}

export interface Progress {
  /** Starts showing one blob; `total` when its size is known (push), not when it streams in (relay). */
  blob(label: string, total?: number): BlobProgress;
  /** A line of its own (the bars, if any, stay below it). */
  log(line: string): void;
  stop(): void;
}

/**
 * Progress on the terminal: live bars (bytes, parts, throughput) when stderr is a TTY, one line per
 * finished blob otherwise (CI logs). Bars only appear for blobs that take more than a moment.
 */
export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return lineProgress(stream);
  const bars = new cliProgress.MultiBar(
    {
      stream,
      hideCursor: true,
      clearOnComplete: true,
      stopOnComplete: false,
      fps: 5,
      format: (options, params, payload: Payload) => {
        const seconds = Math.max(0.001, (Date.now() - params.startTime) / 1000);
        const rate = `${formatBytes(params.value / seconds)}/s`;
        const bar = payload.known
          ? `${cliProgress.Format.BarFormat(params.progress, options)} ${formatBytes(params.value)}/${formatBytes(params.total)}`
          : formatBytes(params.value);
        return `${payload.label} ${bar} | ${payload.parts} parts | ${rate}`;
      },
    },
    cliProgress.Presets.shades_classic,
  );
  return {
    blob(label, total) {
      const started = Date.now();
      let sent = 0;
      let parts = 0;
      let bar: cliProgress.SingleBar | undefined;
      const show = () => {
        if (!bar && Date.now() - started > 500) {
          bar = bars.create(total ?? 1, sent, { label, parts, known: total !== undefined } satisfies Payload);
        }
        if (!bar) return;
        if (total === undefined) bar.setTotal(Math.max(sent, 1));
        bar.update(sent, { label, parts, known: total !== undefined } satisfies Payload);
      };
      const finish = (line: string) => {
        if (bar) bars.remove(bar);
        bars.log(`${line}\n`);
      };
      return {
        bytes(n) {
          sent += n;
          show();
        },
        part() {
          parts++;
          show();
        },
        done: (s) => finish(summaryLine(label, s, started, parts)),
        fail: (message) => finish(`${label}: failed: ${message}`),
      };
    },
    log: (line) => bars.log(`${line}\n`),
    stop: () => bars.stop(),
  };
}

interface Payload {
  label: string;
  parts: number;
  known: boolean;
}

function lineProgress(stream: NodeJS.WritableStream): Progress {
  return {
    blob(label) {
      const started = Date.now();
      let parts = 0;
      return {
        bytes() {},
        part() {
          parts++;
        },
        done: (s) => stream.write(`${summaryLine(label, s, started, parts)}\n`),
        fail: (message) => stream.write(`${label}: failed: ${message}\n`),
      };
    },
    log: (line) => stream.write(`${line}\n`),
    stop() {},
  };
}

function summaryLine(
  label: string,
  s: { digest: string; size: number; mode: string },
  started: number,
  parts: number,
): string {
  const seconds = (Date.now() - started) / 1000;
  const rate = seconds > 0 ? `, ${formatBytes(s.size / seconds)}/s` : '';
  const how =
    s.mode === 'direct'
      ? `${parts} parts straight to storage`
      : s.mode === 'checked'
        ? 'one PUT straight to storage, checked there'
        : s.mode;
  return `${label}: pushed ${s.digest.slice(0, 19)} ${formatBytes(s.size)} in ${seconds.toFixed(1)} s (${how}${rate})`;
}
