/**
 * The clients the benchmarks drive: skopeo (OCI layout <-> registry), docker (a private dockerd on
 * vfs, as test/e2e/clients starts it), hey (HTTP load, handles HEAD), and the harness's own HTTP
 * client for seeding images and for streamed pushes.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDockerd, type Dockerd } from '../../test/e2e/clients/harness/daemons.ts';
import { MT, sha256 } from './images.ts';
import { have, MiB, run, type RunResult } from './proc.ts';

// ---------------------------------------------------------------- skopeo

/**
 * containers/image keeps a blob-info cache at /var/lib/containers/cache (for root): which blob was
 * seen where, used to skip or mount blobs. Each skopeo run gets an empty one in a private mount
 * namespace, so every push is a first push, as the e2e harness does.
 */
export class Skopeo {
  private wrapper: string[] = [];
  private seq = 0;

  constructor(private readonly workDir: string) {
    mkdirSync(join(workDir, 'tmp'), { recursive: true });
    const target = '/var/lib/containers/cache';
    if (!have('unshare')) return;
    try {
      mkdirSync(target, { recursive: true });
    } catch {
      return;
    }
    const wrapper = ['unshare', '-m', '--', 'sh', '-c', `mount --bind "$0" ${target} && exec "$@"`];
    const probe = spawnSync(wrapper[0]!, [...wrapper.slice(1), workDir, 'true'], { encoding: 'utf8' });
    if (probe.status === 0) this.wrapper = wrapper;
  }

  private run(args: string[]): Promise<RunResult> {
    const cache = join(this.workDir, `blob-info-cache-${++this.seq}`);
    mkdirSync(cache, { recursive: true });
    const env = { ...process.env, TMPDIR: join(this.workDir, 'tmp') };
    const [cmd, ...rest] = this.wrapper.length ? [...this.wrapper, cache, 'skopeo'] : ['skopeo'];
    return run(cmd!, [...rest, ...args], { env, timeoutMs: 900_000 });
  }

  /** oci layout -> registry, digests preserved (no recompression of the uncompressed layers). */
  push(layoutDir: string, tag: string, ref: string): Promise<RunResult> {
    return this.run([
      'copy',
      '-q',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${layoutDir}:${tag}`,
      `docker://${ref}`,
    ]);
  }

  /** registry -> a new oci layout, digests preserved (the layout transport would gzip the layers); returns the manifest digest it wrote. */
  async pull(ref: string, layoutDir: string, tag: string): Promise<{ result: RunResult; digest: string }> {
    const result = await this.run([
      'copy',
      '-q',
      '--preserve-digests',
      '--src-tls-verify=false',
      `docker://${ref}`,
      `oci:${layoutDir}:${tag}`,
    ]);
    const index = JSON.parse(readFileSync(join(layoutDir, 'index.json'), 'utf8')) as {
      manifests: { digest: string }[];
    };
    return { result, digest: index.manifests[0]?.digest ?? '' };
  }

  /** A docker-archive of a layout image, for `docker load` (docker 20.10 loads no OCI archives). */
  async dockerArchive(layoutDir: string, tag: string, archive: string, name: string): Promise<void> {
    await this.run(['copy', '-q', `oci:${layoutDir}:${tag}`, `docker-archive:${archive}:${name}`]);
  }
}

// ---------------------------------------------------------------- docker

export const DOCKER_BIN =
  process.env.BENCH_DOCKER ?? (have('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');

/** A private dockerd (vfs storage, no networking) and a docker CLI bound to it. */
export class Docker {
  private constructor(
    readonly dockerd: Dockerd,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  static async start(dir: string): Promise<Docker> {
    const config = join(dir, 'config');
    mkdirSync(config, { recursive: true });
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: config, BERTH_E2E_DOCKER: DOCKER_BIN };
    delete env.DOCKER_HOST;
    const dockerd = await startDockerd(join(dir, 'dockerd'), env);
    return new Docker(dockerd, { ...env, DOCKER_HOST: dockerd.host });
  }

  cli(args: string[], timeoutMs = 900_000): Promise<RunResult> {
    return run(DOCKER_BIN, args, { env: this.env, timeoutMs });
  }

  async stop(): Promise<void> {
    await this.dockerd.daemon.stop();
  }
}

// ---------------------------------------------------------------- hey

export interface LoadResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  requests: number;
  /** Responses with a status other than the expected one, and errors. */
  failures: number;
}

/** `hey` for `seconds` (or `requests` requests) at `concurrency` connections; redirects followed, as clients do. */
export async function hey(
  url: string,
  opts: { method: 'GET' | 'HEAD'; concurrency: number; seconds?: number; requests?: number; accept?: string },
): Promise<LoadResult> {
  const args = ['-c', String(opts.concurrency), '-m', opts.method];
  args.push(...(opts.seconds ? ['-z', `${opts.seconds}s`] : ['-n', String(opts.requests ?? 200)]));
  if (opts.accept) args.push('-H', `Accept: ${opts.accept}`);
  const r = await run('hey', [...args, url], { timeoutMs: ((opts.seconds ?? 60) + 60) * 1000 });
  const num = (re: RegExp) => Number(re.exec(r.stdout)?.[1] ?? NaN);
  const statuses = [...r.stdout.matchAll(/\[(\d{3})\]\s+(\d+) responses/g)].map(
    (m) => [Number(m[1]), Number(m[2])] as const,
  );
  const ok = statuses.filter(([s]) => s === 200).reduce((n, [, c]) => n + c, 0);
  const all = statuses.reduce((n, [, c]) => n + c, 0);
  const errors = /Error distribution:\n((?:\s+\[\d+\].*\n?)+)/.exec(r.stdout)?.[1] ?? '';
  const errorCount = [...errors.matchAll(/\[(\d+)\]/g)].reduce((n, m) => n + Number(m[1]), 0);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50ms: num(/50%+ in ([\d.]+) secs/) * 1000,
    p99ms: num(/99%+ in ([\d.]+) secs/) * 1000,
    requests: all,
    failures: all - ok + errorCount,
  };
}

// ---------------------------------------------------------------- the harness's own HTTP client

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  if (res.status !== status) throw new Error(`${what}: ${res.status} ${(await res.text()).slice(0, 300)}`);
  await res.arrayBuffer();
}

/** Monolithic upload (POST, then PUT ?digest with the bytes). */
export async function putBlob(base: string, repo: string, bytes: Uint8Array): Promise<string> {
  const digest = sha256(bytes);
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await expectStatus(post, 202, 'POST upload');
  const url = new URL(post.headers.get('location')!, base);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: new Uint8Array(bytes),
  });
  await expectStatus(put, 201, 'PUT blob');
  return digest;
}

/** A one-layer image (1 MiB random layer) tagged `tag`, for the request-rate workloads. */
export async function seedImage(base: string, repo: string, tag: string) {
  const layer = randomFillSync(new Uint8Array(MiB));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {} }));
  const layerDigest = await putBlob(base, repo, layer);
  const configDigest = await putBlob(base, repo, config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MT.manifest,
    config: { mediaType: MT.config, digest: configDigest, size: config.length },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length },
    ],
  });
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': MT.manifest },
    body: manifest,
  });
  await expectStatus(res, 201, 'PUT manifest');
  return { layerDigest, manifestDigest: sha256(manifest) };
}

/** A layer of copies of one random 16 MiB block, and its digest (computed up front). */
export function bigLayer(bytes: number) {
  const block = randomFillSync(new Uint8Array(16 * MiB));
  const blocks = Math.ceil(bytes / block.length);
  const hash = createHash('sha256');
  for (let i = 0; i < blocks; i++) hash.update(block);
  return { block, blocks, size: blocks * block.length, digest: `sha256:${hash.digest('hex')}` };
}

/** POST, one streamed PATCH with the whole layer, PUT ?digest (as docker pushes); seconds to the 201. */
export async function streamPush(base: string, repo: string, layer: ReturnType<typeof bigLayer>) {
  const t0 = performance.now();
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await expectStatus(post, 202, 'POST upload');
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent === layer.blocks) return controller.close();
      sent++;
      controller.enqueue(layer.block.slice());
    },
  });
  const patch = await fetch(new URL(post.headers.get('location')!, base), {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/octet-stream' },
    body,
    duplex: 'half',
  } as RequestInit);
  await expectStatus(patch, 202, 'PATCH');
  const url = new URL(patch.headers.get('location')!, base);
  url.searchParams.set('digest', layer.digest);
  const put = await fetch(url, { method: 'PUT' });
  await expectStatus(put, 201, 'PUT ?digest');
  return (performance.now() - t0) / 1000;
}
