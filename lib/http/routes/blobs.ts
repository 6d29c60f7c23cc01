import { parseDigest } from '../../oci/digest.ts';
import type { RepositoryName } from '../../oci/names.ts';
import type { BlobInfo } from '../../registry/blobs.ts';
import type { HttpContext, HttpOptions } from '../context.ts';
import { parseByteRange } from '../ranges.ts';

/** HEAD, GET and DELETE of `/v2/<name>/blobs/<digest>`. */
export async function handleBlob(
  c: HttpContext,
  options: HttpOptions,
  repo: RepositoryName,
  digestParam: string,
): Promise<Response> {
  const { registry } = options;
  const digest = parseDigest(digestParam);
  const method = c.req.method;
  if (method === 'DELETE') {
    await registry.unlinkBlob(repo, digest);
    return new Response(null, { status: 202, headers: { 'Content-Length': '0' } });
  }
  const headers: Record<string, string> = {
    'Docker-Content-Digest': digest.digest,
    'Content-Type': 'application/octet-stream',
    'Accept-Ranges': 'bytes',
    ETag: `"${digest.digest}"`,
    'Cache-Control': 'max-age=31536000, immutable',
  };
  let info: BlobInfo;
  /** Whether `info` is the link as this process saw it earlier, rather than read for this request. */
  let remembered = false;
  if (options.mirror?.upstreamOf(repo)) {
    const mirrored = await options.mirror.blob(repo, digest, method, c.req.header('Range') !== undefined);
    if (mirrored.kind === 'redirect') {
      return new Response(null, {
        status: 307,
        headers: { Location: mirrored.location, 'Docker-Content-Digest': digest.digest },
      });
    }
    if (mirrored.kind === 'upstream') {
      if (mirrored.size !== undefined) headers['Content-Length'] = String(mirrored.size);
      return new Response(method === 'HEAD' ? null : (mirrored.body ?? null), { status: 200, headers });
    }
    info = mirrored.info;
  } else {
    // A HEAD and a redirected GET only say where the bytes are: the link as this process saw it
    // within the facts' TTL is enough for them (0 storage requests instead of 1).
    ({ info, remembered } = await registry.blobLink(repo, digest, { seen: true }));
  }
  if (method === 'HEAD') {
    return new Response(null, { status: 200, headers: { ...headers, 'Content-Length': String(info.size) } });
  }
  const url = options.redirect.enabled
    ? await registry.blobs.redirect(info, options.redirect.ttlSeconds)
    : undefined;
  if (url) {
    return new Response(null, {
      status: 307,
      headers: { Location: url, 'Docker-Content-Digest': digest.digest },
    });
  }
  // A GET streamed through reads the link afresh: opening the bytes may re-point the link (Blobs.open),
  // which must not be done on an old sighting of it.
  if (remembered) ({ info } = await registry.blobLink(repo, digest, { seen: false }));
  const range = parseByteRange(c.req.header('Range'), info.size);
  const object = await registry.blobs.open(info, range, repo);
  if (range) {
    headers['Content-Range'] = `bytes ${range.start}-${range.end}/${info.size}`;
    headers['Content-Length'] = String(range.end - range.start + 1);
    return new Response(object.body, { status: 206, headers });
  }
  headers['Content-Length'] = String(info.size);
  return new Response(object.body, { status: 200, headers });
}
