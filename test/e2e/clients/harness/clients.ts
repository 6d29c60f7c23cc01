// The clients' environment (private dockerd and containerd, throwaway storage and config for
// podman/buildah/skopeo, a fresh DOCKER_CONFIG, HOME) and, per client, how to push an image made
// locally and how to pull one, returning the digests a user would see.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startContainerd, startDockerd, type Containerd, type Dockerd } from './daemons.ts';
import {
  OciLayout,
  sha256,
  tar,
  verifyDirCopy,
  verifyLayout,
  type PulledImage,
  type TarEntry,
} from './images.ts';
import { have, run, type RunOptions, type RunResult } from './proc.ts';
import type { RegistryTarget } from './registry.ts';

export const CLIENTS = ['docker', 'podman', 'buildah', 'skopeo', 'ctr', 'crane', 'oras', 'regctl'] as const;
export type ClientName = (typeof CLIENTS)[number];
export type Tool = ClientName | 'cosign';

/** An image made locally, as an OCI layout directory with one tagged entry. */
export interface LocalImage {
  layout: string;
  tag: string;
  /** Digest of the manifest (or index) in the layout. */
  digest: string;
  configDigest?: string;
  isIndex?: boolean;
}

export interface PushResult {
  /** The digest the client reported (or, for clients that print none, the one it pushed as-is). */
  digest: string;
  /** The output, for error messages. */
  result: RunResult;
  /** The image in the client's own store (docker, podman, buildah, ctr), to push it again. */
  local?: string;
}

const DIGEST = /sha256:[a-f0-9]{64}/;

function cacheBin(): string {
  const cache = process.env.BERTH_CACHE ?? path.join(process.env.HOME ?? '/root', '.cache', 'berth');
  return path.join(cache, 'bin');
}

function firstDigest(text: string, what: string): string {
  const m = DIGEST.exec(text);
  if (!m) throw new Error(`no digest in the output of ${what}:\n${text}`);
  return m[0];
}

export class ClientEnv {
  readonly env: NodeJS.ProcessEnv;
  readonly unavailable = new Map<Tool, string>();
  readonly versions = new Map<string, string>();
  dockerd?: Dockerd;
  containerd?: Containerd;
  private readonly dockerBin: string;
  /** Wraps podman/buildah/skopeo so their blob-info cache is private (see isolateBlobInfoCache). */
  private containersWrapper: string[] = [];
  private seq = 0;

  private constructor(
    readonly target: RegistryTarget,
    readonly workDir: string,
  ) {
    const bin = process.env.BERTH_E2E_BIN ?? cacheBin();
    const home = path.join(workDir, 'home');
    const dockerConfig = path.join(workDir, 'docker-config');
    for (const d of [home, dockerConfig, path.join(workDir, 'tmp'), path.join(workDir, 'pulls')]) {
      mkdirSync(d, { recursive: true });
    }
    this.dockerBin =
      process.env.BERTH_E2E_DOCKER ?? (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');
    this.env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: home,
      TMPDIR: path.join(workDir, 'tmp'),
      DOCKER_CONFIG: dockerConfig,
      REGISTRY_AUTH_FILE: path.join(dockerConfig, 'config.json'),
      REGCTL_CONFIG: path.join(workDir, 'regctl.json'),
      CONTAINERS_REGISTRIES_CONF: path.join(workDir, 'registries.conf'),
      CONTAINERS_CONF: path.join(workDir, 'containers.conf'),
      CONTAINERD_NAMESPACE: 'berth-e2e',
      CONTAINERD_SNAPSHOTTER: 'native',
      COSIGN_PASSWORD: '',
      COSIGN_YES: 'true',
      SIGSTORE_NO_CACHE: 'true',
      NO_COLOR: '1',
      BUILDAH_ISOLATION: 'chroot',
      DOCKER_BUILDKIT: '0',
    };
    delete this.env.DOCKER_HOST;
    delete this.env.CONTAINER_HOST;
    delete this.env.XDG_RUNTIME_DIR;
  }

  /** Sets up config and storage, starts dockerd and containerd (where installed). */
  static async start(target: RegistryTarget, workDir: string): Promise<ClientEnv> {
    const c = new ClientEnv(target, workDir);
    c.writeConfig();
    c.checkTools();
    c.isolateBlobInfoCache();
    if (!c.unavailable.has('docker')) {
      try {
        c.dockerd = await startDockerd(path.join(workDir, 'dockerd'), c.env);
        c.env.DOCKER_HOST = c.dockerd.host;
      } catch (e) {
        c.unavailable.set('docker', `dockerd did not start: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    if (!c.unavailable.has('ctr')) {
      try {
        c.containerd = await startContainerd(path.join(workDir, 'containerd'), c.env);
        c.env.CONTAINERD_ADDRESS = c.containerd.address;
      } catch (e) {
        c.unavailable.set('ctr', `containerd did not start: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    await c.useHost(target.host);
    await c.collectVersions();
    return c;
  }

  async stop(): Promise<void> {
    await Promise.all([this.dockerd?.daemon.stop(), this.containerd?.daemon.stop()]);
  }

  private readonly hosts: string[] = [];

  /**
   * Lets the clients reach the registry at another host:port too (a proxy in front of it): the
   * credentials are written for it and regctl is told it speaks plain HTTP.
   */
  async useHost(host: string): Promise<void> {
    this.hosts.push(host);
    const creds = this.target.credentials;
    const auth = creds ? Buffer.from(`${creds.username}:${creds.password}`).toString('base64') : undefined;
    // buildah/podman fail when DOCKER_CONFIG points at a dir without config.json: always write one.
    writeFileSync(
      path.join(this.workDir, 'docker-config', 'config.json'),
      JSON.stringify(auth ? { auths: Object.fromEntries(this.hosts.map((h) => [h, { auth }])) } : {}),
    );
    if (!this.unavailable.has('regctl')) await this.regctl(['registry', 'set', '--tls', 'disabled', host]);
  }

  private writeConfig(): void {
    const w = this.workDir;
    writeFileSync(path.join(w, 'docker-config', 'config.json'), '{}');
    writeFileSync(
      this.env.CONTAINERS_REGISTRIES_CONF!,
      [
        'unqualified-search-registries = []',
        'short-name-mode = "permissive"',
        '[[registry]]',
        `location = "${this.target.host}"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
    writeFileSync(
      this.env.CONTAINERS_CONF!,
      [
        '[engine]',
        `tmp_dir = "${path.join(w, 'podman-run')}"`,
        'events_logger = "file"',
        `events_logfile_path = "${path.join(w, 'podman-events.log')}"`,
        `image_copy_tmp_dir = "${path.join(w, 'tmp')}"`,
        '',
      ].join('\n'),
    );
    // podman and buildah get separate stores, so that a pull by one never finds the other's layers.
    for (const tool of ['podman', 'buildah', 'skopeo']) {
      writeFileSync(
        path.join(w, `storage-${tool}.conf`),
        [
          '[storage]',
          'driver = "vfs"',
          `graphroot = "${path.join(w, `${tool}-storage`, 'root')}"`,
          `runroot = "${path.join(w, `${tool}-storage`, 'runroot')}"`,
          '',
        ].join('\n'),
      );
    }
    writeFileSync(this.env.REGCTL_CONFIG!, JSON.stringify({ hosts: {} }));
  }

  private checkTools(): void {
    const bins: Record<Tool, string> = {
      docker: this.dockerBin,
      podman: 'podman',
      buildah: 'buildah',
      skopeo: 'skopeo',
      ctr: 'ctr',
      crane: 'crane',
      oras: 'oras',
      regctl: 'regctl',
      cosign: 'cosign',
    };
    for (const [tool, bin] of Object.entries(bins) as [Tool, string][]) {
      if (!have(bin, this.env))
        this.unavailable.set(tool, `${bin} not installed (run test/e2e/setup-clients.sh)`);
    }
    if (!this.unavailable.has('docker') && !have(this.env.BERTH_E2E_DOCKERD ?? 'dockerd', this.env)) {
      this.unavailable.set('docker', 'dockerd not installed (apt docker.io)');
    }
    if (!this.unavailable.has('ctr') && !have(this.env.BERTH_E2E_CONTAINERD ?? 'containerd', this.env)) {
      this.unavailable.set('ctr', 'containerd not installed (apt containerd)');
    }
  }

  /**
   * containers/image keeps a blob-info cache (which blob was seen in which repository, used for
   * cross-repository mounts) at a fixed path for root: /var/lib/containers/cache. To keep runs
   * independent of each other and of the machine, podman/buildah/skopeo run in a private mount
   * namespace with a directory of the work dir bound over that path, when the kernel allows it.
   */
  private isolateBlobInfoCache(): void {
    if (process.env.BERTH_E2E_SHARED_BLOB_CACHE === '1' || !have('unshare')) return;
    const target = '/var/lib/containers/cache';
    const mine = path.join(this.workDir, 'blob-info-cache');
    mkdirSync(mine, { recursive: true });
    try {
      mkdirSync(target, { recursive: true });
    } catch {
      return;
    }
    const wrapper = ['unshare', '-m', '--', 'sh', '-c', `mount --bind "$0" ${target} && exec "$@"`, mine];
    const probe = spawnSync(wrapper[0]!, [...wrapper.slice(1), 'true'], { encoding: 'utf8' });
    if (probe.status === 0) this.containersWrapper = wrapper;
  }

  private async collectVersions(): Promise<void> {
    const first = (s: string) => s.split('\n')[0] ?? '';
    const ask: [string, Tool | undefined, string, string[], (s: string) => string][] = [
      ['docker (CLI)', 'docker', this.dockerBin, ['version', '--format', '{{.Client.Version}}'], first],
      ['dockerd', 'docker', this.dockerBin, ['version', '--format', '{{.Server.Version}}'], first],
      ['podman', 'podman', 'podman', ['--version'], (s) => first(s).replace(/^podman version /, '')],
      [
        'buildah',
        'buildah',
        'buildah',
        ['--version'],
        (s) => first(s).replace(/^buildah version (\S+).*/, '$1'),
      ],
      ['skopeo', 'skopeo', 'skopeo', ['--version'], (s) => first(s).replace(/^skopeo version /, '')],
      ['containerd/ctr', 'ctr', 'ctr', ['--version'], (s) => first(s).split(' ').pop() ?? s],
      ['crane', 'crane', 'crane', ['version'], first],
      ['oras', 'oras', 'oras', ['version'], (s) => /Version:\s*(\S+)/.exec(s)?.[1] ?? s],
      ['regctl', 'regctl', 'regctl', ['version', '--format', '{{.VCSTag}}'], first],
      ['cosign', 'cosign', 'cosign', ['version'], (s) => /GitVersion:\s*(\S+)/.exec(s)?.[1] ?? s],
    ];
    for (const [label, tool, bin, args, clean] of ask) {
      if (tool && this.unavailable.has(tool)) {
        this.versions.set(label, 'not available');
        continue;
      }
      const r = await run(bin, args, { env: this.env, allowFailure: true, timeoutMs: 30_000 });
      this.versions.set(label, r.code === 0 ? clean(r.stdout.trim()) : 'unknown');
    }
  }

  // ---------------------------------------------------------------- running tools

  skipReason(...tools: Tool[]): string | undefined {
    for (const t of tools) {
      const why = this.unavailable.get(t);
      if (why) return `${t}: ${why}`;
    }
    return undefined;
  }

  private storageEnv(tool: 'podman' | 'buildah' | 'skopeo'): NodeJS.ProcessEnv {
    return { ...this.env, CONTAINERS_STORAGE_CONF: path.join(this.workDir, `storage-${tool}.conf`) };
  }

  private containers(
    tool: 'podman' | 'buildah' | 'skopeo',
    args: string[],
    opts: RunOptions = {},
  ): Promise<RunResult> {
    const [cmd, ...pre] = this.containersWrapper.length ? this.containersWrapper : [tool];
    const all = this.containersWrapper.length ? [...pre, tool, ...args] : args;
    return run(cmd!, all, { ...opts, env: { ...this.storageEnv(tool), ...opts.env } });
  }

  docker(args: string[], opts: RunOptions = {}) {
    return run(this.dockerBin, args, { ...opts, env: { ...this.env, ...opts.env } });
  }
  podman(args: string[], opts: RunOptions = {}) {
    return this.containers('podman', args, opts);
  }
  buildah(args: string[], opts: RunOptions = {}) {
    return this.containers('buildah', args, opts);
  }
  skopeo(args: string[], opts: RunOptions = {}) {
    return this.containers('skopeo', args, opts);
  }
  ctr(args: string[], opts: RunOptions = {}) {
    return run('ctr', args, { ...opts, env: { ...this.env, ...opts.env } });
  }
  /** ctr needs --plain-http and credentials on each remote command. */
  ctrRemote(): string[] {
    const c = this.target.credentials;
    return ['--plain-http', ...(c ? ['--user', `${c.username}:${c.password}`] : [])];
  }
  crane(args: string[], opts: RunOptions = {}) {
    return run('crane', args, { ...opts, env: { ...this.env, ...opts.env } });
  }
  oras(args: string[], opts: RunOptions = {}) {
    return run('oras', args, { ...opts, env: { ...this.env, ...opts.env } });
  }
  regctl(args: string[], opts: RunOptions = {}) {
    return run('regctl', args, { ...opts, env: { ...this.env, ...opts.env } });
  }
  cosign(args: string[], opts: RunOptions = {}) {
    return run('cosign', args, { ...opts, env: { ...this.env, ...opts.env } });
  }

  /** host/repo:tag or host/repo@digest on the target (or on `host`, e.g. a proxy in front of it). */
  ref(repo: string, tagOrDigest: string, host = this.target.host): string {
    return `${host}/${repo}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`;
  }

  /** A fresh directory under the work dir. */
  dir(label: string): string {
    const d = path.join(this.workDir, 'tmp', `${label}-${++this.seq}`);
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
    return d;
  }

  /** The digest the registry serves for a reference, as crane sees it. */
  async craneDigest(ref: string): Promise<string> {
    const r = await this.crane(['digest', '--insecure', ref]);
    return firstDigest(r.stdout, `crane digest ${ref}`);
  }

  // ---------------------------------------------------------------- local images per client

  /** Builds a small image with `docker build` FROM scratch; returns its local tag. */
  async dockerBuild(name: string, files: Record<string, string>, extra: string[] = []): Promise<string> {
    const ctx = this.dir('docker-build');
    const lines = ['FROM scratch', ...extra];
    for (const [f, content] of Object.entries(files)) {
      writeFileSync(path.join(ctx, f), content);
      lines.push(`COPY ${f} /${f}`);
    }
    writeFileSync(path.join(ctx, 'Dockerfile'), lines.join('\n') + '\n');
    await this.docker(['build', '-q', '-t', name, ctx]);
    return name;
  }

  /** Builds a small image with `podman build` FROM scratch. */
  async podmanBuild(name: string, files: Record<string, string>): Promise<string> {
    const ctx = this.dir('podman-build');
    const lines = ['FROM scratch'];
    for (const [f, content] of Object.entries(files)) {
      writeFileSync(path.join(ctx, f), content);
      lines.push(`COPY ${f} /${f}`);
    }
    writeFileSync(path.join(ctx, 'Containerfile'), lines.join('\n') + '\n');
    await this.podman(['build', '-q', '--format', 'oci', '-t', name, ctx]);
    return name;
  }

  /** buildah from scratch + copy + commit. */
  async buildahScratch(
    name: string,
    files: Record<string, string>,
    platform?: { os: string; arch: string },
  ): Promise<string> {
    const ctx = this.dir('buildah-build');
    const container = (await this.buildah(['from', '--name', `w${this.seq}`, 'scratch'])).stdout.trim();
    try {
      for (const [f, content] of Object.entries(files)) {
        writeFileSync(path.join(ctx, f), content);
        await this.buildah(['copy', container, path.join(ctx, f), `/${f}`]);
      }
      if (platform) await this.buildah(['config', '--os', platform.os, '--arch', platform.arch, container]);
      await this.buildah(['commit', '-q', container, name]);
    } finally {
      await this.buildah(['rm', container], { allowFailure: true });
    }
    return name;
  }

  /** docker load of a layout image (skopeo writes the docker-archive; docker 20.10 cannot load OCI tars). */
  async dockerLoad(image: LocalImage, name: string): Promise<string> {
    const archive = path.join(this.dir('docker-archive'), 'image.tar');
    await this.skopeo([
      'copy',
      '-q',
      `oci:${image.layout}:${image.tag}`,
      `docker-archive:${archive}:${name}`,
    ]);
    await this.docker(['load', '-q', '-i', archive]);
    return name;
  }

  /** An OCI archive of one layout image named `name`, for `ctr images import`. */
  ociArchive(image: LocalImage, name: string): string {
    const entries: TarEntry[] = [
      { name: 'oci-layout', data: readFileSync(path.join(image.layout, 'oci-layout')) },
      { name: 'blobs' },
      { name: 'blobs/sha256' },
    ];
    const index = JSON.parse(readFileSync(path.join(image.layout, 'index.json'), 'utf8')) as {
      manifests: { annotations?: Record<string, string> }[];
    };
    const entry = index.manifests.find(
      (m) => m.annotations?.['org.opencontainers.image.ref.name'] === image.tag,
    );
    if (!entry) throw new Error(`no ${image.tag} in ${image.layout}`);
    entry.annotations = { ...entry.annotations, 'io.containerd.image.name': name };
    entries.push({ name: 'index.json', data: Buffer.from(JSON.stringify({ ...index, manifests: [entry] })) });
    const blobs = path.join(image.layout, 'blobs', 'sha256');
    for (const f of readdirSync(blobs)) {
      entries.push({ name: `blobs/sha256/${f}`, data: readFileSync(path.join(blobs, f)) });
    }
    const file = path.join(this.dir('oci-archive'), 'image.tar');
    writeFileSync(file, tar(entries));
    return file;
  }

  // ---------------------------------------------------------------- push, per client

  /**
   * Pushes a layout image with `client` the way its users do: docker/podman/buildah/ctr first load
   * it into their own store, the others push from the layout directly. Returns the pushed digest.
   */
  async push(client: ClientName, image: LocalImage, ref: string, opts: RunOptions = {}): Promise<PushResult> {
    const digestFile = path.join(this.dir(`digest-${client}`), 'digest');
    const layoutRef = `${image.layout}:${image.tag}`;
    switch (client) {
      case 'docker': {
        await this.dockerLoad(image, ref);
        return { ...(await this.pushLocal('docker', ref, ref, opts)), local: ref };
      }
      case 'podman':
      case 'buildah': {
        const id = await this.loadLayout(client, image);
        return { ...(await this.pushLocal(client, id, ref, opts)), local: id };
      }
      case 'skopeo': {
        const r = await this.skopeo(
          [
            'copy',
            ...(image.isIndex ? ['--all'] : []),
            '--preserve-digests',
            '--dest-tls-verify=false',
            '--digestfile',
            digestFile,
            `oci:${layoutRef}`,
            `docker://${ref}`,
          ],
          opts,
        );
        return { digest: readFileSync(digestFile, 'utf8').trim(), result: r };
      }
      case 'ctr': {
        const archive = this.ociArchive(image, ref);
        await this.ctr(['images', 'import', '--no-unpack', '--all-platforms', archive]);
        return { ...(await this.pushLocal('ctr', ref, ref, opts)), local: ref };
      }
      case 'crane': {
        const r = await this.crane(
          ['push', '--insecure', ...(image.isIndex ? ['--index'] : []), image.layout, ref],
          opts,
        );
        return { digest: firstDigest(r.stdout, 'crane push'), result: r };
      }
      case 'oras': {
        const r = await this.oras(
          ['cp', '--no-tty', '--from-oci-layout', layoutRef, ref, '--to-plain-http'],
          opts,
        );
        return { digest: firstDigest(r.stdout, 'oras cp'), result: r };
      }
      case 'regctl': {
        const r = await this.regctl(['image', 'copy', `ocidir://${layoutRef}`, ref], opts);
        // regctl copies manifests byte for byte and prints no digest.
        return { digest: image.digest, result: r };
      }
    }
  }

  /** podman/buildah pull of a layout into their store; returns the image ID. */
  async loadLayout(client: 'podman' | 'buildah', image: LocalImage): Promise<string> {
    const pulled = await this[client](['pull', '-q', `oci:${image.layout}:${image.tag}`]);
    return pulled.stdout.trim().split('\n').pop()!;
  }

  /** Pushes an image already in the client's own store (docker, podman, buildah, ctr). */
  async pushLocal(
    client: 'docker' | 'podman' | 'buildah' | 'ctr',
    local: string,
    ref: string,
    opts: RunOptions = {},
  ): Promise<PushResult> {
    const digestFile = path.join(this.dir(`digest-${client}`), 'digest');
    switch (client) {
      case 'docker': {
        if (local !== ref) await this.docker(['tag', local, ref]);
        const r = await this.docker(['push', ref], opts);
        const digest = /digest: (sha256:[a-f0-9]{64})/.exec(r.stdout)?.[1];
        if (!digest) throw new Error(`docker push printed no digest:\n${r.stdout}`);
        return { digest, result: r };
      }
      case 'podman':
      case 'buildah': {
        const r = await this[client](
          ['push', '--tls-verify=false', '--digestfile', digestFile, local, `docker://${ref}`],
          opts,
        );
        return { digest: readFileSync(digestFile, 'utf8').trim(), result: r };
      }
      case 'ctr': {
        if (local !== ref) await this.ctr(['images', 'tag', '--force', local, ref]);
        const r = await this.ctr(['images', 'push', ...this.ctrRemote(), ref], opts);
        return { digest: await this.ctrDigest(ref), result: r };
      }
    }
  }

  private async ctrDigest(ref: string): Promise<string> {
    const ls = await this.ctr(['images', 'ls']);
    const line = ls.stdout.split('\n').find((l) => l.split(/\s+/)[0] === ref);
    if (!line) throw new Error(`ctr images ls has no ${ref}:\n${ls.stdout}`);
    return firstDigest(line, 'ctr images ls');
  }

  // ---------------------------------------------------------------- pull, per client

  /**
   * Pulls `ref` with `client` into its own store (or a directory) and returns what it got: the
   * manifest digest it recorded and the config digest (image ID for docker/podman/buildah).
   */
  async pull(client: ClientName, ref: string, opts: RunOptions = {}): Promise<PulledImage> {
    switch (client) {
      case 'docker': {
        const r = await this.docker(['pull', ref], opts);
        const digest = /Digest: (sha256:[a-f0-9]{64})/.exec(r.stdout)?.[1];
        if (!digest) throw new Error(`docker pull printed no digest:\n${r.stdout}`);
        const id = (await this.docker(['image', 'inspect', '--format', '{{.Id}}', ref])).stdout.trim();
        return { digest, mediaType: '', configDigest: id, blobsVerified: 0 };
      }
      case 'podman':
      case 'buildah': {
        const r = await this[client](['pull', '-q', '--tls-verify=false', `docker://${ref}`], opts);
        const id = r.stdout.trim().split('\n').pop()!;
        const digest =
          client === 'podman'
            ? (await this.podman(['image', 'inspect', '--format', '{{.Digest}}', id])).stdout.trim()
            : (
                await this.buildah(['inspect', '--type', 'image', '--format', '{{.FromImageDigest}}', id])
              ).stdout.trim();
        return {
          digest,
          mediaType: '',
          configDigest: `sha256:${id.replace(/^sha256:/, '')}`,
          blobsVerified: 0,
        };
      }
      case 'skopeo': {
        const dir = this.dir('pull-skopeo');
        await this.skopeo(['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `dir:${dir}`], opts);
        return verifyDirCopy(dir);
      }
      case 'ctr': {
        await this.ctr(['images', 'pull', ...this.ctrRemote(), ref], opts);
        const digest = await this.ctrDigest(ref);
        // The manifest as containerd stored it, checked against its digest.
        const manifest = (await this.ctr(['content', 'get', digest])).stdout;
        if (sha256(manifest) !== digest)
          throw new Error(`ctr content get ${digest} does not hash to its digest`);
        const m = JSON.parse(manifest) as { config?: { digest: string }; mediaType?: string };
        return { digest, mediaType: m.mediaType ?? '', configDigest: m.config?.digest, blobsVerified: 1 };
      }
      case 'crane': {
        const dir = this.dir('pull-crane');
        await this.crane(['pull', '--insecure', '--format', 'oci', ref, dir], opts);
        return verifyLayout(dir);
      }
      case 'regctl': {
        const dir = this.dir('pull-regctl');
        await this.regctl(['image', 'copy', ref, `ocidir://${dir}:pulled`], opts);
        return verifyLayout(dir, 'pulled');
      }
      case 'oras': {
        const dir = this.dir('pull-oras');
        await this.oras(
          ['cp', '--no-tty', '--from-plain-http', ref, '--to-oci-layout', `${dir}:pulled`],
          opts,
        );
        return verifyLayout(dir, 'pulled');
      }
    }
  }

  /** Removes a pulled image from a client's store, so that the next pull is a real one. */
  async forget(client: ClientName, ref: string): Promise<void> {
    const quiet = { allowFailure: true };
    if (client === 'docker') await this.docker(['image', 'rm', '-f', ref], quiet);
    else if (client === 'podman') await this.podman(['rmi', '-f', ref], quiet);
    else if (client === 'buildah') await this.buildah(['rmi', '-f', ref], quiet);
    else if (client === 'ctr') await this.ctr(['images', 'rm', ref], quiet);
  }
}

// ---------------------------------------------------------------- layouts

let layoutSeq = 0;

/** Writes a single-image layout under dir and returns it as a LocalImage. */
export function layoutImage(
  dir: string,
  spec: Parameters<OciLayout['addImage']>[0],
  tag = 'v1',
): LocalImage & { layers: string[] } {
  const layout = new OciLayout(path.join(dir, `layout-${++layoutSeq}`));
  const img = layout.addImage(spec);
  layout.tag(tag, img.descriptor);
  return {
    layout: layout.dir,
    tag,
    digest: img.manifestDigest,
    configDigest: img.configDigest,
    layers: img.layerDigests,
  };
}
