import { describe, expect, it } from 'vitest';
import { CLIENTS, layoutImage } from '../harness/clients.ts';
import { smallLayer } from '../harness/images.ts';
import { note } from '../harness/proc.ts';
import { formatRequests, inRepo, summarizeUploads, type UploadSummary } from '../harness/requestlog.ts';
import type { Scenarios } from './context.ts';

/** Pushing the same image twice uploads no blob the second time. */
export function rePushUploadsNothing(s: Scenarios): void {
  const { ctx, repo, clientsOr, needLog, requestsDuring, expectRegistryDigest } = s;
  describe('pushing the same image twice uploads no blob the second time', () => {
    for (const client of CLIENTS) {
      it(`${client} pushes twice`, async (t) => {
        clientsOr(t, client, 'crane');
        needLog(t);
        const c = ctx.c;
        const r = repo(`repush/${client}`);
        const ref = c.ref(r, 'v1');
        const img = layoutImage(c.dir('layout'), {
          layers: [smallLayer(`repush-${client}-a`), smallLayer(`repush-${client}-b`)],
        });
        const first = await c.push(client, img, ref);
        await expectRegistryDigest(ref, first.digest, 'first push');
        // docker, podman, buildah and ctr push the image now in their own store a second time.
        const again =
          client === 'docker' || client === 'podman' || client === 'buildah' || client === 'ctr'
            ? () => c.pushLocal(client, first.local!, ref)
            : () => c.push(client, img, ref);
        const { value, requests } = await requestsDuring(again);
        await expectRegistryDigest(ref, value.digest, 'second push');
        const s: UploadSummary = summarizeUploads(inRepo(requests, r));
        const seen = formatRequests(requests);
        expect(s.patches + s.completions, `second push uploaded blobs:\n${seen}`).toBe(0);
        expect(s.sessionsOpened, `second push opened upload sessions:\n${seen}`).toBe(0);
        const found = inRepo(requests, r).filter((q) => q.method === 'HEAD' && q.status === 200);
        expect(
          found.length,
          `second push never HEADed an existing blob or manifest:\n${seen}`,
        ).toBeGreaterThan(0);
        // crane, regctl and oras stop at the manifest HEAD; podman/buildah HEAD the uncompressed digest
        // first (404), then the compressed one (200).
        const putManifest = requests.some((q) => q.method === 'PUT' && q.path.includes('/manifests/'));
        t.annotate(`${s.blobHeads} blob HEADs; manifest ${putManifest ? 'PUT again' : 'not PUT again'}`);
        note(`re-push ${client}: ${JSON.stringify(s)}`);
      });
    }
  });
}
