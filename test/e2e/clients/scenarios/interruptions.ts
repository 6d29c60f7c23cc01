import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layoutImage, type LocalImage } from '../harness/clients.ts';
import { randomLayer, smallLayer } from '../harness/images.ts';
import { CommandError, sleep } from '../harness/proc.ts';
import { RegistryProxy } from '../harness/proxy.ts';
import { MiB, errorText, sizeOf, blobsRedirected, type RunOptionsSpawn, type Scenarios } from './context.ts';

/** Pulls and pushes killed half way, then done again. */
export function interruptedPullsAndPushes(s: Scenarios): void {
  const {
    ctx,
    opts,
    limit,
    overLimit,
    repo,
    clientsOr,
    expectRegistryDigest,
    manifestOf,
    http,
    pushOverLimit,
  } = s;
  describe.skipIf(opts.quick)('interrupted pulls and pushes', () => {
    const SIZE = 48 * MiB;
    const RATE = 12 * MiB;
    let proxy: RegistryProxy;

    beforeAll(async () => {
      proxy = await new RegistryProxy({ upstream: ctx.target.url, bytesPerSecond: RATE }).start();
      await ctx.c.useHost(proxy.host);
    });
    afterAll(async () => {
      await proxy?.close();
    });

    /** Runs `start` through the slow proxy and SIGKILLs the client once `bytes` have passed. */
    async function killMidway(
      direction: 'up' | 'down',
      bytes: number,
      start: (onSpawn: RunOptionsSpawn) => Promise<unknown>,
    ) {
      let pid: number | undefined;
      const running = start((child) => (pid = child.pid)).catch((e: unknown) => e);
      await proxy.waitForBytes(direction, bytes);
      if (pid === undefined) throw new Error('client pid unknown');
      process.kill(pid, 'SIGKILL');
      const outcome = await running;
      if (!(outcome instanceof CommandError) || outcome.result.signal !== 'SIGKILL') {
        throw new Error(`the client was not interrupted (it finished first?): ${errorText(outcome)}`);
      }
      await sleep(500);
    }

    let source: (LocalImage & { layers: string[] }) | undefined;
    const pullRef = () => ctx.c.ref(repo('interrupt/pull'), 'v1');

    for (const client of ['skopeo', 'crane', 'ctr', 'podman', 'regctl', 'docker'] as const) {
      // Skipped where blob GETs are redirected to S3: the bytes then go from the store straight to
      // the client, past this proxy, which cannot see them to kill the client half way.
      it.skipIf(blobsRedirected())(`${client} pull killed half way, then pulled again`, async (t) => {
        clientsOr(t, client, 'crane');
        if (overLimit(SIZE))
          t.skip(`the ${SIZE / MiB} MiB layer to pull cannot be pushed: above ${limit!.name}`);
        const c = ctx.c;
        if (!source) {
          source = layoutImage(c.dir('layout'), {
            layers: [smallLayer('interrupt-pull'), randomLayer('big.bin', SIZE)],
          });
          await c.push('crane', source, pullRef());
        }
        const viaProxy = c.ref(repo('interrupt/pull'), 'v1', proxy.host);
        await killMidway('down', SIZE / 2, (onSpawn) => c.pull(client, viaProxy, { onSpawn }));
        if (client === 'docker') {
          // The CLI is gone; dockerd notices the closed API connection and cancels the pull.
          await sleep(1_000);
        }
        const got = await c.pull(client, pullRef());
        expect(got.digest).toBe(source.digest);
        if (got.configDigest) expect(got.configDigest).toBe(source.configDigest);
        await c.forget(client, pullRef());
        await c.forget(client, viaProxy);
      });
    }

    for (const client of ['crane', 'skopeo', 'oras', 'regctl', 'podman', 'docker'] as const) {
      const name = !overLimit(SIZE)
        ? `${client} push killed half way leaves no partial blob, then pushes again`
        : limit!.chunked?.includes(client)
          ? `${client} push of a ${SIZE / MiB} MiB layer (above ${limit!.name}): refused whole, then pushed in chunks`
          : `${client} push of a ${SIZE / MiB} MiB layer is refused (above ${limit!.name}), leaves nothing visible`;
      it(name, async (t) => {
        clientsOr(t, client, 'crane');
        const c = ctx.c;
        const r = repo(`interrupt/push-${client}`);
        const img = layoutImage(c.dir('layout'), {
          layers: [smallLayer(`interrupt-${client}`), randomLayer('big.bin', SIZE)],
        });
        const bigLayer = img.layers[1]!;
        if (overLimit(SIZE)) {
          const ref = c.ref(r, 'v1');
          await pushOverLimit(t, client, () => c.push(client, img, ref), {
            repo: r,
            tag: 'v1',
            blob: bigLayer,
            size: sizeOf(img, bigLayer),
          });
          if (client === 'docker') await c.forget('docker', ref);
          return;
        }
        const viaProxy = c.ref(r, 'v1', proxy.host);
        // docker and podman get the image into their store first, so that only the upload is interrupted.
        let local = '';
        if (client === 'docker') local = await c.dockerLoad(img, viaProxy);
        if (client === 'podman') local = await c.loadLayout('podman', img);
        await killMidway('up', SIZE / 2, (onSpawn) =>
          client === 'docker' || client === 'podman'
            ? c.pushLocal(client, local, viaProxy, { onSpawn })
            : c.push(client, img, viaProxy, { onSpawn }),
        );
        if (client === 'docker') await sleep(1_000);
        if (ctx.target.requests) {
          const killed = await ctx.target.requests.since(s.mark);
          s.abortedUploadsUntil = s.mark + killed.length;
          const logged = killed.filter((q) => q.status >= 500 && /\/blobs\/uploads\//.test(q.path));
          if (logged.length) {
            t.annotate(
              `registry logged ${logged.map((q) => `${q.method} ${q.status}`).join(', ')} for the killed upload`,
            );
          }
        }
        // Nothing of the interrupted push is visible.
        const head = await http('HEAD', `/v2/${r}/blobs/${bigLayer}`);
        if (client !== 'docker') expect(head.status, 'partial blob visible after the killed push').toBe(404);
        else if (head.status === 200) t.annotate('dockerd finished the upload after its CLI was killed');
        const manifest = await http('HEAD', `/v2/${r}/manifests/v1`);
        if (client !== 'docker') expect(manifest.status).toBe(404);
        // Pushed again, directly: complete and intact.
        const ref = c.ref(r, 'v1');
        let digest: string;
        if (client === 'docker' || client === 'podman') {
          digest = (await c.pushLocal(client, local, ref)).digest;
        } else {
          digest = (await c.push(client, img, ref)).digest;
          expect(digest).toBe(img.digest);
        }
        await expectRegistryDigest(ref, digest, 'the second push');
        const m = await manifestOf(ref);
        for (const l of m.layers!) {
          const res = await http('HEAD', `/v2/${r}/blobs/${l.digest}`);
          expect(res.status).toBe(200);
          expect(Number(res.headers.get('content-length'))).toBe(l.size);
        }
        expect((await c.pull('skopeo', ref)).digest).toBe(digest);
      });
    }
  });
}
