import { describe, expect, it } from 'vitest';
import { ALLOWED } from '../../lib/http/route.ts';
import { pushImage, sha256, testRegistry } from './harness.ts';

/** The headers two responses must share; the request id differs by design. */
function comparable(res: Response): Record<string, string> {
  const out: Record<string, string> = {};
  res.headers.forEach((value, name) => {
    if (name !== 'x-request-id') out[name] = value;
  });
  return out;
}

describe('HEAD on every GET route', () => {
  it('lists HEAD wherever GET is allowed', () => {
    for (const [kind, methods] of Object.entries(ALLOWED)) {
      if (methods.includes('GET')) expect(methods, kind).toContain('HEAD');
    }
  });

  it('answers HEAD on tags/list, _catalog, referrers and an upload with the GET status and headers, no body', async () => {
    const r = testRegistry();
    const image = await pushImage(r, 'team/app', 'v1');
    const start = await r.request('/v2/team/app/blobs/uploads/', { method: 'POST' });
    const upload = start.headers.get('Location')!;
    const paths = [
      '/v2/team/app/tags/list',
      '/v2/team/app/tags/list?n=1',
      '/v2/_catalog',
      '/v2/_catalog?n=1',
      `/v2/team/app/referrers/${image.digest}`,
      upload,
    ];
    for (const path of paths) {
      const get = await r.request(path);
      const head = await r.request(path, { method: 'HEAD' });
      expect(head.status, path).toBe(get.status);
      expect(comparable(head), path).toEqual(comparable(get));
      expect(await head.text(), path).toBe('');
    }
    const tags = await r.request('/v2/team/app/tags/list', { method: 'HEAD' });
    expect(tags.status).toBe(200);
    expect(Number(tags.headers.get('Content-Length'))).toBe(
      JSON.stringify({ name: 'team/app', tags: ['v1'] }).length,
    );
  });

  it("answers HEAD with the GET's error status and headers, without the body", async () => {
    const r = testRegistry();
    for (const path of [
      '/v2/missing/tags/list',
      '/v2/team/app/tags/list?n=x',
      `/v2/missing/blobs/uploads/00000000-0000-4000-8000-000000000000`,
      `/v2/bad..name/referrers/${sha256('x')}`,
    ]) {
      const get = await r.request(path);
      const head = await r.request(path, { method: 'HEAD' });
      expect(head.status, path).toBe(get.status);
      expect(head.headers.get('Content-Type'), path).toBe(get.headers.get('Content-Type'));
      expect(await head.text(), path).toBe('');
    }
  });

  it('still refuses methods a route does not have, naming HEAD among the allowed', async () => {
    const r = testRegistry();
    const res = await r.request('/v2/_catalog', { method: 'POST' });
    expect(res.status).toBe(405);
    expect(res.headers.get('Allow')).toBe('GET, HEAD');
  });
});
