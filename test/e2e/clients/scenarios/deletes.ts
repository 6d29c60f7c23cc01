import { describe, expect, it } from 'vitest';
import { layoutImage } from '../harness/clients.ts';
import { smallLayer } from '../harness/images.ts';
import { mustFail, NOT_FOUND, type Scenarios } from './context.ts';

/** Deleting tags and manifests. */
export function deletingTagsAndManifests(s: Scenarios): void {
  const { ctx, repo, clientsOr, http } = s;
  describe('deleting tags and manifests', () => {
    const r = repo('delete/app');
    let a = '';
    let b = '';

    async function expectPullFails(ref: string): Promise<void> {
      for (const client of ['docker', 'crane', 'skopeo', 'ctr'] as const) {
        if (ctx.c.skipReason(client)) continue;
        const text = await mustFail(`${client} pull ${ref}`, () => ctx.c.pull(client, ref));
        expect(text, `${client} pull of ${ref} should fail with not found`).toMatch(NOT_FOUND);
      }
    }

    it('setup: image A tagged a1 and a2, image B tagged b1', async (t) => {
      clientsOr(t, 'crane');
      const c = ctx.c;
      const imgA = layoutImage(c.dir('layout'), { layers: [smallLayer('delete-a')] });
      const imgB = layoutImage(c.dir('layout'), { layers: [smallLayer('delete-b')] });
      a = (await c.push('crane', imgA, c.ref(r, 'a1'))).digest;
      await c.crane(['tag', '--insecure', c.ref(r, 'a1'), 'a2']);
      b = (await c.push('crane', imgB, c.ref(r, 'b1'))).digest;
    });

    it('regctl tag rm a1: a1 is gone, a2 and the manifest stay', async (t) => {
      clientsOr(t, 'regctl', 'crane');
      if (!a) t.skip('setup failed');
      const c = ctx.c;
      await c.regctl(['tag', 'rm', c.ref(r, 'a1')]);
      const tags = (await c.crane(['ls', '--insecure', `${ctx.target.host}/${r}`])).stdout
        .split('\n')
        .filter(Boolean);
      expect(tags).not.toContain('a1');
      expect(tags).toContain('a2');
      expect(await c.craneDigest(c.ref(r, 'a2'))).toBe(a);
      expect(await c.craneDigest(c.ref(r, a))).toBe(a);
      await expectPullFails(c.ref(r, 'a1'));
    });

    it('crane delete B by digest: b1 and the digest no longer pull', async (t) => {
      clientsOr(t, 'crane');
      if (!b) t.skip('setup failed');
      const c = ctx.c;
      await c.crane(['delete', '--insecure', c.ref(r, b)]);
      await expectPullFails(c.ref(r, b));
      await expectPullFails(c.ref(r, 'b1'));
      const head = await http('HEAD', `/v2/${r}/manifests/${b}`);
      expect(head.status).toBe(404);
    });

    it('skopeo delete a2 (deletes manifest A): nothing of A pulls any more', async (t) => {
      clientsOr(t, 'skopeo', 'crane');
      if (!a) t.skip('setup failed');
      const c = ctx.c;
      await c.skopeo(['delete', '--tls-verify=false', `docker://${c.ref(r, 'a2')}`]);
      await expectPullFails(c.ref(r, 'a2'));
      await expectPullFails(c.ref(r, a));
      const text = await mustFail('skopeo inspect', () =>
        c.skopeo(['inspect', '--tls-verify=false', `docker://${c.ref(r, a)}`]),
      );
      expect(text).toMatch(NOT_FOUND);
    });
  });
}
