import { RegistryError, isRegistryError } from '../oci/errors.ts';
import { describeError, type Logger } from '../logging/logger.ts';
import { StorageUnavailable } from '../storage/port.ts';
import { isDomainError, type DomainError } from '../registry/errors.ts';

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

/**
 * The spec error a client gets for `err`: a spec error as it is, a registry failure as mapped by
 * `fromDomain`; undefined for anything else (a fault, not the client's: see `errorResponse`).
 */
export function specErrorOf(err: unknown): RegistryError | undefined {
  if (isRegistryError(err)) return err;
  if (isDomainError(err)) return fromDomain(err);
  return undefined;
}

/**
 * The one place where what went wrong in the registry becomes what a client is told: the spec's
 * error code (and the status the spec gives it, unless noted), the detail, the headers that help it
 * recover, and the message, written here where it names HTTP things (URLs, methods, headers) and
 * otherwise the failure's own. The `never` at the end makes a new kind of failure a compile error
 * until it is mapped here.
 */
export function fromDomain(err: DomainError): RegistryError {
  switch (err.kind) {
    case 'blob-unknown':
    case 'blob-data-missing':
      return new RegistryError('BLOB_UNKNOWN', err.message);
    case 'blob-unsettled':
    case 'manifest-check-expired':
    case 'upload-data-vanished':
      return new RegistryError('UNAVAILABLE', err.message);
    case 'blob-too-large':
      return new RegistryError('SIZE_INVALID', err.message, { status: 413 });
    case 'digest-mismatch':
      return new RegistryError(
        'DIGEST_INVALID',
        err.subject === 'manifest' ? `${err.message} as in the URL` : err.message,
      );
    case 'upload-verification-failed':
      return new RegistryError('DIGEST_INVALID', err.message);
    case 'manifest-unknown':
      return new RegistryError('MANIFEST_UNKNOWN', err.message);
    case 'manifest-blob-unknown':
    case 'index-manifest-unknown':
      return new RegistryError('MANIFEST_BLOB_UNKNOWN', err.message, { detail: { digest: err.digest } });
    case 'index-entry-unknown':
      return new RegistryError('MANIFEST_BLOB_UNKNOWN', err.message, {
        detail: { digest: err.digest, mediaType: err.mediaType },
      });
    case 'blob-being-verified':
      return new RegistryError(
        'MANIFEST_BLOB_UNKNOWN',
        `${err.message}; push the ${err.pushing} again once HEAD /v2/${err.repo}/blobs/${err.digest} answers 200`,
        { detail: { digest: err.digest, verification: 'in progress' } },
      );
    case 'too-many-tags':
      return new RegistryError(
        'TAG_INVALID',
        `this manifest PUT names ${err.tags} tags; at most ${err.allowed} are allowed per request for a manifest of ${err.manifestSize} bytes (each tag keeps a copy of it: at most ${err.maxTags} tags and ${err.maxTagBytes / 1048576} MiB of copies); push the others in further requests`,
        { detail: { tags: err.tags, allowed: err.allowed } },
      );
    case 'tag-immutable':
      return new RegistryError('TAG_INVALID', err.message, {
        detail: { tag: err.tag, current: err.current, rule: err.rule },
      });
    case 'repository-unknown':
      return new RegistryError('NAME_UNKNOWN', err.message);
    case 'upload-unknown':
    case 'upload-cancelled':
    case 'upload-data-lost':
      return new RegistryError('BLOB_UPLOAD_UNKNOWN', err.message);
    // Lost races: 416, so that the client asks where the session stands (routes/uploads.ts adds it).
    case 'upload-busy':
      return err.offset === undefined
        ? new RegistryError('BLOB_UPLOAD_INVALID', err.message, { status: 416 })
        : new RegistryError(
            'BLOB_UPLOAD_INVALID',
            `${err.message}; retry from the offset in the Range header`,
            {
              status: 416,
              detail: { offset: err.offset },
            },
          );
    case 'upload-changed':
      return new RegistryError('BLOB_UPLOAD_INVALID', err.message, { status: 416 });
    case 'chunk-out-of-order':
      return new RegistryError('BLOB_UPLOAD_INVALID', err.message, {
        status: 416,
        detail: { offset: err.offset },
      });
    case 'upload-cancel-conflict':
      return new RegistryError('BLOB_UPLOAD_INVALID', err.message, { status: 409 });
    case 'upload-verifying':
    case 'upload-already-completed':
      return new RegistryError('BLOB_UPLOAD_INVALID', err.message);
    case 'direct-parts-invalid':
      return new RegistryError(
        'BLOB_UPLOAD_INVALID',
        err.message,
        err.part.problem === 'size' ? { detail: { size: err.part.size, parts: err.part.parts } } : {},
      );
    case 'body-too-long':
      return new RegistryError(
        'BLOB_UPLOAD_INVALID',
        `request body is longer than the ${err.announced} bytes announced`,
      );
    case 'body-length-mismatch':
      return new RegistryError(
        'BLOB_UPLOAD_INVALID',
        `request body has ${err.received ?? `more than ${err.announced}`} bytes but ${err.announced} were announced; resend it`,
      );
    case 'upload-quota-exceeded':
      return new RegistryError('TOOMANYREQUESTS', err.message, { headers: { 'Retry-After': '60' } });
    case 'upload-wrong-kind':
      return new RegistryError('BLOB_UPLOAD_INVALID', wrongKindMessage(err));
    case 'direct-unsupported':
      return new RegistryError(
        'UNSUPPORTED',
        `${err.message}; upload through the registry (PATCH and PUT) instead`,
      );
    default:
      return unmapped(err);
  }
}

function wrongKindMessage(err: Extract<DomainError, { kind: 'upload-wrong-kind' }>): string {
  switch (err.is) {
    case 'direct':
      return `upload ${err.id} is a direct upload: its parts go to the presigned URLs and it is completed with POST /v2/${err.repo}/_berth/v1/uploads/${err.id}/complete (docs/upload-extension.md)`;
    case 'chunked':
      return 'this upload already received bytes through the registry (PATCH); start a new upload for a direct one';
    case 'not-direct':
      return `upload ${err.id} has no direct parts: ask for part URLs (POST …/_berth/v1/uploads/${err.id}/parts) and upload them first`;
    case 'object':
      return `upload ${err.id} takes one checked PUT of the whole blob (POST /v2/${err.repo}/_berth/v1/uploads/${err.id}/object), not parts; start a new upload to send parts`;
    case 'parts':
      return `upload ${err.id} already takes parts (POST /v2/${err.repo}/_berth/v1/uploads/${err.id}/parts); start a new upload for a checked PUT`;
  }
}

/** Unreachable while every kind is mapped above (the argument's type is then `never`). */
function unmapped(err: never): RegistryError {
  return new RegistryError('UNKNOWN', `internal error: unmapped registry failure ${(err as Error).name}`);
}

function toRegistryError(err: unknown, log: Logger): RegistryError {
  const spec = specErrorOf(err);
  if (spec) return spec;
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
