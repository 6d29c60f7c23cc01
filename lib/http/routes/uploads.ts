import { RegistryError } from '../../oci/errors.ts';
import { parseDigest, type ParsedDigest } from '../../oci/digest.ts';
import { parseName, type RepositoryName } from '../../oci/names.ts';
import type { BlobInfo } from '../../registry/blobs.ts';
import type { ChunkExpectation, UploadStatus } from '../../registry/uploads.ts';
import { splitUploadRef } from '../../registry/upload-state.ts';
import { describeError } from '../../logging/logger.ts';
import { contentLength, requestBody } from '../body.ts';
import { specErrorOf } from '../errors.ts';
import { methodOf, type HttpContext, type HttpOptions } from '../context.ts';
import { may, sourceOf } from '../auth.ts';
import { parseContentRange } from '../ranges.ts';

/** POST `/v2/<name>/blobs/uploads/`: start a session, upload whole, or mount from another repository. */
export async function handleUploadStart(
  c: HttpContext,
  options: HttpOptions,
  repo: RepositoryName,
): Promise<Response> {
  const { registry } = options;
  const owner = c.get('caller')?.subject;
  const client = clientOf(c);
  const mount = c.req.query('mount');
  if (mount !== undefined) {
    const digest = parseDigest(mount);
    const fromParam = c.req.query('from');
    const from = fromParam ? parseName(fromParam) : undefined;
    // Mounting from a repository the caller may not pull would leak its blobs (and with authentication
    // on, a mount without `from` would reach every repository): upload instead.
    const caller = c.get('caller');
    const allowed = from ? may(caller, from, 'pull') : caller === undefined;
    const mounted = allowed ? await registry.mount(repo, digest, from) : undefined;
    if (mounted) return created(repo, mounted);
  }
  const digestParam = c.req.query('digest');
  if (digestParam !== undefined && mount === undefined) {
    const info = await registry.uploads.upload(
      repo,
      parseDigest(digestParam),
      requestBody(c),
      expectation(c),
      owner,
      client,
    );
    return created(repo, info);
  }
  return accepted(await registry.uploads.start(repo, 'sha256', owner, client), 202);
}

/**
 * GET, PATCH, PUT and DELETE of `/v2/<name>/blobs/uploads/<id>[.<state>]`: the state, signed, is what
 * the last answer's `Location` carried (lib/registry/upload-state.ts); PATCH and PUT use it instead of
 * reading the session, GET and DELETE read the session as stored, or, when a POST's session was
 * never written yet, take it from the URL.
 */
export async function handleUpload(
  c: HttpContext,
  options: HttpOptions,
  repo: RepositoryName,
  ref: string,
): Promise<Response> {
  const { id, state: carried } = splitUploadRef(ref);
  const uploads = options.registry.uploads;
  const owner = c.get('caller')?.subject;
  const client = clientOf(c);
  try {
    switch (methodOf(c)) {
      case 'GET':
        return accepted(await uploads.status(repo, id, owner, carried), 204);
      case 'PATCH':
        return accepted(
          await uploads.append(repo, id, requestBody(c), expectation(c), owner, client, carried),
          202,
        );
      case 'PUT': {
        const digestParam = c.req.query('digest');
        if (!digestParam) {
          throw new RegistryError(
            'DIGEST_INVALID',
            'finishing an upload needs ?digest=<digest of the whole blob>',
          );
        }
        const digest: ParsedDigest = parseDigest(digestParam);
        return created(
          repo,
          await uploads.complete(repo, id, digest, requestBody(c), expectation(c), owner, client, carried),
        );
      }
      default:
        await uploads.cancel(repo, id, owner, carried);
        return new Response(null, { status: 204, headers: { 'Content-Length': '0' } });
    }
  } catch (err) {
    // A client that gets 416 (a lost race, a chunk at the wrong offset, a malformed Content-Range)
    // needs to know where the session really is.
    const answer = specErrorOf(err);
    if (answer?.status === 416) {
      const status = await uploads.status(repo, id, owner, carried).catch((cause: unknown) => {
        // Gone or unreadable: the 416 goes without the session's position.
        c.get('log').debug('upload status for a 416 not read', { upload: id, ...describeError(cause) });
        return undefined;
      });
      if (status) throw answer.withHeaders(statusHeaders(status));
    }
    throw err;
  }
}

/**
 * Who the upload caps count against: the account when authentication is on (anonymous pushers by
 * address), the source address without it.
 */
function clientOf(c: HttpContext): string {
  const caller = c.get('caller');
  return caller?.subject ? `account:${caller.subject}` : `address:${sourceOf(c)}`;
}

function expectation(c: HttpContext): ChunkExpectation {
  const range = parseContentRange(c.req.header('Content-Range'));
  const length = contentLength(c.req.header('Content-Length'));
  if (range) {
    const rangeLength = range.end - range.start + 1;
    if (length !== undefined && length !== rangeLength) {
      throw new RegistryError(
        'BLOB_UPLOAD_INVALID',
        `Content-Length ${length} does not match Content-Range ${range.start}-${range.end} (${rangeLength} bytes)`,
      );
    }
    return { start: range.start, length: rangeLength };
  }
  return { length };
}

function statusHeaders(status: UploadStatus): Record<string, string> {
  return {
    Location: `/v2/${status.repo}/blobs/uploads/${status.id}${status.state ? `.${status.state}` : ''}`,
    Range: `0-${Math.max(0, status.offset - 1)}`,
    'Docker-Upload-UUID': status.id,
  };
}

function accepted(status: UploadStatus, code: 202 | 204): Response {
  return new Response(null, { status: code, headers: { ...statusHeaders(status), 'Content-Length': '0' } });
}

function created(repo: RepositoryName, info: BlobInfo): Response {
  return new Response(null, {
    status: 201,
    headers: {
      Location: `/v2/${repo}/blobs/${info.digest.digest}`,
      'Docker-Content-Digest': info.digest.digest,
      'Content-Length': '0',
    },
  });
}
