import { describe, expect, it } from 'vitest';
import { errorCode, pushImage, testRegistry } from './harness.ts';

describe('base endpoint and routing', () => {
  it('answers GET /v2/ with 200 and the API version header on every response', async () => {
    const r = testRegistry();
    const res = await r.request('/v2/');
    expect(res.status).toBe(200);
    expect(res.headers.get('Docker-Distribution-Api-Version')).toBe('registry/2.0');
    const missing = await r.request('/v2/nothing/here/manifests/latest');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('Docker-Distribution-Api-Version')).toBe('registry/2.0');
    expect(missing.headers.get('X-Request-Id')).toBeTruthy();
  });

  it('answers unknown paths with 404 and a JSON error body', async () => {
    const r = testRegistry();
    const res = await r.request('/v3/whatever');
    expect(res.status).toBe(404);
    expect(res.headers.get('Content-Type')).toContain('application/json');
    expect(await errorCode(res)).toBe('UNSUPPORTED');
  });

  it('answers a method a route does not allow with 405, UNSUPPORTED and Allow', async () => {
    const r = testRegistry();
    const res = await r.request('/v2/foo/tags/list', { method: 'DELETE' });
    expect(res.status).toBe(405);
    expect(res.headers.get('Allow')).toBe('GET, HEAD');
    expect(await errorCode(res)).toBe('UNSUPPORTED');
  });

  it.each([
    ['upper case', 'Foo/bar'],
    ['dot-dot component', 'foo/../bar'],
    ['percent-encoded dot-dot', 'foo/%2e%2e/bar'],
    ['300 characters', 'a'.repeat(300)],
    ['leading slash', '/foo'],
    ['trailing separator', 'foo-'],
    ['double slash', 'foo//bar'],
  ])('refuses a repository name with %s as NAME_INVALID', async (_what, name) => {
    const r = testRegistry();
    const res = await r.request(`/v2/${name}/tags/list`);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('NAME_INVALID');
  });

  it('serves repositories whose names contain route words', async () => {
    const r = testRegistry();
    const image = await pushImage(r, 'team/blobs/manifests', 'v1');
    const res = await r.request(`/v2/team/blobs/manifests/manifests/${image.digest}`);
    expect(res.status).toBe(200);
  });
});
