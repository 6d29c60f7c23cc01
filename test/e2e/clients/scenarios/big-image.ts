import { describe, expect, it } from 'vitest';
import { layoutImage, type LocalImage } from '../harness/clients.ts';
import { randomLayer, smallLayer } from '../harness/images.ts';
import { formatRequests, inRepo, summarizeUploads } from '../harness/requestlog.ts';
import { MiB, sizeOf, type Scenarios } from './context.ts';

/** An image with 22 layers, one of them 64 MiB. */
export function bigImage(s: Scenarios): void {
  const {
    ctx,
    opts,
    limit,
    overLimit,
    repo,
    clientsOr,
    requestsDuring,
    expectRegistryDigest,
    manifestOf,
    pushOverLimit,
  } = s;
  describe.skipIf(opts.quick)('image with 22 layers, one of them 64 MiB of random bytes', () => {
    let big: LocalImage & { layers: string[] };
    const bigRef = () => ctx.c.ref(repo('big'), 'v1');

    let pushed = false;
    const refused = overLimit(64 * MiB);
    // Through a request limit the image still gets in with a client that pushes in chunks, so
    // that the pulls of a 64 MiB layer are tested there too.
    const chunker = refused ? limit!.chunked?.[0] : undefined;
    const pushName = refused
      ? `crane push of the layout is refused (the 64 MiB layer is above ${limit!.name})` +
        (chunker ? `; ${chunker} pushes it in chunks` : '')
      : 'crane push of the layout';

    const bigImage = () => {
      if (!big) {
        const layers: Buffer[] = [];
        for (let i = 0; i < 22; i++) {
          layers.push(
            i === 19 ? randomLayer('berth/random.bin', 64 * MiB) : smallLayer(`big-${i}`, 1 + (i % 3)),
          );
        }
        big = layoutImage(ctx.c.dir('layout'), { layers });
      }
      return big;
    };
    const bigLayer = () => ({
      blob: bigImage().layers[19]!,
      size: sizeOf(bigImage(), bigImage().layers[19]!),
    });

    // First, while no repository of the registry holds the layer that docker could mount.
    if (refused) {
      it(`docker push is refused (the 64 MiB layer is above ${limit?.name})`, async (t) => {
        clientsOr(t, 'docker');
        const c = ctx.c;
        const ref = c.ref(repo('big-docker-refused'), 'v1');
        await c.dockerLoad(bigImage(), ref);
        const where = { repo: repo('big-docker-refused'), tag: 'v1', ...bigLayer() };
        await pushOverLimit(t, 'docker', () => c.pushLocal('docker', ref, ref), where);
        await c.forget('docker', ref);
      });
    }

    it(pushName, async (t) => {
      clientsOr(t, 'crane');
      const img = bigImage();
      if (refused) {
        const where = { repo: repo('big'), tag: 'v1', ...bigLayer() };
        await pushOverLimit(t, 'crane', () => ctx.c.push('crane', img, bigRef()), where);
        if (!chunker) return;
        clientsOr(t, chunker);
      }
      const { digest } = await ctx.c.push(chunker ?? 'crane', img, bigRef());
      pushed = true;
      expect(digest).toBe(img.digest);
      const m = await manifestOf(bigRef());
      expect(m.layers?.map((l) => l.digest)).toEqual(img.layers);
      expect(Math.max(...m.layers!.map((l) => l.size))).toBeGreaterThan(64 * MiB);
    });

    for (const puller of ['docker', 'podman', 'skopeo', 'ctr', 'regctl'] as const) {
      it(`pull with ${puller}`, async (t) => {
        clientsOr(t, puller);
        if (refused && !chunker) t.skip(`the image cannot be pushed: a layer is above ${limit!.name}`);
        if (!pushed) t.skip('the push did not succeed');
        const got = await ctx.c.pull(puller, bigRef());
        expect(got.digest).toBe(big.digest);
        if (got.configDigest) expect(got.configDigest).toBe(big.configDigest);
        await ctx.c.forget(puller, bigRef());
      });
    }

    const dockerName = refused
      ? 'docker pull, then push into another repository (the 64 MiB layer is mounted, not sent), crane and buildah pull it'
      : 'docker push (docker recompresses: new digest), crane and buildah pull it';
    it(dockerName, async (t) => {
      clientsOr(t, 'docker', 'crane', 'buildah');
      if (!pushed) t.skip('the layout push did not succeed');
      const c = ctx.c;
      const ref = c.ref(repo('big-docker'), 'v1');
      // Through a request limit docker can only push the big layer by mounting it from where it
      // is, which it remembers from a pull.
      if (refused) await c.pull('docker', bigRef());
      else await c.dockerLoad(big, ref);
      const { value, requests } = ctx.target.requests
        ? await requestsDuring(() => c.pushLocal('docker', refused ? bigRef() : ref, ref))
        : { value: await c.pushLocal('docker', refused ? bigRef() : ref, ref), requests: [] };
      const { digest } = value;
      if (refused && ctx.target.requests) {
        const s = summarizeUploads(inRepo(requests, repo('big-docker')));
        expect(s.mountsDone, formatRequests(requests)).toBeGreaterThan(0);
      }
      await expectRegistryDigest(ref, digest, 'docker push');
      expect((await manifestOf(ref)).layers).toHaveLength(22);
      expect((await c.pull('crane', ref)).digest).toBe(digest);
      const got = await c.pull('buildah', ref);
      expect(got.digest).toBe(digest);
      await c.forget('buildah', ref);
      await c.forget('docker', ref);
      if (refused) await c.forget('docker', bigRef());
    });
  });
}
