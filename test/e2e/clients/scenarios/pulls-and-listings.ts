import { describe, expect, it } from 'vitest';
import { layoutImage } from '../harness/clients.ts';
import { sha256, smallLayer } from '../harness/images.ts';
import { formatRequests, inRepo } from '../harness/requestlog.ts';
import type { Scenarios } from './context.ts';

/** Pull paths (by tag, by digest, HEAD first) and listings. */
export function pullPathsAndListings(s: Scenarios): void {
  const { ctx, repo, clientsOr, requestsDuring } = s;
  describe('pull paths and listings', () => {
    let digest = '';
    const r = repo('pulls/app');

    it('crane push + crane tag; docker pull by tag and by digest', async (t) => {
      clientsOr(t, 'crane', 'docker');
      const c = ctx.c;
      const img = layoutImage(c.dir('layout'), { layers: [smallLayer('pulls-app')] });
      digest = (await c.push('crane', img, c.ref(r, 'v1'))).digest;
      await c.crane(['tag', '--insecure', c.ref(r, 'v1'), 'v2']);
      await c.crane(['tag', '--insecure', c.ref(r, 'v1'), 'latest']);
      expect((await c.pull('docker', c.ref(r, 'v2'))).digest).toBe(digest);
      await c.forget('docker', c.ref(r, 'v2'));
      const byDigest = await c.pull('docker', c.ref(r, digest));
      expect(byDigest.digest).toBe(digest);
      const repoDigests = await c.docker([
        'image',
        'inspect',
        '--format',
        '{{json .RepoDigests}}',
        c.ref(r, digest),
      ]);
      expect(repoDigests.stdout).toContain(`${ctx.target.host}/${r}@${digest}`);
    });

    it('ctr images pull HEADs the tag, then GETs the manifest by digest', async (t) => {
      clientsOr(t, 'ctr');
      if (!digest) t.skip('the push did not succeed');
      const c = ctx.c;
      const { value, requests } = ctx.target.requests
        ? await requestsDuring(() => c.pull('ctr', c.ref(r, 'v2')))
        : { value: await c.pull('ctr', c.ref(r, 'v2')), requests: [] };
      expect(value.digest).toBe(digest);
      if (ctx.target.requests) {
        // With authentication the very first HEAD is challenged (401) and repeated with a token.
        const manifestRequests = inRepo(requests, r).filter(
          (q) => q.path.includes('/manifests/') && q.status !== 401,
        );
        expect(manifestRequests[0], formatRequests(requests)).toMatchObject({
          method: 'HEAD',
          path: `/v2/${r}/manifests/v2`,
          status: 200,
        });
        expect(
          manifestRequests.some((q) => q.method === 'GET' && q.path === `/v2/${r}/manifests/${digest}`),
        ).toBe(true);
      }
    });

    it('skopeo inspect shows the digest and the tags', async (t) => {
      clientsOr(t, 'skopeo');
      if (!digest) t.skip('the push did not succeed');
      const c = ctx.c;
      const out = await c.skopeo(['inspect', '--tls-verify=false', `docker://${c.ref(r, 'v1')}`]);
      const info = JSON.parse(out.stdout) as { Digest: string; RepoTags: string[] };
      expect(info.Digest).toBe(digest);
      expect([...info.RepoTags].sort()).toEqual(['latest', 'v1', 'v2']);
      const raw = await c.skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${c.ref(r, digest)}`]);
      expect(sha256(raw.stdout)).toBe(digest);
    });

    it('crane ls, crane catalog, regctl tag ls, oras repo ls/tags', async (t) => {
      clientsOr(t, 'crane', 'regctl', 'oras');
      if (!digest) t.skip('the push did not succeed');
      const c = ctx.c;
      const lines = (s: string) =>
        s
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean);
      expect(lines((await c.crane(['ls', '--insecure', `${ctx.target.host}/${r}`])).stdout).sort()).toEqual([
        'latest',
        'v1',
        'v2',
      ]);
      expect(lines((await c.regctl(['tag', 'ls', `${ctx.target.host}/${r}`])).stdout).sort()).toEqual([
        'latest',
        'v1',
        'v2',
      ]);
      expect(
        lines((await c.oras(['repo', 'tags', '--plain-http', `${ctx.target.host}/${r}`])).stdout).sort(),
      ).toEqual(['latest', 'v1', 'v2']);
      const catalog = lines((await c.crane(['catalog', '--insecure', ctx.target.host])).stdout);
      expect(catalog).toContain(r);
      expect(catalog).toContain(repo('matrix/crane'));
      const orasCatalog = lines((await c.oras(['repo', 'ls', '--plain-http', ctx.target.host])).stdout);
      expect(orasCatalog).toContain(r);
    });
  });
}
