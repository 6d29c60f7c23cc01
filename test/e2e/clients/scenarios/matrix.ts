import { describe, expect, it } from 'vitest';
import { CLIENTS, layoutImage, type ClientName } from '../harness/clients.ts';
import { smallLayer } from '../harness/images.ts';
import type { Scenarios } from './context.ts';

/** Push with one client, pull with every other. */
export function pushWithOneClientPullWithEveryOther(s: Scenarios): void {
  const { ctx, repo, clientsOr, expectRegistryDigest, manifestOf } = s;
  describe('push with one client, pull with every other', () => {
    const pushed = new Map<ClientName, { ref: string; digest: string; config: string }>();

    for (const pusher of CLIENTS) {
      it(`push with ${pusher}`, async (t) => {
        clientsOr(t, pusher, 'crane');
        const c = ctx.c;
        const ref = c.ref(repo(`matrix/${pusher}`), 'v1');
        const files = { [`${pusher}.txt`]: `pushed by ${pusher}\n` };
        let digest: string;
        if (pusher === 'docker') {
          digest = (await c.pushLocal('docker', await c.dockerBuild(ref, files), ref)).digest;
        } else if (pusher === 'podman') {
          digest = (
            await c.pushLocal('podman', await c.podmanBuild(`localhost/matrix-${pusher}`, files), ref)
          ).digest;
        } else if (pusher === 'buildah') {
          digest = (
            await c.pushLocal('buildah', await c.buildahScratch(`localhost/matrix-${pusher}`, files), ref)
          ).digest;
        } else {
          const img = layoutImage(c.dir('layout'), { layers: [smallLayer(`matrix-${pusher}`)] });
          digest = (await c.push(pusher, img, ref)).digest;
          // These clients push a layout's manifest byte for byte.
          expect(digest, `${pusher} changed the manifest while pushing`).toBe(img.digest);
        }
        await expectRegistryDigest(ref, digest, `push with ${pusher}`);
        const m = await manifestOf(ref);
        pushed.set(pusher, { ref, digest, config: m.config!.digest });
      });
    }

    for (const pusher of CLIENTS) {
      for (const puller of CLIENTS) {
        if (puller === pusher) continue;
        it(`${pusher} -> ${puller}`, async (t) => {
          clientsOr(t, puller);
          const src = pushed.get(pusher);
          if (!src) t.skip(`the push with ${pusher} did not succeed`);
          const got = await ctx.c.pull(puller, src!.ref);
          expect(got.digest, `${puller} pulled ${got.digest}, ${pusher} pushed ${src!.digest}`).toBe(
            src!.digest,
          );
          if (got.configDigest) expect(got.configDigest, 'config (image ID) digest').toBe(src!.config);
          await expectRegistryDigest(src!.ref, src!.digest, 'after the pull');
        });
      }
    }
  });
}
