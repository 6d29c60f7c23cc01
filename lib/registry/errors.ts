import type { ParsedDigest } from '../oci/digest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';

/**
 * What can go wrong in the registry's domain. Each failure is named for what happened (a blob unknown
 * to a repository, an upload another request is writing to, a blob over the size limit, ...) and
 * carries the facts of it (repository, digest, upload id, sizes). None carries an HTTP status, a spec
 * error code or a URL: lib/http/errors.ts maps every kind to the spec's status, code, detail and
 * headers in one switch that the compiler checks for exhaustiveness, and writes the client's message
 * itself where it names HTTP things (a URL to poll, a method, a header to read). Elsewhere the
 * message is the one written here, in domain terms; logs and the CLI show it as it is.
 *
 * What a client sent that does not parse (a malformed digest, name or manifest) fails in lib/oci's
 * parsers, which raise the spec's own errors (`RegistryError`: code and status are the spec's facts
 * about a parse); lib/http passes those on as they are, also when the registry called the parser (a
 * manifest PUT). `npm run lint:imports` keeps lib/registry from raising them itself.
 */
abstract class Failure extends Error {
  abstract readonly kind: string;

  /** Logs name the failure by its kind (describeError logs `name`): minified bundles rename classes. */
  override get name(): string {
    return this.kind;
  }
}

// Blobs

export class BlobUnknown extends Failure {
  readonly kind = 'blob-unknown';
  constructor(
    readonly repo: RepositoryName,
    readonly digest: ParsedDigest,
  ) {
    super(`blob ${digest.digest} is not known to repository ${repo}`);
  }
}

/** The blob (or its link) names data that is not in the store. */
export class BlobDataMissing extends Failure {
  readonly kind = 'blob-data-missing';
  constructor(readonly digest: ParsedDigest) {
    super(`the data of blob ${digest.digest} is missing from storage`);
  }
}

/** Storing the blob lost every race with writers and removers of the same blob; a retry may pass. */
export class BlobUnsettled extends Failure {
  readonly kind = 'blob-unsettled';
  constructor(readonly digest: ParsedDigest) {
    super(`blob ${digest.digest} kept changing while being stored; retry`);
  }
}

/** A blob over the registry's size limit. `size` is known when the whole blob was counted. */
export class BlobTooLarge extends Failure {
  readonly kind = 'blob-too-large';
  constructor(
    readonly limit: number,
    readonly size?: number,
  ) {
    super(
      size === undefined
        ? `blob exceeds this registry's limit of ${limit} bytes`
        : `blob of ${size} bytes exceeds this registry's limit of ${limit} bytes; nothing was stored`,
    );
  }
}

/** Content whose digest is not the one it was pushed as (`actual`, `expected`: full digests). */
export class DigestMismatch extends Failure {
  readonly kind = 'digest-mismatch';
  constructor(
    readonly subject: 'upload' | 'manifest',
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      subject === 'upload'
        ? `uploaded content has digest ${actual}, not ${expected}; nothing was stored`
        : `manifest content has digest ${actual}, not ${expected}`,
    );
  }
}

// Manifests and tags

export class ManifestUnknown extends Failure {
  readonly kind = 'manifest-unknown';
  constructor(
    readonly repo: RepositoryName,
    readonly ref: Reference,
  ) {
    const what = ref.kind === 'tag' ? `tag ${ref.tag}` : `manifest ${ref.digest.digest}`;
    super(`${what} is not in repository ${repo}`);
  }
}

/** A blob a manifest references is not linked in its repository. */
export class ManifestBlobUnknown extends Failure {
  readonly kind = 'manifest-blob-unknown';
  constructor(
    readonly repo: RepositoryName,
    readonly digest: string,
    readonly mediaType: string,
  ) {
    super(`blob ${digest} (${mediaType}) is not in repository ${repo}; push it before the manifest`);
  }
}

/** A manifest an index lists is not in its repository. */
export class IndexManifestUnknown extends Failure {
  readonly kind = 'index-manifest-unknown';
  constructor(
    readonly repo: RepositoryName,
    readonly digest: string,
  ) {
    super(`manifest ${digest} listed in the index is not in repository ${repo}; push it before the index`);
  }
}

/** An index entry of a media type that may be a manifest or a blob names neither in the repository. */
export class IndexEntryUnknown extends Failure {
  readonly kind = 'index-entry-unknown';
  constructor(
    readonly repo: RepositoryName,
    readonly digest: string,
    readonly mediaType: string,
  ) {
    super(
      `index entry ${digest} (${mediaType}) names neither a manifest nor a blob in repository ${repo}; push it before the index`,
    );
  }
}

/** A blob a manifest (or index) references was uploaded directly and is still being verified. */
export class BlobBeingVerified extends Failure {
  readonly kind = 'blob-being-verified';
  constructor(
    readonly repo: RepositoryName,
    readonly digest: string,
    readonly pushing: 'manifest' | 'index',
  ) {
    super(`blob ${digest} was uploaded directly and its content is still being verified`);
  }
}

/** Checking a manifest's references took longer than their existence can be relied on. */
export class ManifestCheckExpired extends Failure {
  readonly kind = 'manifest-check-expired';
  constructor() {
    super(
      "checking the manifest's blobs took too long for them to be trusted still to exist; push the manifest again",
    );
  }
}

/** One push names more tags than the copies it would write allow (`allowed` for this size). */
export class TooManyTags extends Failure {
  readonly kind = 'too-many-tags';
  constructor(
    readonly tags: number,
    readonly allowed: number,
    readonly manifestSize: number,
    readonly maxTags: number,
    readonly maxTagBytes: number,
  ) {
    super(
      `a push names ${tags} tags; at most ${allowed} are allowed for a manifest of ${manifestSize} bytes`,
    );
  }
}

/** An immutable tag (`rule`, as configured) already names another manifest (`current`). */
export class TagImmutable extends Failure {
  readonly kind = 'tag-immutable';
  constructor(
    readonly repo: RepositoryName,
    readonly tag: Tag,
    readonly current: string,
    readonly rule: string,
  ) {
    super(
      `tag ${tag} of repository ${repo} is immutable (rule "${rule}" in BERTH_IMMUTABLE_TAGS) and already points to ${current}; push this image under a new tag, e.g. a new version`,
    );
  }
}

export class RepositoryUnknown extends Failure {
  readonly kind = 'repository-unknown';
  constructor(readonly repo: RepositoryName) {
    super(`repository ${repo} is not known to this registry`);
  }
}

// Upload sessions

/** No such session in this repository for this caller (or it is being discarded). */
export class UploadUnknown extends Failure {
  readonly kind = 'upload-unknown';
  constructor(
    readonly repo: RepositoryName,
    readonly id: string,
  ) {
    super(`upload ${id.slice(0, 64)} is not in progress in repository ${repo}`);
  }
}

/** The session's multipart upload is gone: cancelled or expired (`meanwhile`: while this request ran). */
export class UploadCancelled extends Failure {
  readonly kind = 'upload-cancelled';
  constructor(
    readonly id: string,
    readonly meanwhile: boolean,
  ) {
    super(
      meanwhile
        ? 'the upload was cancelled while this request ran'
        : `upload ${id} was cancelled; start again`,
    );
  }
}

/** The bytes a session held outside its multipart upload (its tail) are gone. */
export class UploadDataLost extends Failure {
  readonly kind = 'upload-data-lost';
  constructor(readonly id: string) {
    super('the upload session lost its buffered bytes; start the upload again');
  }
}

/** A completed upload's data vanished before its digest could be checked. */
export class UploadDataVanished extends Failure {
  readonly kind = 'upload-data-vanished';
  constructor(readonly id: string) {
    super('the uploaded data vanished before it could be verified');
  }
}

/**
 * Another request holds the session (its lease is live, or it won the race to claim it). `offset`:
 * what the session holds, where the client resumes (absent for a direct upload, which has none).
 */
export class UploadBusy extends Failure {
  readonly kind = 'upload-busy';
  constructor(
    readonly id: string,
    readonly offset?: number,
  ) {
    super(
      offset === undefined
        ? 'another request is writing to this upload; retry'
        : 'another request is writing to this upload session',
    );
  }
}

/** The session changed under the request (a conditional write lost), while writing or `opening` it. */
export class UploadChanged extends Failure {
  readonly kind = 'upload-changed';
  constructor(
    readonly id: string,
    readonly opening = false,
  ) {
    super(
      opening
        ? 'the upload changed while opening it; retry'
        : 'the upload session was changed by another request; retry',
    );
  }
}

/** A chunk that does not start where the session's bytes end. */
export class ChunkOutOfOrder extends Failure {
  readonly kind = 'chunk-out-of-order';
  constructor(
    readonly id: string,
    readonly start: number,
    readonly offset: number,
  ) {
    super(
      `chunk starts at byte ${start} but the upload has ${offset} bytes; send the chunk starting at ${offset}`,
    );
  }
}

/** A cancel while another request writes to or completes the session. */
export class UploadCancelConflict extends Failure {
  readonly kind = 'upload-cancel-conflict';
  constructor(readonly id: string) {
    super('another request is writing to or completing this upload; cancel it once that request has ended');
  }
}

/** A cancel of a session that is complete and being verified. */
export class UploadVerifying extends Failure {
  readonly kind = 'upload-verifying';
  constructor(readonly id: string) {
    super('the upload is complete and its content is being verified; it cannot be cancelled now');
  }
}

/** More bytes than the request announced (counted while receiving). */
export class BodyTooLong extends Failure {
  readonly kind = 'body-too-long';
  constructor(readonly announced: number) {
    super(`more bytes came than the ${announced} announced`);
  }
}

/** A body of another length than announced; `received` undefined: more than announced. */
export class BodyLengthMismatch extends Failure {
  readonly kind = 'body-length-mismatch';
  constructor(
    readonly announced: number,
    readonly received?: number,
  ) {
    super(`${received ?? `more than ${announced}`} bytes came where ${announced} were announced`);
  }
}

/** What a client holds in open upload sessions reached a cap (`held` of `limit`). */
export class UploadQuotaExceeded extends Failure {
  readonly kind = 'upload-quota-exceeded';
  constructor(
    /** `account:<name>` or `address:<ip>`: whom the cap counts. */
    readonly client: string,
    readonly cap: 'sessions' | 'bytes',
    readonly held: number,
    readonly limit: number,
  ) {
    const who = client.startsWith('address:')
      ? `address ${client.slice('address:'.length)}`
      : `account ${client.slice('account:'.length) || '(anonymous)'}`;
    const what =
      cap === 'sessions'
        ? `${held} upload sessions open, the most one client may hold (BERTH_UPLOAD_SESSIONS_PER_CLIENT)`
        : `${held} bytes in open upload sessions, more than one client may hold (${limit}, BERTH_UPLOAD_BYTES_PER_CLIENT)`;
    super(
      `${who} has ${what}: finish or cancel uploads in progress, or wait for abandoned ones to expire (BERTH_UPLOAD_TTL)`,
    );
  }
}

// Direct uploads (docs/upload-extension.md)

/** The store cannot sign upload URLs (`store`: its name). */
export class DirectUnsupported extends Failure {
  readonly kind = 'direct-unsupported';
  constructor(readonly store: string) {
    super(
      `direct uploads need the S3 store: this registry stores blobs on ${store}, which cannot sign upload URLs`,
    );
  }
}

/** A chunked upload asked to be a direct one, or the other way round. */
export class UploadWrongKind extends Failure {
  readonly kind = 'upload-wrong-kind';
  constructor(
    readonly repo: RepositoryName,
    readonly id: string,
    /**
     * What the session is: 'direct' (and chunks were sent to it), 'chunked' (it received chunks, so
     * it cannot become direct), 'not-direct' (completed as a direct upload without any parts),
     * 'object' (it takes a checked PUT and was asked for parts), 'parts' (the other way round).
     */
    readonly is: 'direct' | 'chunked' | 'not-direct' | 'object' | 'parts',
  ) {
    super(
      is === 'direct'
        ? `upload ${id} is a direct upload: its parts go to presigned URLs`
        : is === 'chunked'
          ? 'this upload already received bytes through the registry; start a new upload for a direct one'
          : is === 'object'
            ? `upload ${id} takes one checked PUT of the whole blob, not parts`
            : is === 'parts'
              ? `upload ${id} takes parts, not one checked PUT`
              : `upload ${id} has no direct parts`,
    );
  }
}

/** A completion of a session already completed (with `digest`, when it is being verified). */
export class UploadAlreadyCompleted extends Failure {
  readonly kind = 'upload-already-completed';
  constructor(
    readonly id: string,
    readonly digest?: string,
  ) {
    super(
      digest === undefined
        ? 'the upload is already completed; start a new one'
        : `the upload was already completed with digest ${digest}`,
    );
  }
}

/** A direct upload's content did not have its digest; `failure` says how (as recorded in the session). */
export class UploadVerificationFailed extends Failure {
  readonly kind = 'upload-verification-failed';
  constructor(
    readonly id: string,
    readonly failure: string,
  ) {
    super(failure);
  }
}

/** What is wrong with the part numbers asked for, or with the parts uploaded. */
export type PartProblem =
  | { readonly problem: 'count'; readonly requested: number; readonly max: number }
  | { readonly problem: 'number'; readonly value: string; readonly max: number }
  | { readonly problem: 'none' }
  | { readonly problem: 'missing'; readonly partNumber: number }
  | {
      readonly problem: 'too-small';
      readonly partNumber: number;
      readonly size: number;
      readonly min: number;
    }
  | { readonly problem: 'size'; readonly size: number; readonly announced: number; readonly parts: number }
  /** Completed before the checked PUT of the whole object arrived. */
  | { readonly problem: 'no-object' }
  /** The session's checked PUT URL is for another digest. */
  | { readonly problem: 'object-digest'; readonly digest: string }
  /** A checked PUT: only SHA-256 digests (what S3 checks), at most the store's largest single PUT. */
  | { readonly problem: 'object-algorithm'; readonly algorithm: string }
  | { readonly problem: 'object-too-large'; readonly size: number; readonly max: number }
  /** The object holds another number of bytes than announced. */
  | { readonly problem: 'object-size'; readonly size: number; readonly announced: number };

export class DirectPartsInvalid extends Failure {
  readonly kind = 'direct-parts-invalid';
  constructor(readonly part: PartProblem) {
    super(describeParts(part));
  }
}

function describeParts(part: PartProblem): string {
  switch (part.problem) {
    case 'count':
      return `ask for 1 to ${part.max} part URLs at a time, not ${part.requested}`;
    case 'number':
      return `part number ${part.value.slice(0, 20)} is outside 1..${part.max}`;
    case 'none':
      return 'no parts have been uploaded yet';
    case 'missing':
      return `part ${part.partNumber} is missing (the parts must be numbered 1..n); upload it, then complete again`;
    case 'too-small':
      return `part ${part.partNumber} has ${part.size} bytes: every part but the last needs at least ${part.min}; upload it again`;
    case 'size':
      return `the uploaded parts hold ${part.size} bytes, not the ${part.announced} announced; upload the missing or failed parts, then complete again`;
    case 'no-object':
      return 'the blob has not been uploaded to its URL yet: PUT it there, then complete again';
    case 'object-digest':
      return `this upload's URL is for ${part.digest}; start a new upload for another blob`;
    case 'object-algorithm':
      return `a checked upload takes a sha256 digest, not ${part.algorithm.slice(0, 20)}; send the blob in parts instead`;
    case 'object-too-large':
      return `a blob of ${part.size} bytes is over the ${part.max} bytes one PUT may carry; send it in parts instead`;
    case 'object-size':
      return `the uploaded object has ${part.size} bytes, not the ${part.announced} announced`;
  }
}

/** Every failure the registry raises; lib/http/errors.ts maps each `kind`. */
export type DomainError =
  | BlobUnknown
  | BlobDataMissing
  | BlobUnsettled
  | BlobTooLarge
  | DigestMismatch
  | ManifestUnknown
  | ManifestBlobUnknown
  | IndexManifestUnknown
  | IndexEntryUnknown
  | BlobBeingVerified
  | ManifestCheckExpired
  | TooManyTags
  | TagImmutable
  | RepositoryUnknown
  | UploadUnknown
  | UploadCancelled
  | UploadDataLost
  | UploadDataVanished
  | UploadBusy
  | UploadChanged
  | ChunkOutOfOrder
  | UploadCancelConflict
  | UploadVerifying
  | BodyTooLong
  | BodyLengthMismatch
  | UploadQuotaExceeded
  | DirectUnsupported
  | UploadWrongKind
  | UploadAlreadyCompleted
  | UploadVerificationFailed
  | DirectPartsInvalid;

export function isDomainError(err: unknown): err is DomainError {
  return err instanceof Failure;
}

/**
 * The request lost a race for its upload session, or does not start where the session ends: the
 * client should ask where the session stands and resume from there.
 */
export function isLostRace(err: unknown): err is UploadBusy | UploadChanged | ChunkOutOfOrder {
  return err instanceof UploadBusy || err instanceof UploadChanged || err instanceof ChunkOutOfOrder;
}
