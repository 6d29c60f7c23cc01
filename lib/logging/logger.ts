export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFields = Record<string, unknown>;

/** One JSON object per line, to stdout: what CloudWatch and `jq` read best. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export function createLogger(
  level: LogLevel,
  base: LogFields = {},
  write: (line: string) => void = (line) => process.stdout.write(line + '\n'),
): Logger {
  const emit = (at: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields) => {
    if (RANK[at] < RANK[level]) return;
    const record = { ...base, ...fields, time: new Date().toISOString(), level: at, msg };
    try {
      write(JSON.stringify(record));
    } catch {
      write(
        JSON.stringify({ time: record.time, level: at, msg, logError: 'fields could not be serialized' }),
      );
    }
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}

/** What may be logged of an unexpected error: its kind and message, never a stack or a request body. */
export function describeError(err: unknown): LogFields {
  if (err instanceof Error) return { error: err.name, errorMessage: err.message.slice(0, 500) };
  return { error: typeof err };
}
