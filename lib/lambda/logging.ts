import { AsyncLocalStorage } from 'node:async_hooks';
import { createLogger, type LogFields, type LogLevel, type Logger } from '../logging/logger.ts';

/** The ids of the invocation being served; AsyncLocalStorage, since one process may serve several at once. */
const invocation = new AsyncLocalStorage<LogFields>();

export function withInvocation<T>(fields: LogFields, run: () => T): T {
  return invocation.run(fields, run);
}

/** The ids of the invocation being served, for lines written outside a logger (metrics). */
export function invocationFields(): LogFields {
  return invocation.getStore() ?? {};
}

/**
 * A logger that stamps every line with the current invocation's ids (Lambda's and API Gateway's),
 * including lines written deep in lib/, which only knows the Logger it was given at start.
 */
export function createLambdaLogger(level: LogLevel, write?: (line: string) => void): Logger {
  return scoped(createLogger(level, {}, write));
}

function scoped(inner: Logger): Logger {
  const merge = (fields?: LogFields): LogFields => ({ ...invocation.getStore(), ...fields });
  return {
    debug: (msg, fields) => inner.debug(msg, merge(fields)),
    info: (msg, fields) => inner.info(msg, merge(fields)),
    warn: (msg, fields) => inner.warn(msg, merge(fields)),
    error: (msg, fields) => inner.error(msg, merge(fields)),
    child: (fields) => scoped(inner.child(fields)),
  };
}
