import { RegistryError, isRegistryError } from '../oci/errors.ts';
import { describeError, type Logger } from '../logging/logger.ts';
import { StorageUnavailable } from '../storage/port.ts';

/** Renders any error as the spec's JSON error body; unexpected ones are logged and become 500s. */
export function errorResponse(
  err: unknown,
  method: string,
  log: Logger,
  headers: Record<string, string> = {},
): Response {
  const error = toRegistryError(err, log);
  const body = method === 'HEAD' ? null : errorBody(error);
  return new Response(body, {
    status: error.status,
    headers: {
      'Content-Type': 'application/json; charset=utf-8',
      ...(body === null ? {} : { 'Content-Length': String(Buffer.byteLength(body)) }),
      ...error.headers,
      ...headers,
    },
  });
}

/** The spec's JSON error body: `{"errors":[{"code","message","detail"}]}`. */
export function errorBody(error: RegistryError): string {
  return JSON.stringify({
    errors: [
      {
        code: error.code,
        message: error.message,
        ...(error.detail !== undefined ? { detail: error.detail } : {}),
      },
    ],
  });
}

function toRegistryError(err: unknown, log: Logger): RegistryError {
  if (isRegistryError(err)) return err;
  if (err instanceof StorageUnavailable) {
    log.warn('storage unavailable', describeError(err));
    return new RegistryError('UNAVAILABLE', 'the storage backend is unavailable; retry shortly');
  }
  log.error('unexpected error', describeError(err));
  return new RegistryError(
    'UNKNOWN',
    'internal error; the request id in X-Request-Id identifies it in the logs',
  );
}
