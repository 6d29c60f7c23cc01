// The pull-through cache with the Docker daemon: Debian's docker-registry (CNCF
// Distribution 2.8) on a loopback port stands in for Docker Hub, loaded with `alpine`- and
// `busybox`-style images; Berth runs with `--proxy-upstream` pointing at it; a private dockerd
// started with `--registry-mirror` (then a second one configured through daemon.json) pulls the
// short names through Berth. The second pull of each image must not reach the upstream: its own
// request log is counted. The first daemon's Berth runs without authentication, the second's with
// an auth file granting anonymous pull, so the daemon's token dance with the mirror is exercised.
//
//   BERTH_E2E_SUITE=mirror npx vitest run -c test/e2e/clients/vitest.config.ts
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type Dockerd } from './harness/daemons.ts';
import { OciLayout, smallLayer, type BuiltImage } from './harness/images.ts';
import { note, run, setTranscript } from './harness/proc.ts';
import { repoRoot, startBerth, startReference, type RegistryTarget } from './harness/registry.ts';
import { serverErrors, type LoggedRequest } from './harness/requestlog.ts';

const docker = process.env.BERTH_E2E_DOCKER ?? 'docker';

describe('Berth as the Docker daemon registry mirror (pull-through cache of a Distribution upstream)', () => {
  const runId = randomBytes(4).toString('hex');
  let workDir = '';
  let upstream: RegistryTarget;
  const stops: (() => Promise<void>)[] = [];
  let alpine: { index: string; amd64: BuiltImage };
  /** The digest of busybox:1.36 as the upstream serves it (converted to a Docker schema2 manifest). */
  let busybox = '';

  beforeAll(async () => {
    const base = process.env.BERTH_E2E_WORKDIR ?? os.tmpdir();
    workDir = path.join(base, `berth-e2e-mirror-${runId}`);
    mkdirSync(workDir, { recursive: true });
    setTranscript(path.join(workDir, 'commands.log'));
    upstream = await startReference(path.join(workDir, 'upstream'));
    stops.push(() => upstream.stop());

    // Docker Hub's official images are multi-platform indexes under library/.
    const layout = new OciLayout(path.join(workDir, 'layout'));
    const amd64 = layout.addImage({ layers: [smallLayer(`alpine-${runId}`), smallLayer(`apk-${runId}`)] });
    const arm64 = layout.addImage({ layers: [smallLayer(`alpine-arm-${runId}`)], architecture: 'arm64' });
    const index = layout.addIndex([amd64.descriptor, arm64.descriptor]);
    layout.tag('latest', index);
    layout.tag('1.36', layout.addImage({ layers: [smallLayer(`busybox-${runId}`)] }).descriptor);
    alpine = { index: index.digest, amd64 };
    const digestFile = path.join(workDir, 'busybox.digest');
    const copy = (tag: string, name: string, all: boolean) =>
      run('skopeo', [
        'copy',
        '-q',
        ...(all ? ['--all'] : ['--format', 'v2s2', '--digestfile', digestFile]),
        '--dest-tls-verify=false',
        `oci:${layout.dir}:${tag}`,
        `docker://${upstream.host}/library/${name}:${tag}`,
      ]);
    await copy('latest', 'alpine', true);
    await copy('1.36', 'busybox', false);
    busybox = readFileSync(digestFile, 'utf8').trim();
  });

  afterAll(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    if (!process.env.BERTH_E2E_KEEP && workDir) rmSync(workDir, { recursive: true, force: true });
  });

  /** Berth mirroring the upstream, with its own data dir and log. */
  async function mirror(label: string, env: Record<string, string> = {}): Promise<RegistryTarget> {
    const dir = path.join(workDir, label);
    mkdirSync(dir, { recursive: true });
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    try {
      const target = await startBerth(dir, {
        command: `npm start -- --port {port} --data-dir {dataDir} --proxy-upstream ${upstream.url}`,
      });
      stops.push(() => target.stop());
      return target;
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  }

  async function daemon(
    label: string,
    args: (dir: string) => string[],
  ): Promise<Dockerd & { dockerConfig: string }> {
    const dir = path.join(workDir, label);
    mkdirSync(dir, { recursive: true });
    const d = await startDockerd(dir, process.env, args(dir));
    stops.push(() => d.daemon.stop());
    const dockerConfig = path.join(dir, 'docker-config');
    mkdirSync(dockerConfig, { recursive: true });
    writeFileSync(path.join(dockerConfig, 'config.json'), '{}');
    return { ...d, dockerConfig };
  }

  const dockerCli = (d: Dockerd & { dockerConfig: string }, args: string[]) =>
    run(docker, args, {
      env: { ...process.env, DOCKER_HOST: d.host, DOCKER_CONFIG: d.dockerConfig },
      timeoutMs: 120_000,
    });

  const describeRequests = (reqs: LoggedRequest[]) =>
    reqs.map((r) => `${r.method} ${r.path} ${r.status}`).join('\n');

  /** Pulls `name`, removes it, pulls again: the second pull is served by Berth alone. */
  async function pullTwice(
    d: Dockerd & { dockerConfig: string },
    berth: RegistryTarget,
    name: string,
    repo: string,
    digest: string,
  ): Promise<void> {
    const up = upstream.requests!;
    const before = up.mark();
    const berthBefore = berth.requests!.mark();
    await dockerCli(d, ['pull', name]);
    const repoDigests = (await dockerCli(d, ['image', 'inspect', name, '--format', '{{json .RepoDigests}}']))
      .stdout;
    expect(repoDigests).toContain(digest);
    const first = await berth.requests!.since(berthBefore);
    // The daemon asked the mirror, with the Docker Hub name, and the mirror asked the upstream.
    expect(
      first.some(
        (r) => r.path === `/v2/${repo}/manifests/${name.split(':')[1] ?? 'latest'}` && r.status === 200,
      ),
    ).toBe(true);
    expect((await up.since(before)).some((r) => r.path.startsWith(`/v2/${repo}/blobs/`))).toBe(true);
    expect(serverErrors(first)).toEqual([]);

    await dockerCli(d, ['rmi', name]);
    const upstreamMark = up.mark();
    const berthMark = berth.requests!.mark();
    await dockerCli(d, ['pull', name]);
    const second = await berth.requests!.since(berthMark);
    note(`second pull of ${name} through Berth:\n${describeRequests(second)}`);
    expect(second.filter((r) => r.path.includes('/blobs/') && r.status === 200).length).toBeGreaterThan(0);
    const reached = await up.since(upstreamMark);
    expect(reached, describeRequests(reached)).toEqual([]);
  }

  it('dockerd --registry-mirror: `docker pull alpine` goes through Berth (no auth), the second pull never reaches the upstream', async () => {
    const berth = await mirror('berth-open');
    const d = await daemon('dockerd-flag', () => ['--registry-mirror', berth.url]);
    await pullTwice(d, berth, 'alpine', 'library/alpine', alpine.index);
    // A push to the mirrored namespace is refused with the reason.
    await dockerCli(d, ['tag', 'alpine', `${berth.host}/library/alpine:mine`]);
    const push = await run(docker, ['push', `${berth.host}/library/alpine:mine`], {
      env: { ...process.env, DOCKER_HOST: d.host, DOCKER_CONFIG: d.dockerConfig },
      allowFailure: true,
      timeoutMs: 120_000,
    });
    expect(push.code).not.toBe(0);
    expect(push.stderr + push.stdout).toContain('read-only pull-through cache');
    await d.daemon.stop();
  });

  it('daemon.json registry-mirrors with Berth requiring tokens (anonymous pull): the daemon does the token dance', async () => {
    const authFile = path.join(workDir, 'auth.json');
    await run('npx', ['tsx', 'bin/berth.ts', 'anonymous', 'set', 'library/*', '--auth-file', authFile], {
      cwd: repoRoot,
    });
    const berth = await mirror('berth-auth', { BERTH_AUTH_FILE: authFile });
    const d = await daemon('dockerd-json', (dir) => {
      const file = path.join(dir, 'daemon.json');
      writeFileSync(file, JSON.stringify({ 'registry-mirrors': [berth.url] }));
      return ['--config-file', file];
    });
    await pullTwice(d, berth, 'busybox:1.36', 'library/busybox', busybox);
    const all = berth.requests!.all();
    expect(all.some((r) => r.status === 401)).toBe(true);
  });
});
