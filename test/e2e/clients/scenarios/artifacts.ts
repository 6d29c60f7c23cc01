import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { layoutImage } from '../harness/clients.ts';
import { MT, smallLayer } from '../harness/images.ts';
import { mustFail, type Scenarios } from './context.ts';

/** Artifacts, referrers and signatures (oras, cosign). */
export function artifactsReferrersAndSignatures(s: Scenarios): void {
  const { ctx, repo, clientsOr, expectRegistryDigest, manifestOf, http } = s;
  describe('artifacts, referrers and signatures', () => {
    let subject = '';
    let subjectDigest = '';
    let referrersApi: boolean | undefined;

    async function hasReferrersApi(): Promise<boolean> {
      if (referrersApi === undefined) {
        const res = await http('GET', `/v2/${repo('art/image')}/referrers/${subjectDigest}`);
        referrersApi = res.status === 200;
      }
      return referrersApi;
    }

    it('oras push, oras pull an artifact; crane pushes an image to attach to', async (t) => {
      clientsOr(t, 'oras', 'crane');
      const c = ctx.c;
      const dir = c.dir('artifact');
      writeFileSync(path.join(dir, 'notes.txt'), 'an artifact, not an image\n');
      const ref = c.ref(repo('art/files'), 'v1');
      const out = await c.oras(
        [
          'push',
          '--no-tty',
          '--plain-http',
          '--artifact-type',
          'application/vnd.berth.e2e.notes',
          ref,
          'notes.txt:text/plain',
        ],
        { cwd: dir },
      );
      const digest = /Digest: (sha256:[a-f0-9]{64})/.exec(out.stdout)?.[1];
      expect(digest, out.stdout).toBeDefined();
      await expectRegistryDigest(ref, digest!, 'oras push');
      const m = await manifestOf(ref);
      expect(m.mediaType).toBe(MT.ociManifest);
      const into = c.dir('artifact-pull');
      await c.oras(['pull', '--no-tty', '--plain-http', '-o', into, ref]);
      expect(readFileSync(path.join(into, 'notes.txt'), 'utf8')).toBe('an artifact, not an image\n');

      const img = layoutImage(c.dir('layout'), { layers: [smallLayer('art-subject')] });
      subject = c.ref(repo('art/image'), 'v1');
      subjectDigest = (await c.push('crane', img, subject)).digest;
    });

    it('oras attach an SBOM to the image; oras discover finds it', async (t) => {
      clientsOr(t, 'oras');
      if (!subjectDigest) t.skip('setup failed');
      const c = ctx.c;
      const dir = c.dir('sbom');
      writeFileSync(path.join(dir, 'sbom.json'), JSON.stringify({ packages: ['berth'] }));
      const out = await c.oras(
        [
          'attach',
          '--no-tty',
          '--plain-http',
          '--artifact-type',
          'application/vnd.berth.e2e.sbom',
          subject,
          'sbom.json:application/json',
        ],
        { cwd: dir },
      );
      const referrer = /Digest: (sha256:[a-f0-9]{64})/.exec(out.stdout)?.[1];
      expect(referrer, out.stdout).toBeDefined();
      const disc = await c.oras(['discover', '--no-tty', '--plain-http', '--format', 'json', subject]);
      const found = JSON.parse(disc.stdout) as {
        referrers?: { digest: string; artifactType: string }[];
        manifests?: { digest: string; artifactType: string }[];
      };
      const list = found.referrers ?? found.manifests ?? [];
      expect(
        list.map((x) => x.digest),
        disc.stdout,
      ).toContain(referrer);
      expect(list.find((x) => x.digest === referrer)?.artifactType).toBe('application/vnd.berth.e2e.sbom');
      if (await hasReferrersApi()) {
        const res = await http('GET', `/v2/${repo('art/image')}/referrers/${subjectDigest}`);
        const idx = (await res.json()) as { manifests: { digest: string }[] };
        expect(idx.manifests.map((x) => x.digest)).toContain(referrer);
      } else {
        t.annotate('no referrers API: oras used the sha256-<digest> tag fallback');
        const tags = (await c.crane(['ls', '--insecure', `${ctx.target.host}/${repo('art/image')}`])).stdout;
        expect(tags).toContain(subjectDigest.replace(':', '-'));
      }
      // The subject still pulls unchanged.
      expect((await c.pull('docker', subject)).digest).toBe(subjectDigest);
    });

    it('cosign sign with a local key (no transparency log), cosign verify', async (t) => {
      clientsOr(t, 'cosign');
      if (!subjectDigest) t.skip('setup failed');
      const c = ctx.c;
      const keys = c.dir('cosign-keys');
      await c.cosign(['generate-key-pair'], { cwd: keys });
      const byDigest = c.ref(repo('art/image'), subjectDigest);
      await c.cosign(
        ['sign', '--key', 'cosign.key', '--tlog-upload=false', '--allow-http-registry', '--yes', byDigest],
        { cwd: keys },
      );
      const v = await c.cosign(
        ['verify', '--key', 'cosign.pub', '--insecure-ignore-tlog', '--allow-http-registry', subject],
        { cwd: keys },
      );
      expect(v.stdout).toContain(subjectDigest);
      // A different key must not verify.
      const other = c.dir('cosign-other');
      await c.cosign(['generate-key-pair'], { cwd: other });
      const text = await mustFail('cosign verify with another key', () =>
        c.cosign(
          ['verify', '--key', 'cosign.pub', '--insecure-ignore-tlog', '--allow-http-registry', subject],
          {
            cwd: other,
          },
        ),
      );
      expect(text).toMatch(/no matching signatures|invalid signature|failed to verify/i);
    });

    it('cosign sign/verify storing the signature as an OCI 1.1 referrer', async (t) => {
      clientsOr(t, 'cosign');
      if (!subjectDigest) t.skip('setup failed');
      if (!(await hasReferrersApi()))
        t.skip('the registry has no referrers API (GET /v2/<name>/referrers/<digest>)');
      const c = ctx.c;
      const keys = c.dir('cosign-oci11');
      await c.cosign(['generate-key-pair'], { cwd: keys });
      const env = { COSIGN_EXPERIMENTAL: '1' };
      const byDigest = c.ref(repo('art/image'), subjectDigest);
      await c.cosign(
        [
          'sign',
          '--key',
          'cosign.key',
          '--tlog-upload=false',
          '--allow-http-registry',
          '--registry-referrers-mode=oci-1-1',
          '--yes',
          byDigest,
        ],
        { cwd: keys, env },
      );
      const v = await c.cosign(
        [
          'verify',
          '--key',
          'cosign.pub',
          '--insecure-ignore-tlog',
          '--allow-http-registry',
          '--experimental-oci11',
          subject,
        ],
        { cwd: keys, env },
      );
      expect(v.stdout).toContain(subjectDigest);
    });
  });
}
