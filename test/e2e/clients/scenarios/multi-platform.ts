import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { layoutImage } from '../harness/clients.ts';
import { MT, sha256, smallLayer, verifyDirCopy, verifyLayout } from '../harness/images.ts';
import type { Scenarios } from './context.ts';

/** OCI indexes and Docker manifest lists. */
export function multiPlatformImages(s: Scenarios): void {
  const { ctx, repo, clientsOr, expectRegistryDigest, manifestOf } = s;
  describe('multi-platform images', () => {
    const platforms = [
      { os: 'linux', arch: 'amd64' },
      { os: 'linux', arch: 'arm64' },
    ];

    it('OCI index: buildah manifest create/add/push --all; skopeo, regctl, docker, ctr pull', async (t) => {
      clientsOr(t, 'buildah', 'skopeo', 'regctl', 'docker', 'ctr');
      const c = ctx.c;
      const list = 'localhost/multi-oci-list';
      await c.buildah(['manifest', 'rm', list], { allowFailure: true });
      await c.buildah(['manifest', 'create', list]);
      for (const p of platforms) {
        const img = await c.buildahScratch(`localhost/multi-oci-${p.arch}`, { [`${p.arch}.txt`]: p.arch }, p);
        await c.buildah(['manifest', 'add', list, `containers-storage:${img}`]);
      }
      const ref = c.ref(repo('multi-oci'), 'v1');
      const digestFile = path.join(c.dir('digest'), 'digest');
      await c.buildah([
        'manifest',
        'push',
        '--all',
        '--format',
        'oci',
        '--tls-verify=false',
        '--digestfile',
        digestFile,
        list,
        `docker://${ref}`,
      ]);
      const digest = readFileSync(digestFile, 'utf8').trim();
      await expectRegistryDigest(ref, digest, 'buildah manifest push');
      const index = await manifestOf(ref);
      expect(index.mediaType).toBe(MT.ociIndex);
      expect(index.manifests?.map((m) => m.platform?.architecture).sort()).toEqual(['amd64', 'arm64']);
      for (const child of index.manifests!) {
        await expectRegistryDigest(c.ref(repo('multi-oci'), child.digest), child.digest, 'child by digest');
      }

      const all = c.dir('pull-skopeo-all');
      await c.skopeo(['copy', '-q', '--all', '--src-tls-verify=false', `docker://${ref}`, `dir:${all}`]);
      const copied = verifyDirCopy(all);
      expect(copied.digest).toBe(digest);
      expect(copied.children).toEqual(index.manifests!.map((m) => m.digest));
      expect(copied.blobsVerified).toBe(1 + 2 * 3);

      const viaRegctl = await c.pull('regctl', ref);
      expect(viaRegctl.digest).toBe(digest);
      expect(viaRegctl.blobsVerified).toBe(1 + 2 * 3);

      // docker and ctr pick linux/amd64 from the index.
      const amd64 = index.manifests!.find((m) => m.platform?.architecture === 'amd64')!;
      const viaDocker = await c.pull('docker', ref);
      expect(viaDocker.digest, 'docker reports the index digest').toBe(digest);
      const arch = await c.docker(['image', 'inspect', '--format', '{{.Architecture}}', ref]);
      expect(arch.stdout.trim()).toBe('amd64');
      await c.ctr(['images', 'pull', ...c.ctrRemote(), ref]);
      const ctrLs = await c.ctr(['images', 'ls']);
      expect(ctrLs.stdout).toContain(digest);
      const amd64Manifest = (await c.ctr(['content', 'get', amd64.digest])).stdout;
      expect(sha256(amd64Manifest)).toBe(amd64.digest);
    });

    it('Docker manifest list: docker manifest create/push; podman and crane pull arm64', async (t) => {
      clientsOr(t, 'docker', 'podman', 'crane');
      const c = ctx.c;
      const children: string[] = [];
      for (const p of platforms) {
        const img = layoutImage(c.dir('layout'), {
          layers: [smallLayer(`docker-list-${p.arch}`)],
          architecture: p.arch,
        });
        const childRef = c.ref(repo('multi-docker'), `only-${p.arch}`);
        // docker load + docker push turns each into a Docker schema2 manifest (arm64 too: nothing runs).
        await c.push('docker', img, childRef);
        children.push(childRef);
      }
      const ref = c.ref(repo('multi-docker'), 'v1');
      await c.docker(['manifest', 'rm', ref], { allowFailure: true });
      await c.docker(['manifest', 'create', '--insecure', ref, ...children]);
      const pushedOut = await c.docker(['manifest', 'push', '--insecure', '--purge', ref]);
      const digest = /sha256:[a-f0-9]{64}/.exec(pushedOut.stdout)?.[0];
      expect(digest, `docker manifest push printed: ${pushedOut.stdout}`).toBeDefined();
      await expectRegistryDigest(ref, digest!, 'docker manifest push');
      const list = await manifestOf(ref);
      expect(list.mediaType).toBe(MT.dockerList);
      const arm = list.manifests!.find((m) => m.platform?.architecture === 'arm64');
      expect(arm, JSON.stringify(list)).toBeDefined();

      const viaPodman = await c.podman([
        'pull',
        '-q',
        '--tls-verify=false',
        '--arch',
        'arm64',
        `docker://${ref}`,
      ]);
      const id = viaPodman.stdout.trim().split('\n').pop()!;
      const inspected = await c.podman(['image', 'inspect', '--format', '{{.Architecture}} {{.Digest}}', id]);
      expect(inspected.stdout.trim()).toBe(`arm64 ${digest}`);

      const dir = c.dir('pull-crane-arm64');
      await c.crane(['pull', '--insecure', '--platform', 'linux/arm64', '--format', 'oci', ref, dir]);
      const got = verifyLayout(dir);
      expect(got.digest, 'crane pull --platform resolves the list to the arm64 child').toBe(arm!.digest);
    });

    it('crane index append of two images; oras and regctl pull the index', async (t) => {
      clientsOr(t, 'crane', 'oras', 'regctl');
      const c = ctx.c;
      const children: string[] = [];
      for (const p of platforms) {
        const img = layoutImage(c.dir('layout'), {
          layers: [smallLayer(`crane-index-${p.arch}`)],
          architecture: p.arch,
        });
        const childRef = c.ref(repo('multi-crane'), `only-${p.arch}`);
        await c.push('crane', img, childRef);
        children.push(childRef);
      }
      const ref = c.ref(repo('multi-crane'), 'v1');
      const out = await c.crane([
        'index',
        'append',
        '--insecure',
        ...children.flatMap((r) => ['-m', r]),
        '-t',
        ref,
      ]);
      const digest = /sha256:[a-f0-9]{64}/.exec(out.stdout)?.[0];
      expect(digest, `crane index append printed: ${out.stdout}`).toBeDefined();
      await expectRegistryDigest(ref, digest!, 'crane index append');
      const index = await manifestOf(ref);
      expect(index.manifests?.map((m) => m.platform?.architecture).sort()).toEqual(['amd64', 'arm64']);
      for (const puller of ['oras', 'regctl'] as const) {
        const got = await c.pull(puller, ref);
        expect(got.digest, `${puller} pull`).toBe(digest);
        expect(got.children).toEqual(index.manifests!.map((m) => m.digest));
      }
    });
  });
}
