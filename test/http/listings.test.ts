import { describe, expect, it } from 'vitest';
import { errorCode, pushImage, testRegistry, type TestRegistry } from './harness.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

async function tagMany(r: TestRegistry, repo: string, tags: string[]) {
  const image = await pushImage(r, repo, tags[0]!);
  for (const tag of tags.slice(1)) {
    await r.request(`/v2/${repo}/manifests/${tag}`, {
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: image.bytes,
    });
  }
}

describe('tags list', () => {
  it('lists tags in lexical order, paged by n and last with a Link header', async () => {
    const r = testRegistry();
    const tags = ['v10', 'v2', 'latest', 'A', 'v1', '_x'];
    await tagMany(r, 'foo', tags);
    const all = await r.request('/v2/foo/tags/list');
    expect(await all.json()).toEqual({ name: 'foo', tags: [...tags].sort() });
    expect(all.headers.get('Link')).toBeNull();
    const first = await r.request('/v2/foo/tags/list?n=2');
    expect(((await first.json()) as { tags: string[] }).tags).toEqual(['A', '_x']);
    expect(first.headers.get('Link')).toBe('</v2/foo/tags/list?n=2&last=_x>; rel="next"');
    const next = await r.request('/v2/foo/tags/list?n=2&last=_x');
    expect(((await next.json()) as { tags: string[] }).tags).toEqual(['latest', 'v1']);
    const end = await r.request('/v2/foo/tags/list?n=2&last=v10');
    expect(((await end.json()) as { tags: string[] }).tags).toEqual(['v2']);
    expect(end.headers.get('Link')).toBeNull();
    const zero = await r.request('/v2/foo/tags/list?n=0');
    expect(((await zero.json()) as { tags: string[] }).tags).toEqual([]);
  });

  it.each(['-1', 'abc', '1.5'])('refuses n=%s with a 400', async (n) => {
    const r = testRegistry();
    await tagMany(r, 'foo', ['v1']);
    const res = await r.request(`/v2/foo/tags/list?n=${n}`);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('PAGINATION_NUMBER_INVALID');
  });

  it('answers NAME_UNKNOWN for a repository that does not exist', async () => {
    const r = testRegistry();
    const res = await r.request('/v2/nothing/tags/list');
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe('NAME_UNKNOWN');
  });

  it('lists an empty tag list for a repository whose tags were deleted', async () => {
    const r = testRegistry();
    await tagMany(r, 'foo', ['v1']);
    await r.request('/v2/foo/manifests/v1', { method: 'DELETE' });
    const res = await r.request('/v2/foo/tags/list');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: 'foo', tags: [] });
  });
});

describe('catalog', () => {
  it('lists repositories in lexical order with n, last and Link', async () => {
    const r = testRegistry();
    for (const repo of ['b', 'a/z', 'a', 'c/d/e']) await pushImage(r, repo, 'v1');
    const all = await r.request('/v2/_catalog');
    expect(await all.json()).toEqual({ repositories: ['a', 'a/z', 'b', 'c/d/e'] });
    const page = await r.request('/v2/_catalog?n=2');
    expect(await page.json()).toEqual({ repositories: ['a', 'a/z'] });
    expect(page.headers.get('Link')).toBe('</v2/_catalog?n=2&last=a%2Fz>; rel="next"');
    const rest = await r.request('/v2/_catalog?n=2&last=a%2Fz');
    expect(await rest.json()).toEqual({ repositories: ['b', 'c/d/e'] });
  });
});
