import { describe, expect, it } from 'vitest';
import { errorResponse } from '../../lib/http/errors.ts';
import { createLogger, type Logger } from '../../lib/logging/logger.ts';
import { parseDigest } from '../../lib/oci/digest.ts';
import { RegistryError } from '../../lib/oci/errors.ts';
import { parseName, parseTag } from '../../lib/oci/names.ts';
import {
  BlobBeingVerified,
  BlobDataMissing,
  BlobTooLarge,
  BlobUnknown,
  BlobUnsettled,
  BodyLengthMismatch,
  BodyTooLong,
  ChunkOutOfOrder,
  DigestMismatch,
  DirectPartsInvalid,
  DirectUnsupported,
  IndexEntryUnknown,
  IndexManifestUnknown,
  ManifestBlobUnknown,
  ManifestCheckExpired,
  ManifestUnknown,
  RepositoryUnknown,
  TagImmutable,
  TooManyTags,
  UploadAlreadyCompleted,
  UploadBusy,
  UploadCancelConflict,
  UploadCancelled,
  UploadChanged,
  UploadDataLost,
  UploadDataVanished,
  UploadQuotaExceeded,
  UploadUnknown,
  UploadVerificationFailed,
  UploadVerifying,
  UploadWrongKind,
  type DomainError,
} from '../../lib/registry/errors.ts';
import { StorageUnavailable } from '../../lib/storage/port.ts';
import { testRegistry } from './harness.ts';

// What a client is told for each failure the registry raises (lib/registry/errors.ts), as
// lib/http/errors.ts maps it. The messages are the ones clients were given before the failures
// became domain errors; every kind must have a row (the record's type says so).

const repo = parseName('team/app');
const digest = parseDigest(`sha256:${'a'.repeat(64)}`);
const other = `sha256:${'b'.repeat(64)}`;
const id = '3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b';

interface Expected {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly detail?: unknown;
  readonly headers?: Record<string, string>;
}

type Row = readonly [DomainError, Expected];

const rows: { readonly [K in DomainError['kind']]: readonly Row[] } = {
  'blob-unknown': [
    [
      new BlobUnknown(repo, digest),
      {
        status: 404,
        code: 'BLOB_UNKNOWN',
        message: `blob ${digest.digest} is not known to repository team/app`,
      },
    ],
  ],
  'blob-data-missing': [
    [
      new BlobDataMissing(digest),
      {
        status: 404,
        code: 'BLOB_UNKNOWN',
        message: `the data of blob ${digest.digest} is missing from storage`,
      },
    ],
  ],
  'blob-unsettled': [
    [
      new BlobUnsettled(digest),
      {
        status: 503,
        code: 'UNAVAILABLE',
        message: `blob ${digest.digest} kept changing while being stored; retry`,
      },
    ],
  ],
  'blob-too-large': [
    [
      new BlobTooLarge(1000),
      { status: 413, code: 'SIZE_INVALID', message: "blob exceeds this registry's limit of 1000 bytes" },
    ],
    [
      new BlobTooLarge(1000, 1500),
      {
        status: 413,
        code: 'SIZE_INVALID',
        message: "blob of 1500 bytes exceeds this registry's limit of 1000 bytes; nothing was stored",
      },
    ],
  ],
  'digest-mismatch': [
    [
      new DigestMismatch('upload', digest.digest, other),
      {
        status: 400,
        code: 'DIGEST_INVALID',
        message: `uploaded content has digest ${other}, not ${digest.digest}; nothing was stored`,
      },
    ],
    [
      new DigestMismatch('manifest', digest.digest, other),
      {
        status: 400,
        code: 'DIGEST_INVALID',
        message: `manifest content has digest ${other}, not ${digest.digest} as in the URL`,
      },
    ],
  ],
  'manifest-unknown': [
    [
      new ManifestUnknown(repo, { kind: 'tag', tag: parseTag('v1') }),
      { status: 404, code: 'MANIFEST_UNKNOWN', message: 'tag v1 is not in repository team/app' },
    ],
    [
      new ManifestUnknown(repo, { kind: 'digest', digest }),
      {
        status: 404,
        code: 'MANIFEST_UNKNOWN',
        message: `manifest ${digest.digest} is not in repository team/app`,
      },
    ],
  ],
  'manifest-blob-unknown': [
    [
      new ManifestBlobUnknown(repo, other, 'application/vnd.oci.image.layer.v1.tar+gzip'),
      {
        status: 400,
        code: 'MANIFEST_BLOB_UNKNOWN',
        message: `blob ${other} (application/vnd.oci.image.layer.v1.tar+gzip) is not in repository team/app; push it before the manifest`,
        detail: { digest: other },
      },
    ],
  ],
  'index-manifest-unknown': [
    [
      new IndexManifestUnknown(repo, other),
      {
        status: 400,
        code: 'MANIFEST_BLOB_UNKNOWN',
        message: `manifest ${other} listed in the index is not in repository team/app; push it before the index`,
        detail: { digest: other },
      },
    ],
  ],
  'index-entry-unknown': [
    [
      new IndexEntryUnknown(repo, other, 'application/vnd.buildkit.cacheconfig.v0'),
      {
        status: 400,
        code: 'MANIFEST_BLOB_UNKNOWN',
        message: `index entry ${other} (application/vnd.buildkit.cacheconfig.v0) names neither a manifest nor a blob in repository team/app; push it before the index`,
        detail: { digest: other, mediaType: 'application/vnd.buildkit.cacheconfig.v0' },
      },
    ],
  ],
  'blob-being-verified': [
    [
      new BlobBeingVerified(repo, other, 'manifest'),
      {
        status: 400,
        code: 'MANIFEST_BLOB_UNKNOWN',
        message: `blob ${other} was uploaded directly and its content is still being verified; push the manifest again once HEAD /v2/team/app/blobs/${other} answers 200`,
        detail: { digest: other, verification: 'in progress' },
      },
    ],
    [
      new BlobBeingVerified(repo, other, 'index'),
      {
        status: 400,
        code: 'MANIFEST_BLOB_UNKNOWN',
        message: `blob ${other} was uploaded directly and its content is still being verified; push the index again once HEAD /v2/team/app/blobs/${other} answers 200`,
        detail: { digest: other, verification: 'in progress' },
      },
    ],
  ],
  'manifest-check-expired': [
    [
      new ManifestCheckExpired(),
      {
        status: 503,
        code: 'UNAVAILABLE',
        message:
          "checking the manifest's blobs took too long for them to be trusted still to exist; push the manifest again",
      },
    ],
  ],
  'too-many-tags': [
    [
      new TooManyTags(120, 100, 2000, 100, 64 * 1024 * 1024),
      {
        status: 400,
        code: 'TAG_INVALID',
        message:
          'this manifest PUT names 120 tags; at most 100 are allowed per request for a manifest of 2000 bytes (each tag keeps a copy of it: at most 100 tags and 64 MiB of copies); push the others in further requests',
        detail: { tags: 120, allowed: 100 },
      },
    ],
  ],
  'tag-immutable': [
    [
      new TagImmutable(repo, parseTag('v1'), other, 'team/*:v*'),
      {
        status: 400,
        code: 'TAG_INVALID',
        message: `tag v1 of repository team/app is immutable (rule "team/*:v*" in BERTH_IMMUTABLE_TAGS) and already points to ${other}; push this image under a new tag, e.g. a new version`,
        detail: { tag: 'v1', current: other, rule: 'team/*:v*' },
      },
    ],
  ],
  'repository-unknown': [
    [
      new RepositoryUnknown(repo),
      { status: 404, code: 'NAME_UNKNOWN', message: 'repository team/app is not known to this registry' },
    ],
  ],
  'upload-unknown': [
    [
      new UploadUnknown(repo, id),
      {
        status: 404,
        code: 'BLOB_UPLOAD_UNKNOWN',
        message: `upload ${id} is not in progress in repository team/app`,
      },
    ],
    [
      new UploadUnknown(repo, 'x'.repeat(100)),
      {
        status: 404,
        code: 'BLOB_UPLOAD_UNKNOWN',
        message: `upload ${'x'.repeat(64)} is not in progress in repository team/app`,
      },
    ],
  ],
  'upload-cancelled': [
    [
      new UploadCancelled(id, true),
      {
        status: 404,
        code: 'BLOB_UPLOAD_UNKNOWN',
        message: 'the upload was cancelled while this request ran',
      },
    ],
    [
      new UploadCancelled(id, false),
      { status: 404, code: 'BLOB_UPLOAD_UNKNOWN', message: `upload ${id} was cancelled; start again` },
    ],
  ],
  'upload-data-lost': [
    [
      new UploadDataLost(id),
      {
        status: 404,
        code: 'BLOB_UPLOAD_UNKNOWN',
        message: 'the upload session lost its buffered bytes; start the upload again',
      },
    ],
  ],
  'upload-data-vanished': [
    [
      new UploadDataVanished(id),
      { status: 503, code: 'UNAVAILABLE', message: 'the uploaded data vanished before it could be verified' },
    ],
  ],
  'upload-busy': [
    [
      new UploadBusy(id, 300),
      {
        status: 416,
        code: 'BLOB_UPLOAD_INVALID',
        message:
          'another request is writing to this upload session; retry from the offset in the Range header',
        detail: { offset: 300 },
      },
    ],
    [
      new UploadBusy(id),
      {
        status: 416,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'another request is writing to this upload; retry',
      },
    ],
  ],
  'upload-changed': [
    [
      new UploadChanged(id),
      {
        status: 416,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'the upload session was changed by another request; retry',
      },
    ],
    [
      new UploadChanged(id, true),
      { status: 416, code: 'BLOB_UPLOAD_INVALID', message: 'the upload changed while opening it; retry' },
    ],
  ],
  'chunk-out-of-order': [
    [
      new ChunkOutOfOrder(id, 200, 100),
      {
        status: 416,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'chunk starts at byte 200 but the upload has 100 bytes; send the chunk starting at 100',
        detail: { offset: 100 },
      },
    ],
  ],
  'upload-cancel-conflict': [
    [
      new UploadCancelConflict(id),
      {
        status: 409,
        code: 'BLOB_UPLOAD_INVALID',
        message:
          'another request is writing to or completing this upload; cancel it once that request has ended',
      },
    ],
  ],
  'upload-verifying': [
    [
      new UploadVerifying(id),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'the upload is complete and its content is being verified; it cannot be cancelled now',
      },
    ],
  ],
  'body-too-long': [
    [
      new BodyTooLong(10),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'request body is longer than the 10 bytes announced',
      },
    ],
  ],
  'body-length-mismatch': [
    [
      new BodyLengthMismatch(10, 7),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'request body has 7 bytes but 10 were announced; resend it',
      },
    ],
    [
      new BodyLengthMismatch(10),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'request body has more than 10 bytes but 10 were announced; resend it',
      },
    ],
  ],
  'upload-quota-exceeded': [
    [
      new UploadQuotaExceeded('address:10.0.0.1', 'sessions', 5, 5),
      {
        status: 429,
        code: 'TOOMANYREQUESTS',
        message:
          'address 10.0.0.1 has 5 upload sessions open, the most one client may hold (BERTH_UPLOAD_SESSIONS_PER_CLIENT): finish or cancel uploads in progress, or wait for abandoned ones to expire (BERTH_UPLOAD_TTL)',
        headers: { 'Retry-After': '60' },
      },
    ],
    [
      new UploadQuotaExceeded('account:', 'bytes', 12000, 10000),
      {
        status: 429,
        code: 'TOOMANYREQUESTS',
        message:
          'account (anonymous) has 12000 bytes in open upload sessions, more than one client may hold (10000, BERTH_UPLOAD_BYTES_PER_CLIENT): finish or cancel uploads in progress, or wait for abandoned ones to expire (BERTH_UPLOAD_TTL)',
        headers: { 'Retry-After': '60' },
      },
    ],
  ],
  'direct-unsupported': [
    [
      new DirectUnsupported('filesystem'),
      {
        status: 405,
        code: 'UNSUPPORTED',
        message:
          'direct uploads need the S3 store: this registry stores blobs on filesystem, which cannot sign upload URLs; upload through the registry (PATCH and PUT) instead',
      },
    ],
  ],
  'upload-wrong-kind': [
    [
      new UploadWrongKind(repo, id, 'direct'),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: `upload ${id} is a direct upload: its parts go to the presigned URLs and it is completed with POST /v2/team/app/_berth/v1/uploads/${id}/complete (docs/upload-extension.md)`,
      },
    ],
    [
      new UploadWrongKind(repo, id, 'chunked'),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message:
          'this upload already received bytes through the registry (PATCH); start a new upload for a direct one',
      },
    ],
    [
      new UploadWrongKind(repo, id, 'not-direct'),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: `upload ${id} has no direct parts: ask for part URLs (POST …/_berth/v1/uploads/${id}/parts) and upload them first`,
      },
    ],
  ],
  'upload-already-completed': [
    [
      new UploadAlreadyCompleted(id, other),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: `the upload was already completed with digest ${other}`,
      },
    ],
    [
      new UploadAlreadyCompleted(id),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'the upload is already completed; start a new one',
      },
    ],
  ],
  'upload-verification-failed': [
    [
      new UploadVerificationFailed(
        id,
        `uploaded content has digest ${other}, not ${digest.digest}; nothing was stored`,
      ),
      {
        status: 400,
        code: 'DIGEST_INVALID',
        message: `uploaded content has digest ${other}, not ${digest.digest}; nothing was stored`,
      },
    ],
  ],
  'direct-parts-invalid': [
    [
      new DirectPartsInvalid({ problem: 'count', requested: 1001, max: 1000 }),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'ask for 1 to 1000 part URLs at a time, not 1001',
      },
    ],
    [
      new DirectPartsInvalid({ problem: 'number', value: '123456789012345678901234', max: 10000 }),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'part number 12345678901234567890 is outside 1..10000',
      },
    ],
    [
      new DirectPartsInvalid({ problem: 'none' }),
      { status: 400, code: 'BLOB_UPLOAD_INVALID', message: 'no parts have been uploaded yet' },
    ],
    [
      new DirectPartsInvalid({ problem: 'missing', partNumber: 2 }),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'part 2 is missing (the parts must be numbered 1..n); upload it, then complete again',
      },
    ],
    [
      new DirectPartsInvalid({ problem: 'too-small', partNumber: 1, size: 100, min: 5242880 }),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message: 'part 1 has 100 bytes: every part but the last needs at least 5242880; upload it again',
      },
    ],
    [
      new DirectPartsInvalid({ problem: 'size', size: 900, announced: 1000, parts: 2 }),
      {
        status: 400,
        code: 'BLOB_UPLOAD_INVALID',
        message:
          'the uploaded parts hold 900 bytes, not the 1000 announced; upload the missing or failed parts, then complete again',
        detail: { size: 900, parts: 2 },
      },
    ],
  ],
};

function recordingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger('debug', {}, (line) => lines.push(line)), lines };
}

describe('what a client is told for each registry failure', () => {
  const all = Object.values(rows).flat();

  it.each(
    all.map(([err, expected]) => [`${err.kind}: ${expected.message.slice(0, 60)}`, err, expected] as const),
  )('%s', async (_name, err, expected) => {
    const { logger, lines } = recordingLogger();
    const res = errorResponse(err, 'GET', logger);
    expect(res.status).toBe(expected.status);
    expect(res.headers.get('Content-Type')).toBe('application/json; charset=utf-8');
    for (const [name, value] of Object.entries(expected.headers ?? {}))
      expect(res.headers.get(name)).toBe(value);
    if (!expected.headers) expect(res.headers.get('Retry-After')).toBeNull();
    const body = await res.text();
    expect(res.headers.get('Content-Length')).toBe(String(Buffer.byteLength(body)));
    expect(JSON.parse(body)).toEqual({
      errors: [
        {
          code: expected.code,
          message: expected.message,
          ...(expected.detail !== undefined && { detail: expected.detail }),
        },
      ],
    });
    // A client's mistake or a lost race is not a server fault: nothing is logged as an error.
    expect(lines).toEqual([]);
  });

  it('none of the failures carries an HTTP status or a spec error code, and each is named by its kind', () => {
    for (const [err] of all) {
      expect(err).not.toHaveProperty('status');
      expect(err).not.toHaveProperty('code');
      // What logs call it (describeError), the same in a minified bundle.
      expect(err.name).toBe(err.kind);
    }
  });

  it('passes spec errors through as they are, and turns anything else into a logged 500 or 503', async () => {
    const { logger, lines } = recordingLogger();
    const spec = errorResponse(new RegistryError('NAME_INVALID', 'bad name'), 'GET', logger);
    expect(spec.status).toBe(400);
    expect(await spec.json()).toEqual({ errors: [{ code: 'NAME_INVALID', message: 'bad name' }] });
    const fault = errorResponse(new Error('disk on fire'), 'GET', logger);
    expect(fault.status).toBe(500);
    expect(((await fault.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNKNOWN');
    const down = errorResponse(new StorageUnavailable('s3 throttled'), 'HEAD', logger);
    expect(down.status).toBe(503);
    expect(await down.text()).toBe('');
    expect(lines.map((line) => (JSON.parse(line) as { level: string }).level)).toEqual(['error', 'warn']);
  });
});

describe('416 answers to upload requests', () => {
  it('carry where the session stands, for a malformed Content-Range as for a chunk at the wrong offset', async () => {
    const r = testRegistry();
    const started = await r.request('/v2/foo/blobs/uploads/', { method: 'POST' });
    const location = started.headers.get('Location')!;
    const patch = (range: string, size: number) =>
      r.request(location, {
        method: 'PATCH',
        body: new Uint8Array(size),
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': range },
      });
    expect((await patch('0-99', 100)).status).toBe(202);
    const malformed = await patch('bytes=9-x', 10);
    expect(malformed.status).toBe(416);
    expect(((await malformed.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(
      'BLOB_UPLOAD_INVALID',
    );
    expect(malformed.headers.get('Range')).toBe('0-99');
    expect(malformed.headers.get('Location')).toMatch(/^\/v2\/foo\/blobs\/uploads\//);
    const late = await patch('200-209', 10);
    expect(late.status).toBe(416);
    expect(late.headers.get('Range')).toBe('0-99');
    expect(((await late.json()) as { errors: { detail: unknown }[] }).errors[0]!.detail).toEqual({
      offset: 100,
    });
  });
});
