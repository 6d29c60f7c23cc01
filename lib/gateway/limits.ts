/**
 * The limits of an API Gateway HTTP API in front of a synchronous Lambda, and what AWS answers
 * when one is crossed. Sources and the one unverified choice are in docs/lambda.md.
 */
export const LIMITS = {
  /** HTTP API request body quota: 10 MB. */
  requestBodyBytes: 10 * 1024 * 1024,
  /** Lambda's synchronous invoke request: 6 MB of event JSON (RequestEntityTooLargeException). */
  invokeRequestBytes: 6 * 1024 * 1024,
  /** Lambda's synchronous response: 6 MB plus 100 bytes, measured by AWS users. */
  invokeResponseBytes: 6 * 1024 * 1024 + 100,
  /** HTTP API integration timeout: 30 s. */
  integrationTimeoutMs: 30_000,
} as const;

export interface GatewayError {
  readonly status: number;
  readonly message: string;
}

/** API Gateway's own error bodies: `{"message": ...}`, not the registry's spec errors. */
export const GATEWAY_ERRORS = {
  requestTooLarge: { status: 413, message: 'Request Entity Too Large' },
  invokeRequestTooLarge: { status: 413, message: 'Request Entity Too Large' },
  invokeResponseTooLarge: { status: 502, message: 'Internal Server Error' },
  functionError: { status: 500, message: 'Internal Server Error' },
  timeout: { status: 503, message: 'Service Unavailable' },
} as const satisfies Record<string, GatewayError>;
