/**
 * The error codes of the OCI Distribution Spec (plus the few Docker-era codes clients still parse),
 * each with the HTTP status it is answered with. Lib code throws RegistryError; lib/http renders it
 * once as `{"errors":[{code,message,detail}]}`.
 */
export const ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  TAG_INVALID: 400,
  RANGE_INVALID: 416,
  PAGINATION_NUMBER_INVALID: 400,
  UNAVAILABLE: 503,
  UNKNOWN: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Response headers that help the client recover (e.g. an upload's Range after a 416). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { status?: number; detail?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'RegistryError';
    this.code = code;
    this.status = options.status ?? ERROR_STATUS[code];
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }

  withHeaders(headers: Record<string, string>): RegistryError {
    return new RegistryError(this.code, this.message, {
      status: this.status,
      detail: this.detail,
      headers: { ...this.headers, ...headers },
    });
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}
