import * as z from 'zod';
import { RegistryError } from '../../oci/errors.ts';
import { parseDigest } from '../../oci/digest.ts';
import type { RepositoryName } from '../../oci/names.ts';
import { splitUploadRef } from '../../registry/upload-state.ts';
import { MAX_PARTS_PER_REQUEST } from '../../registry/direct-uploads.ts';
import { readLimited } from '../../util/read-body.ts';
import { methodOf, type HttpContext, type HttpOptions } from '../context.ts';

/** Request bodies of the extension are small JSON documents. */
const MAX_BODY = 64 * 1024;

const partsRequest = z.object({
  parts: z.array(z.number().int()).min(1).max(MAX_PARTS_PER_REQUEST),
});

const objectRequest = z.object({
  digest: z.string().max(200),
  size: z.number().int().nonnegative(),
});

const completeRequest = z.object({
  digest: z.string().max(200),
  size: z.number().int().nonnegative().optional(),
});

/**
 * `/v2/<name>/_berth/v1/uploads/<id>[/parts|/object|/complete]`: the direct-upload extension, version 1
 * (docs/upload-extension.md). The session itself is opened with the spec's POST and cancelled with
 * its DELETE.
 */
export async function handleDirectUpload(
  c: HttpContext,
  options: HttpOptions,
  repo: RepositoryName,
  ref: string,
  action: 'status' | 'parts' | 'object' | 'complete',
): Promise<Response> {
  // The last segment of the session's Location may carry its signed state: the id is before it.
  const { id, state: carried } = splitUploadRef(ref);
  const direct = options.registry.direct;
  const owner = c.get('caller')?.subject;
  const method = action === 'status' ? 'GET' : 'POST';
  if (methodOf(c) !== method) {
    throw new RegistryError('UNSUPPORTED', `${c.req.method} is not supported here; use ${method}`, {
      status: 405,
      headers: { Allow: method === 'GET' ? 'GET, HEAD' : method },
    });
  }
  const statusUrl = `/v2/${repo}/_berth/v1/uploads/${id}`;
  switch (action) {
    case 'status': {
      const status = await direct.status(repo, id, owner, carried);
      return json(status.status === 'verifying' ? 202 : 200, { uploadId: id, ...status });
    }
    case 'parts': {
      const { parts } = await readJson(c, partsRequest);
      const presigned = await direct.presignParts(repo, id, owner, parts, carried);
      return json(200, {
        uploadId: id,
        expiresAt: presigned.expiresAt.toISOString(),
        ...options.registry.partLimits,
        parts: presigned.parts.map((p) => ({ ...p, method: 'PUT' })),
      });
    }
    case 'object': {
      const request = await readJson(c, objectRequest);
      const digest = parseDigest(request.digest);
      const presigned = await direct.presignObject(repo, id, owner, digest, request.size, carried);
      return json(200, {
        uploadId: id,
        expiresAt: presigned.expiresAt.toISOString(),
        url: presigned.url,
        method: 'PUT',
        headers: presigned.headers,
      });
    }
    case 'complete': {
      const request = await readJson(c, completeRequest);
      const digest = parseDigest(request.digest);
      const done = await direct.complete(repo, id, owner, digest, request.size, carried);
      if (done.status === 'verifying') {
        return json(
          202,
          { uploadId: id, status: 'verifying', digest: done.digest, size: done.size },
          { Location: statusUrl },
        );
      }
      return json(
        201,
        { uploadId: id, status: 'verified', digest: digest.digest, size: done.blob.size },
        { Location: `/v2/${repo}/blobs/${digest.digest}`, 'Docker-Content-Digest': digest.digest },
      );
    }
  }
}

async function readJson<T>(c: HttpContext, schema: z.ZodType<T>): Promise<T> {
  const bytes = await readLimited(
    c.req.raw.body,
    MAX_BODY,
    () => new RegistryError('SIZE_INVALID', `the request body is over ${MAX_BODY} bytes`, { status: 413 }),
  );
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new RegistryError('BLOB_UPLOAD_INVALID', 'the request body must be a JSON object');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RegistryError(
      'BLOB_UPLOAD_INVALID',
      `invalid request body: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return parsed.data;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const text = JSON.stringify(body);
  return new Response(text, {
    status,
    headers: {
      'Content-Type': 'application/json',
      'Content-Length': String(Buffer.byteLength(text)),
      'Cache-Control': 'no-store',
      ...headers,
    },
  });
}
