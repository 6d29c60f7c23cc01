// What CI pipelines push, with the real tools: BuildKit's registry cache in both forms
// (the default index of blobs, and image-manifest=true) with oci-mediatypes true and false and
// mode=max, exported and then imported by a build whose local cache was pruned (its steps must
// report CACHED); a cache kept only by its index surviving `berth gc --delete-untagged`; a zstd
// image pushed by BuildKit; Helm charts (push, show chart, pull); `crane append`; a ko image.
//
//   npm run test:e2e:ci-tools                                        npm start, filesystem store
//   npx tsx test/e2e/with-s3.ts npm run test:e2e:ci-tools            npm start, S3 (MinIO)
//   BERTH_E2E_CI_TARGET=relay npx tsx test/e2e/with-s3.ts npm run test:e2e:ci-tools
//                          the Lambda bundle behind the local gateway on S3, every tool through `berth relay`
//   BERTH_E2E_CI_TARGET=reference npm run test:e2e:ci-tools
//                          Debian's docker-registry (Distribution 2.8), to validate the suite itself
//
// Tools from test/e2e/setup-clients.sh: buildkitd + buildctl, helm, crane, ko (go install, in
// $BERTH_CACHE/bin) and runc (apt). buildkitd runs rootful with the OCI worker and the native
// snapshotter; every build is FROM scratch, so nothing is fetched from the internet.
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  have,
  run,
  setTranscript,
  startDaemon,
  waitFor,
  type Daemon,
  type RunResult,
} from './harness/proc.ts';
import { repoRoot, startBerth, startReference, type RegistryTarget } from './harness/registry.ts';
import { GatewayRequestLog, serverErrors, type LoggedRequest } from './harness/requestlog.ts';

const TARGET = process.env.BERTH_E2E_CI_TARGET ?? 'local';
const STORE = process.env.BERTH_STORAGE === 's3' ? 's3' : 'filesystem';
const BIN = path.join(process.env.BERTH_CACHE ?? path.join(os.homedir(), '.cache', 'berth'), 'bin');
const TOOLS = ['buildkitd', 'buildctl', 'helm', 'crane', 'ko'] as const;

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
const ACCEPT = [
  OCI_INDEX,
  DOCKER_LIST,
  OCI_MANIFEST,
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}
interface Manifest {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

const sha256 = (bytes: Uint8Array | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe(`CI tools against ${TARGET === 'reference' ? 'docker-registry' : 'Berth'} (${TARGET === 'relay' ? 'Lambda gateway + berth relay' : TARGET === 'reference' ? 'Distribution 2.8, the reference' : 'npm start'}, ${STORE})`, () => {
  const runId = randomBytes(4).toString('hex');
  const work = mkdtempSync(path.join(process.env.BERTH_E2E_WORKDIR ?? os.tmpdir(), 'berth-e2e-ci-tools-'));
  let registry: RegistryTarget;
  let relay: Daemon | undefined;
  let buildkitd: Daemon;
  /** host:port the tools push to: Berth itself, or the relay in front of the gateway. */
  let pushHost = '';
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${BIN}:${process.env.PATH ?? ''}`,
    HOME: path.join(work, 'home'),
    DOCKER_CONFIG: path.join(work, 'docker-config'),
    HELM_CACHE_HOME: path.join(work, 'helm', 'cache'),
    HELM_CONFIG_HOME: path.join(work, 'helm', 'config'),
    HELM_DATA_HOME: path.join(work, 'helm', 'data'),
    // The Go build cache of the machine (ko compiles), not one in the throwaway HOME.
    GOCACHE: process.env.GOCACHE ?? path.join(os.homedir(), '.cache', 'go-build'),
    GOMODCACHE: process.env.GOMODCACHE ?? path.join(os.homedir(), 'go', 'pkg', 'mod'),
    GOFLAGS: '-buildvcs=false',
  };
  const socket = `unix://${path.join(work, 'buildkitd.sock')}`;

  const tool = (
    name: string,
    args: string[],
    opts: { timeoutMs?: number; allowFailure?: boolean; cwd?: string } = {},
  ) => run(path.join(BIN, name), args, { env, timeoutMs: 300_000, ...opts });

  beforeAll(async () => {
    setTranscript(path.join(work, 'commands.log'));
    const missing = [
      ...TOOLS.filter((t) => !existsSync(path.join(BIN, t))),
      ...(have('runc') ? [] : ['runc']),
    ];
    if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}: run test/e2e/setup-clients.sh`);
    for (const dir of [env.HOME!, env.DOCKER_CONFIG!]) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(env.DOCKER_CONFIG!, 'config.json'), '{}');

    if (TARGET === 'relay') {
      if (STORE !== 's3') throw new Error('the relay target needs S3: run inside test/e2e/with-s3.ts');
      await run('npm', ['run', 'build'], { cwd: repoRoot, timeoutMs: 300_000 });
      registry = await startBerth(path.join(work, 'gateway'), {
        command: 'npx tsx bin/berth.ts serve --lambda --port {port} --data-dir {dataDir}',
        requestLog: (file) => new GatewayRequestLog(file),
      });
      const port = await freePort();
      relay = startDaemon(
        'relay',
        'npx',
        ['tsx', 'bin/berth.ts', 'relay', '--registry', registry.url, '--port', String(port)],
        {
          cwd: repoRoot,
          logFile: path.join(work, 'relay.log'),
          env: { ...process.env, NO_COLOR: '1' },
          group: true,
        },
      );
      await waitFor(
        'the relay to answer',
        async () => (await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined))?.status === 200,
        60_000,
      );
      pushHost = `127.0.0.1:${port}`;
    } else if (TARGET === 'reference') {
      registry = await startReference(path.join(work, 'reference'));
      pushHost = registry.host;
    } else {
      mkdirSync(path.join(work, 'berth'), { recursive: true });
      registry = await startBerth(path.join(work, 'berth'));
      pushHost = registry.host;
    }

    // buildkitd speaks plain HTTP to the registry it pushes to (as `registry.insecure=true` in
    // each cache and output option also says).
    const config = path.join(work, 'buildkitd.toml');
    writeFileSync(config, `[registry."${pushHost}"]\n  http = true\n  insecure = true\n`);
    buildkitd = startDaemon(
      'buildkitd',
      path.join(BIN, 'buildkitd'),
      [
        '--root',
        path.join(work, 'buildkit'),
        '--addr',
        socket,
        '--config',
        config,
        '--oci-worker=true',
        '--containerd-worker=false',
        '--oci-worker-snapshotter=native',
      ],
      { logFile: path.join(work, 'buildkitd.log'), env },
    );
    await waitFor(
      'buildkitd to answer',
      async () =>
        (
          await tool('buildctl', ['--addr', socket, 'debug', 'workers'], {
            allowFailure: true,
            timeoutMs: 10_000,
          })
        ).code === 0,
      60_000,
    );
  }, 10 * 60_000);

  afterAll(async () => {
    await buildkitd?.stop();
    await relay?.stop();
    const errors = registry?.requests ? serverErrors(registry.requests.all()) : [];
    await registry?.stop();
    if (!process.env.BERTH_E2E_KEEP) rmSync(work, { recursive: true, force: true });
    // Checked last, so a 5xx anywhere in the run fails it even when the tests passed.
    expect(errors, 'the registry answered 5xx').toEqual([]);
  });

  /** A build context whose files are new to this run: `FROM scratch` and two COPY steps. */
  function context(name: string): string {
    const dir = path.join(work, 'contexts', name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'a.txt'), `${name} ${runId}\n`);
    writeFileSync(path.join(dir, 'b.bin'), randomBytes(200_000));
    writeFileSync(path.join(dir, 'Dockerfile'), 'FROM scratch\nCOPY a.txt /a.txt\nCOPY b.bin /b.bin\n');
    return dir;
  }

  /** buildctl build of `dir`; its progress (plain) is on stderr. */
  async function build(
    dir: string,
    extra: string[],
    allowFailure = false,
  ): Promise<RunResult & { progress: string }> {
    const r = await tool(
      'buildctl',
      [
        '--addr',
        socket,
        'build',
        '--progress=plain',
        '--frontend',
        'dockerfile.v0',
        '--local',
        `context=${dir}`,
        '--local',
        `dockerfile=${dir}`,
        ...extra,
      ],
      { allowFailure },
    );
    return { ...r, progress: r.stderr + r.stdout };
  }

  /** Empties buildkitd's own cache, so a build can only be CACHED through an imported cache. */
  const prune = () => tool('buildctl', ['--addr', socket, 'prune', '--all']);

  /** The steps a build's progress names, and which of them it reports CACHED. */
  function steps(progress: string): { copies: string[]; cached: string[] } {
    const names = new Map<string, string>();
    for (const m of progress.matchAll(/^#(\d+) \[\d+\/\d+\] (COPY .*)$/gm)) names.set(m[1]!, m[2]!);
    const cached = [...progress.matchAll(/^#(\d+) CACHED$/gm)]
      .map((m) => names.get(m[1]!))
      .filter((n): n is string => n !== undefined);
    return { copies: [...new Set(names.values())], cached: [...new Set(cached)] };
  }

  async function manifestOf(
    repo: string,
    ref: string,
  ): Promise<{ status: number; mediaType: string | null; body?: Manifest }> {
    const res = await fetch(`${registry.url}/v2/${repo}/manifests/${ref}`, { headers: { Accept: ACCEPT } });
    return {
      status: res.status,
      mediaType: res.headers.get('Content-Type'),
      body: res.ok ? ((await res.json()) as Manifest) : undefined,
    };
  }

  async function blobStatus(repo: string, digest: string): Promise<number> {
    return (await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' })).status;
  }

  const cacheCombos = [
    { name: 'index (default), oci-mediatypes=true', opts: 'oci-mediatypes=true', stored: OCI_INDEX },
    { name: 'index (default), oci-mediatypes=false', opts: 'oci-mediatypes=false', stored: DOCKER_LIST },
    {
      name: 'image-manifest=true, oci-mediatypes=true',
      opts: 'image-manifest=true,oci-mediatypes=true',
      stored: OCI_MANIFEST,
    },
  ];

  it.each(cacheCombos)(
    'registry cache, $name, mode=max: exported, then imported by a cold build whose steps are CACHED',
    async ({ name, opts, stored }) => {
      const tag = `cache-${name.replace(/[^a-z0-9]+/g, '-').replace(/-+$/, '')}`;
      const ref = `${pushHost}/ci/app:${tag}`;
      const dir = context(tag);
      const exported = await build(dir, [
        '--export-cache',
        `type=registry,ref=${ref},mode=max,${opts},registry.insecure=true`,
      ]);
      expect(exported.progress).toMatch(/exporting cache to registry[\s\S]*DONE/);

      // What BuildKit left in the registry: the cache's manifest, and every blob it names.
      const cache = await manifestOf('ci/app', tag);
      expect(cache.status).toBe(200);
      expect(cache.mediaType).toBe(stored);
      const named =
        stored === OCI_MANIFEST ? [cache.body!.config!, ...cache.body!.layers!] : cache.body!.manifests!;
      expect(named.map((d) => d.mediaType)).toContain(CACHE_CONFIG);
      expect(named.length).toBeGreaterThanOrEqual(3); // two COPY layers and the cacheconfig
      for (const d of named) expect(await blobStatus('ci/app', d.digest), d.digest).toBe(200);

      await prune();
      const control = await build(dir, []);
      expect(steps(control.progress).cached, 'a pruned buildkitd has nothing cached').toEqual([]);
      await prune();
      const imported = await build(dir, [
        '--import-cache',
        `type=registry,ref=${ref},registry.insecure=true`,
      ]);
      expect(imported.progress).toContain(`importing cache manifest from ${ref}`);
      const { copies, cached } = steps(imported.progress);
      expect(copies).toEqual(['COPY a.txt /a.txt', 'COPY b.bin /b.bin']);
      expect(cached).toEqual(copies);
    },
  );

  it('registry cache, image-manifest=true with oci-mediatypes=false: BuildKit itself refuses the combination', async () => {
    const ref = `${pushHost}/ci/app:cache-refused`;
    const r = await build(
      context('refused'),
      [
        '--export-cache',
        `type=registry,ref=${ref},mode=max,image-manifest=true,oci-mediatypes=false,registry.insecure=true`,
      ],
      true,
    );
    expect(r.code).not.toBe(0);
    expect(r.progress).toContain('invalid configuration for remote cache');
    expect((await manifestOf('ci/app', 'cache-refused')).status).toBe(404);
  });

  // Berth's own collector; the reference target (Distribution) has none that runs online.
  it.skipIf(TARGET === 'reference')(
    'a cache kept only by its index survives `berth gc --delete-untagged`, and the next cold build is CACHED from it',
    async () => {
      const ref = `${pushHost}/ci/gc:buildcache`;
      const dir = context('gc');
      await build(dir, ['--export-cache', `type=registry,ref=${ref},mode=max,registry.insecure=true`]);
      const index = (await manifestOf('ci/gc', 'buildcache')).body!;
      // Something for the collector to delete, so the run is seen to collect: an image pushed, then deleted.
      const doomed = await build(context('doomed'), [
        '--output',
        `type=image,name=${pushHost}/ci/gc:doomed,push=true,registry.insecure=true`,
      ]);
      expect(doomed.code).toBe(0);
      const doomedManifest = await manifestOf('ci/gc', 'doomed');
      const head = await fetch(`${registry.url}/v2/ci/gc/manifests/doomed`, {
        method: 'HEAD',
        headers: { Accept: ACCEPT },
      });
      const digest = head.headers.get('Docker-Content-Digest')!;
      expect((await fetch(`${registry.url}/v2/ci/gc/manifests/${digest}`, { method: 'DELETE' })).status).toBe(
        202,
      );

      const dataDir = path.join(work, 'berth', 'registry-data');
      const gc = await run(
        'npx',
        [
          'tsx',
          'bin/berth.ts',
          'gc',
          '--delete-untagged',
          '--grace',
          '0s',
          '--settle',
          '65s',
          '--data-dir',
          dataDir,
        ],
        {
          cwd: repoRoot,
          env: process.env,
          timeoutMs: 300_000,
        },
      );
      for (const layer of doomedManifest.body!.layers!)
        expect(gc.stdout).toContain(`deleted blob blobs/sha256/${layer.digest.slice(7)}`);
      for (const d of index.manifests!) {
        expect(gc.stdout).not.toContain(d.digest.slice(7));
        expect(await blobStatus('ci/gc', d.digest), d.digest).toBe(200);
      }
      await prune();
      const imported = await build(dir, [
        '--import-cache',
        `type=registry,ref=${ref},registry.insecure=true`,
      ]);
      const { copies, cached } = steps(imported.progress);
      expect(cached).toEqual(copies);
    },
    10 * 60_000,
  );

  it('buildctl pushes an image with zstd layers (compression=zstd); crane reads every blob back with its digest', async () => {
    const name = `${pushHost}/ci/zstd:1`;
    const r = await build(context('zstd'), [
      '--output',
      `type=image,name=${name},push=true,compression=zstd,force-compression=true,oci-mediatypes=true,registry.insecure=true`,
    ]);
    expect(r.code).toBe(0);
    const manifest = await manifestOf('ci/zstd', '1');
    expect(manifest.mediaType).toBe(OCI_MANIFEST);
    expect(manifest.body!.layers!.map((l) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+zstd',
      'application/vnd.oci.image.layer.v1.tar+zstd',
    ]);
    for (const layer of manifest.body!.layers!) {
      const check = await run(
        'sh',
        ['-c', `"${BIN}/crane" blob --insecure "${registry.host}/ci/zstd@${layer.digest}" | sha256sum`],
        { env },
      );
      expect(`sha256:${check.stdout.split(' ')[0]}`).toBe(layer.digest);
    }
  });

  it('helm pushes a chart, shows it and pulls it back byte for byte', async () => {
    const charts = path.join(work, 'charts');
    mkdirSync(charts, { recursive: true });
    await tool('helm', ['create', path.join(charts, 'berth-demo')]);
    const packaged = await tool('helm', [
      'package',
      path.join(charts, 'berth-demo'),
      '--version',
      `0.1.${parseInt(runId, 16) % 1000}`,
      '-d',
      charts,
    ]);
    const tgz = /saved it to: (.*\.tgz)/.exec(packaged.stdout)?.[1];
    expect(tgz).toBeDefined();
    const version = /berth-demo-(.*)\.tgz$/.exec(tgz!)![1]!;
    const pushed = await tool('helm', ['push', tgz!, `oci://${pushHost}/ci/charts`, '--plain-http']);
    const out = pushed.stdout + pushed.stderr;
    expect(out).toContain(`Pushed: ${pushHost}/ci/charts/berth-demo:${version}`);
    const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(out)?.[1];
    const manifest = await manifestOf('ci/charts/berth-demo', version);
    expect(manifest.status).toBe(200);
    const head = await fetch(`${registry.url}/v2/ci/charts/berth-demo/manifests/${version}`, {
      method: 'HEAD',
      headers: { Accept: ACCEPT },
    });
    expect(head.headers.get('Docker-Content-Digest')).toBe(digest);
    expect(manifest.body!.config!.mediaType).toBe('application/vnd.cncf.helm.config.v1+json');
    expect(manifest.body!.layers![0]!.mediaType).toBe('application/vnd.cncf.helm.chart.content.v1.tar+gzip');
    expect(manifest.body!.layers![0]!.digest).toBe(sha256(readFileSync(tgz!)));

    const shown = await tool('helm', [
      'show',
      'chart',
      `oci://${pushHost}/ci/charts/berth-demo`,
      '--version',
      version,
      '--plain-http',
    ]);
    expect(shown.stdout).toContain('name: berth-demo');
    expect(shown.stdout).toContain(`version: ${version}`);
    const pulled = path.join(work, 'pulled');
    mkdirSync(pulled, { recursive: true });
    await tool('helm', [
      'pull',
      `oci://${pushHost}/ci/charts/berth-demo`,
      '--version',
      version,
      '--plain-http',
      '-d',
      pulled,
    ]);
    expect(readdirSync(pulled)).toEqual([`berth-demo-${version}.tgz`]);
    expect(sha256(readFileSync(path.join(pulled, `berth-demo-${version}.tgz`)))).toBe(
      sha256(readFileSync(tgz!)),
    );
  });

  it('crane append adds a layer to a base BuildKit pushed, uploading only the new layer; crane validate passes', async () => {
    const base = `${pushHost}/ci/base:1`;
    expect(
      (await build(context('base'), ['--output', `type=image,name=${base},push=true,registry.insecure=true`]))
        .code,
    ).toBe(0);
    const layerDir = path.join(work, 'append-layer');
    mkdirSync(path.join(layerDir, 'etc'), { recursive: true });
    writeFileSync(path.join(layerDir, 'etc', 'appended.txt'), `appended ${runId}\n`);
    const layerTar = path.join(work, 'append.tar');
    await run('tar', ['-cf', layerTar, '-C', layerDir, 'etc']);
    const mark = registry.requests?.mark() ?? 0;
    const appended = `${pushHost}/ci/app:appended`;
    await tool('crane', ['append', '--insecure', '-b', base, '-f', layerTar, '-t', appended]);
    const requests: LoggedRequest[] = registry.requests ? await registry.requests.since(mark) : [];
    const baseManifest = (await manifestOf('ci/base', '1')).body!;
    const result = (await manifestOf('ci/app', 'appended')).body!;
    expect(result.layers!.slice(0, -1).map((l) => l.digest)).toEqual(
      baseManifest.layers!.map((l) => l.digest),
    );
    expect(result.layers).toHaveLength(baseManifest.layers!.length + 1);
    // The base's layers reach ci/app by a cross-repository mount, not by upload.
    const mounts = requests.filter(
      (r) => r.method === 'POST' && r.query.includes('mount=') && r.status === 201,
    );
    expect(mounts.length).toBeGreaterThanOrEqual(baseManifest.layers!.length);
    await tool('crane', ['validate', '--insecure', '--remote', `${registry.host}/ci/app:appended`]);
  });

  it('ko builds a Go program onto a base in Berth and pushes the image; crane validate passes', async () => {
    const base = `${pushHost}/ci/ko-base:1`;
    expect(
      (
        await build(context('ko-base'), [
          '--output',
          `type=image,name=${base},push=true,registry.insecure=true`,
        ])
      ).code,
    ).toBe(0);
    const src = path.join(work, 'ko-app');
    mkdirSync(src, { recursive: true });
    writeFileSync(path.join(src, 'go.mod'), 'module example.com/berthdemo\n\ngo 1.22\n');
    writeFileSync(
      path.join(src, 'main.go'),
      `package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from ${runId}") }\n`,
    );
    const built = await run(
      path.join(BIN, 'ko'),
      ['build', '--insecure-registry', '--bare', '--platform=linux/amd64', '.'],
      {
        cwd: src,
        env: { ...env, KO_DOCKER_REPO: `${pushHost}/ci/ko`, KO_DEFAULTBASEIMAGE: base, CGO_ENABLED: '0' },
        timeoutMs: 600_000,
      },
    );
    const ref = built.stdout.trim().split('\n').pop()!;
    expect(ref).toMatch(new RegExp(`^${pushHost.replace(/[.]/g, '\\.')}/ci/ko@sha256:[0-9a-f]{64}$`));
    const digest = ref.slice(ref.indexOf('@') + 1);
    const image = await manifestOf('ci/ko', digest);
    expect(image.status).toBe(200);
    const baseManifest = (await manifestOf('ci/ko-base', '1')).body!;
    const layers = image.body!.layers!.map((l) => l.digest);
    expect(layers.slice(0, baseManifest.layers!.length)).toEqual(baseManifest.layers!.map((l) => l.digest));
    // ko adds its own layers on top (the binary, and kodata/): the base's are mounted, not uploaded.
    expect(layers.length).toBeGreaterThan(baseManifest.layers!.length);
    await tool('crane', ['validate', '--insecure', '--remote', `${registry.host}/ci/ko@${digest}`]);
    // Its SBOM goes up as a tag beside the image (sha256-<hex>.sbom), as cosign attachments do.
    const sbom = await manifestOf('ci/ko', `sha256-${digest.slice(7)}.sbom`);
    expect(sbom.status).toBe(200);
  });
});
