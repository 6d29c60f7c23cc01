import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { layoutImage } from '../harness/clients.ts';
import { smallLayer } from '../harness/images.ts';
import { note, type RunResult } from '../harness/proc.ts';
import {
  formatRequests,
  inRepo,
  summarizeUploads,
  type LoggedRequest,
  type UploadSummary,
} from '../harness/requestlog.ts';
import type { Scenarios } from './context.ts';

/** Two images sharing layers in different repositories: mounts and copies. */
export function crossRepositoryMounts(s: Scenarios): void {
  const { ctx, repo, clientsOr, needLog, requestsDuring, expectRegistryDigest } = s;
  describe('two images sharing layers pushed into different repositories', () => {
    const base = () => [smallLayer('shared-base-1', 3), smallLayer('shared-base-2', 3)];

    async function expectMounted(
      requests: LoggedRequest[],
      targetRepo: string,
      shared: number,
    ): Promise<UploadSummary> {
      const s = summarizeUploads(inRepo(requests, targetRepo));
      const seen = formatRequests(inRepo(requests, targetRepo));
      expect(
        s.mountsDone,
        `expected ${shared} mounted blobs in ${targetRepo}:\n${seen}`,
      ).toBeGreaterThanOrEqual(shared);
      return s;
    }

    it('docker mounts the shared layers from the first repository', async (t) => {
      clientsOr(t, 'docker');
      needLog(t);
      const c = ctx.c;
      const a = layoutImage(c.dir('layout'), { layers: base() });
      const b = layoutImage(c.dir('layout'), { layers: [...base(), smallLayer('docker-derived')] });
      const refA = c.ref(repo('mount/docker-a'), 'v1');
      const refB = c.ref(repo('mount/docker-b'), 'v1');
      await c.dockerLoad(a, refA);
      await c.dockerLoad(b, refB);
      await c.pushLocal('docker', refA, refA);
      const { value, requests } = await requestsDuring(() => c.pushLocal('docker', refB, refB));
      await expectRegistryDigest(refB, value.digest, 'docker push of the derived image');
      const s = await expectMounted(requests, repo('mount/docker-b'), 2);
      expect(s.completions, 'only the new layer and the config are uploaded').toBe(2);
      expect((await c.pull('crane', refB)).digest).toBe(value.digest);
    });

    it('podman mounts the shared layers (and cancels declined mounts with DELETE)', async (t) => {
      clientsOr(t, 'podman');
      needLog(t);
      const c = ctx.c;
      const a = layoutImage(c.dir('layout'), { layers: base() }, 'a');
      const b = layoutImage(c.dir('layout'), { layers: [...base(), smallLayer('podman-derived')] }, 'b');
      const refA = c.ref(repo('mount/podman-a'), 'v1');
      const refB = c.ref(repo('mount/podman-b'), 'v1');
      await c.push('podman', a, refA);
      const idB = (await c.podman(['pull', '-q', `oci:${b.layout}:${b.tag}`])).stdout
        .trim()
        .split('\n')
        .pop()!;
      const { value, requests } = await requestsDuring(() => c.pushLocal('podman', idB, refB));
      await expectRegistryDigest(refB, value.digest, 'podman push of the derived image');
      const s = await expectMounted(requests, repo('mount/podman-b'), 2);
      expect(s.sessionDeletes, 'a 201 mount leaves no session to delete').toBe(s.mountsDeclined);
      expect((await c.pull('skopeo', refB)).digest).toBe(value.digest);
    });

    it('crane append onto a base in another repository mounts its layers', async (t) => {
      clientsOr(t, 'crane');
      needLog(t);
      const c = ctx.c;
      const a = layoutImage(c.dir('layout'), { layers: base() });
      const refA = c.ref(repo('mount/crane-a'), 'v1');
      const refB = c.ref(repo('mount/crane-b'), 'v1');
      await c.push('crane', a, refA);
      const layerTar = path.join(c.dir('layer'), 'layer.tar');
      writeFileSync(layerTar, smallLayer('crane-derived'));
      const { value, requests } = await requestsDuring(() =>
        c.crane(['append', '--insecure', '-b', refA, '-f', layerTar, '-t', refB]),
      );
      const digest = /sha256:[a-f0-9]{64}/.exec(value.stdout)?.[0] ?? (await c.craneDigest(refB));
      await expectRegistryDigest(refB, digest, 'crane append');
      await expectMounted(requests, repo('mount/crane-b'), 2);
      expect((await c.pull('regctl', refB)).digest).toBe(digest);
    });

    for (const client of ['crane', 'regctl', 'oras', 'skopeo'] as const) {
      it(`${client} copies an image between two repositories of the registry`, async (t) => {
        clientsOr(t, client);
        needLog(t);
        const c = ctx.c;
        const a = layoutImage(c.dir('layout'), {
          layers: [smallLayer(`copy-${client}-1`), smallLayer(`copy-${client}-2`)],
        });
        const refA = c.ref(repo(`copy/${client}-a`), 'v1');
        const refB = c.ref(repo(`copy/${client}-b`), 'v1');
        await c.push('crane', a, refA);
        const copy: Record<typeof client, () => Promise<RunResult>> = {
          crane: () => c.crane(['copy', '--insecure', refA, refB]),
          regctl: () => c.regctl(['image', 'copy', refA, refB]),
          oras: () => c.oras(['cp', '--no-tty', '--from-plain-http', '--to-plain-http', refA, refB]),
          skopeo: () =>
            c.skopeo([
              'copy',
              '-q',
              '--src-tls-verify=false',
              '--dest-tls-verify=false',
              `docker://${refA}`,
              `docker://${refB}`,
            ]),
        };
        const { requests } = await requestsDuring(copy[client]);
        await expectRegistryDigest(refB, a.digest, `${client} copy`);
        const s = summarizeUploads(inRepo(requests, repo(`copy/${client}-b`)));
        note(`copy ${client}: ${JSON.stringify(s)}`);
        t.annotate(`mounts done ${s.mountsDone}, uploads ${s.completions}`);
        // Whatever the client chose, every blob arrived: mounted or uploaded, none skipped.
        expect(s.mountsDone + s.completions, formatRequests(requests)).toBeGreaterThanOrEqual(3);
      });
    }
  });
}
