import { describe, expect, it } from 'vitest';
import { layoutImage } from '../harness/clients.ts';
import { emptyLayer, smallLayer } from '../harness/images.ts';
import { errorText, type Scenarios } from './context.ts';

/** Single-layer, empty-layer and layer-less images. */
export function smallAndEmptyImages(s: Scenarios): void {
  const { ctx, repo, clientsOr, requestsSinceTestStart, expectRegistryDigest, manifestOf } = s;
  describe('small and empty images', () => {
    it('single-layer image: crane push, docker pull by tag and by digest', async (t) => {
      clientsOr(t, 'crane', 'docker');
      const c = ctx.c;
      const img = layoutImage(c.dir('layout'), { layers: [smallLayer('single')] });
      const ref = c.ref(repo('single'), 'v1');
      const { digest } = await c.push('crane', img, ref);
      expect(digest).toBe(img.digest);
      const byTag = await c.pull('docker', ref);
      expect(byTag.digest).toBe(digest);
      expect(byTag.configDigest).toBe(img.configDigest);
      await c.forget('docker', ref);
      const byDigest = await c.pull('docker', c.ref(repo('single'), digest));
      expect(byDigest.digest).toBe(digest);
      expect(byDigest.configDigest).toBe(img.configDigest);
    });

    it('image whose only layer is an empty tarball (buildah from scratch, no files)', async (t) => {
      clientsOr(t, 'buildah', 'docker', 'ctr', 'skopeo', 'podman');
      const c = ctx.c;
      const ref = c.ref(repo('empty-layer'), 'v1');
      const local = await c.buildahScratch('localhost/empty-layer', {});
      const { digest } = await c.pushLocal('buildah', local, ref);
      const m = await manifestOf(ref);
      expect(m.layers?.length, 'buildah commits one empty layer').toBe(1);
      for (const puller of ['docker', 'ctr', 'skopeo', 'podman'] as const) {
        const got = await c.pull(puller, ref);
        expect(got.digest, `${puller} pull`).toBe(digest);
      }
    });

    it('image with no layers at all (OCI layout) and an empty-tar layer between two others', async (t) => {
      clientsOr(t, 'crane', 'skopeo', 'docker', 'podman', 'ctr', 'regctl');
      const c = ctx.c;
      const none = layoutImage(c.dir('layout'), { layers: [] });
      const noneRef = c.ref(repo('no-layers'), 'v1');
      expect((await c.push('crane', none, noneRef)).digest).toBe(none.digest);
      for (const puller of ['skopeo', 'regctl', 'ctr', 'podman'] as const) {
        const got = await c.pull(puller, noneRef);
        expect(got.digest, `${puller} pull`).toBe(none.digest);
      }
      const sandwich = layoutImage(c.dir('layout'), {
        layers: [smallLayer('below'), emptyLayer(), smallLayer('above')],
      });
      const sandwichRef = c.ref(repo('empty-between'), 'v1');
      expect((await c.push('skopeo', sandwich, sandwichRef)).digest).toBe(sandwich.digest);
      for (const puller of ['docker', 'podman', 'ctr', 'crane'] as const) {
        const got = await c.pull(puller, sandwichRef);
        expect(got.digest, `${puller} pull`).toBe(sandwich.digest);
      }
    });

    it('docker build FROM scratch with only a LABEL (no layers): docker push, pull elsewhere', async (t) => {
      clientsOr(t, 'docker', 'crane', 'podman');
      const c = ctx.c;
      const ref = c.ref(repo('docker-no-layers'), 'v1');
      await c.dockerBuild(ref, {}, ['LABEL berth.e2e=no-layers']);
      let digest: string;
      try {
        digest = (await c.pushLocal('docker', ref, ref)).digest;
      } catch (e) {
        // A skip rather than a failure when docker itself refuses before talking to the registry.
        const reqs = await requestsSinceTestStart();
        if (ctx.target.requests && !reqs.some((r) => r.path.includes(`/${repo('docker-no-layers')}/`))) {
          t.skip(`docker refuses to push an image without layers: ${errorText(e).trim().split('\n').pop()}`);
        }
        throw e;
      }
      expect((await manifestOf(ref)).layers ?? []).toEqual([]);
      await expectRegistryDigest(ref, digest, 'docker push');
      expect((await c.pull('podman', ref)).digest).toBe(digest);
    });
  });
}
