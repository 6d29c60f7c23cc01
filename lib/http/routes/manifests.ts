import { RegistryError } from '../../oci/errors.ts';
import { MAX_MANIFEST_BYTES } from '../../oci/manifest.ts';
import { isTag, parseReference, parseTag, type Reference, type RepositoryName } from '../../oci/names.ts';
import { readLimited } from '../../util/read-body.ts';
import type { HttpContext, HttpOptions } from '../context.ts';

/** GET, HEAD, PUT and DELETE of `/v2/<name>/manifests/<reference>`. */
export async function handleManifest(
  c: HttpContext,
  options: HttpOptions,
  repo: RepositoryName,
  referenceParam: string,
): Promise<Response> {
  const manifests = options.registry.manifests;
  const mirror = options.mirror?.upstreamOf(repo) ? options.mirror : undefined;
  const ref = c.req.method === 'PUT' ? parseReference(referenceParam) : lookupReference(referenceParam);
  switch (c.req.method) {
    case 'HEAD': {
      const head = mirror ? await mirror.manifestHead(repo, ref) : await manifests.head(repo, ref);
      return new Response(null, {
        status: 200,
        headers: {
          'Content-Type': head.mediaType,
          'Content-Length': String(head.size),
          'Docker-Content-Digest': head.digest.digest,
          ETag: `"${head.digest.digest}"`,
        },
      });
    }
    case 'GET': {
      const stored = mirror ? await mirror.manifestGet(repo, ref) : await manifests.get(repo, ref);
      return new Response(stored.bytes as Uint8Array<ArrayBuffer>, {
        status: 200,
        headers: {
          'Content-Type': stored.mediaType,
          'Content-Length': String(stored.bytes.byteLength),
          'Docker-Content-Digest': stored.digest.digest,
          ETag: `"${stored.digest.digest}"`,
        },
      });
    }
    case 'PUT': {
      const extraTags = c.req.queries('tag')?.map(parseTag) ?? [];
      const bytes = await readLimited(
        c.req.raw.body,
        MAX_MANIFEST_BYTES,
        () =>
          new RegistryError(
            'SIZE_INVALID',
            `manifest is larger than the limit of ${MAX_MANIFEST_BYTES} bytes`,
            {
              status: 413,
            },
          ),
      );
      const result = await manifests.put(repo, ref, bytes, c.req.header('Content-Type') ?? null, extraTags);
      const headers: Record<string, string> = {
        Location: `/v2/${repo}/manifests/${result.digest.digest}`,
        'Docker-Content-Digest': result.digest.digest,
        'Content-Length': '0',
      };
      if (result.subject) headers['OCI-Subject'] = result.subject.digest;
      return new Response(null, { status: 201, headers });
    }
    default:
      await manifests.delete(repo, ref);
      return new Response(null, { status: 202, headers: { 'Content-Length': '0' } });
  }
}

/**
 * On reads and deletes a malformed tag names no manifest: 404, as the conformance suite expects.
 * Only a push gets TAG_INVALID, since only there the client can fix the name.
 */
function lookupReference(value: string): Reference {
  if (!value.includes(':') && !isTag(value)) {
    throw new RegistryError(
      'MANIFEST_UNKNOWN',
      `no manifest is tagged "${value.slice(0, 130)}": that is not a valid tag`,
    );
  }
  return parseReference(value);
}
