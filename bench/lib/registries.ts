/**
 * The registries under test, each on a free loopback port with fresh storage: Berth (`berth serve`
 * from the bundle `npm start` runs, started with node directly so the pid measured is the server's) and CNCF Distribution 2.8
 * (Debian's `docker-registry serve <config.yml>`), each on the filesystem or on S3 (one private
 * MinIO, a new bucket per start).
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { S3TestServer } from '../../test/storage/s3-server.ts';
import { AWS_LIKE, CountingProxy } from '../s3-counting-proxy.ts';
import { freePort, Server } from './proc.ts';

export type Kind = 'berth' | 'distribution';
/** `s3-aws`: the same MinIO behind a proxy that delays each S3 request as AWS would (bench/s3-counting-proxy.ts). */
export type Store = 'fs' | 's3' | 's3-aws';

/** The bundled `berth` command, as `npm start` builds and runs it (bench/run.ts builds it first). */
export const BERTH_CLI = join(process.cwd(), 'dist', 'cli', 'berth.mjs');

export const DISTRIBUTION_BIN = process.env.BENCH_DISTRIBUTION ?? '/usr/bin/docker-registry';

export interface Registry {
  readonly kind: Kind;
  readonly store: Store;
  readonly url: string;
  /** host:port, as in image references. */
  readonly host: string;
  readonly server: Server;
  /** The fresh data dir of a filesystem store, removed after the run. */
  readonly dataDir?: string;
  /** The latency proxy of an `s3-aws` store (closed with the registry); it counts the S3 requests too. */
  readonly proxy?: CountingProxy;
}

export interface Context {
  /** Where fresh data dirs and configs go. */
  readonly workDir: string;
  /** The MinIO for the s3 store (started once by the harness). */
  s3?: S3TestServer;
}

let seq = 0;

export const label = (kind: Kind, store: Store) =>
  `${kind === 'berth' ? 'Berth' : 'Distribution'} ${store === 'fs' ? 'filesystem' : store === 's3' ? 'S3' : 'S3 with AWS-like latency'}`;

/** The S3 endpoint a registry on `store` talks to: MinIO itself, or a latency proxy in front of it. */
async function s3Endpoint(ctx: Context, store: Store): Promise<{ endpoint: string; proxy?: CountingProxy }> {
  if (!ctx.s3) throw new Error('no S3 server started');
  if (store !== 's3-aws') return { endpoint: ctx.s3.endpoint };
  const proxy = await CountingProxy.start(ctx.s3.endpoint, { latency: AWS_LIKE });
  return { endpoint: proxy.endpoint, proxy };
}

/** Creates `bucket` on the MinIO. */
export async function createBucket(s3: S3TestServer, bucket: string): Promise<void> {
  const client = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

async function newBucket(s3: S3TestServer): Promise<string> {
  const bucket = `bench-${process.pid}-${++seq}`;
  await createBucket(s3, bucket);
  return bucket;
}

/** Berth's environment for a fresh bucket of the MinIO. */
async function berthS3Env(ctx: Context, endpoint: string): Promise<NodeJS.ProcessEnv> {
  if (!ctx.s3) throw new Error('no S3 server started');
  return {
    BERTH_STORAGE: 's3',
    BERTH_S3_BUCKET: await newBucket(ctx.s3),
    BERTH_S3_REGION: ctx.s3.region,
    BERTH_S3_ENDPOINT: endpoint,
    BERTH_S3_FORCE_PATH_STYLE: 'true',
  };
}

export async function startBerth(
  store: Store,
  ctx: Context,
  opts: { lambda?: boolean; nodeArgs?: string[] } = {},
): Promise<Registry> {
  const port = await freePort();
  // BENCH_BERTH_NODE_ARGS: e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`, to profile the servers of a run.
  const fromEnv = process.env.BENCH_BERTH_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [];
  const args = [...fromEnv, ...(opts.nodeArgs ?? []), BERTH_CLI, 'serve'];
  args.push('--port', String(port), '--log-level', 'warn');
  if (opts.lambda) args.push('--lambda');
  let env: NodeJS.ProcessEnv = { ...process.env };
  let dataDir: string | undefined;
  let proxy: CountingProxy | undefined;
  for (const name of Object.keys(env)) if (name.startsWith('BERTH_')) delete env[name];
  if (store === 'fs') {
    dataDir = join(ctx.workDir, `berth-${++seq}`);
    mkdirSync(dataDir, { recursive: true });
    args.push('--data-dir', dataDir);
  } else {
    const s3 = await s3Endpoint(ctx, store);
    proxy = s3.proxy;
    env = { ...env, ...(await berthS3Env(ctx, s3.endpoint)) };
  }
  const name = opts.lambda ? `Berth Lambda gateway ${store}` : label('berth', store);
  const server = Server.start(name, process.execPath, args, env);
  const url = `http://127.0.0.1:${port}`;
  await server.waitHttp(`${url}/v2/`);
  return { kind: 'berth', store, url, host: `127.0.0.1:${port}`, server, dataDir, proxy };
}

/**
 * Distribution with Debian's shipped defaults where they matter for speed (the in-memory blob
 * descriptor cache on), access log off and log level warn as for Berth, deletes enabled, upload
 * purging and the storage health check off (neither runs during a benchmark anyway). Redirects to
 * S3 stay on (its default), as Berth's do.
 */
export async function startDistribution(store: Store, ctx: Context): Promise<Registry> {
  const port = await freePort();
  const dir = join(ctx.workDir, `distribution-${++seq}`);
  mkdirSync(dir, { recursive: true });
  let storage: DistributionStorage;
  let proxy: CountingProxy | undefined;
  if (store === 'fs') {
    storage = { rootDirectory: join(dir, 'data') };
  } else {
    if (!ctx.s3) throw new Error('no S3 server started');
    const s3 = await s3Endpoint(ctx, store);
    proxy = s3.proxy;
    storage = { region: ctx.s3.region, endpoint: s3.endpoint, bucket: await newBucket(ctx.s3) };
  }
  const file = join(dir, 'config.yml');
  writeFileSync(file, distributionConfig(storage, port), { mode: 0o600 });
  const env = distributionEnv();
  const server = Server.start(label('distribution', store), DISTRIBUTION_BIN, ['serve', file], env);
  const url = `http://127.0.0.1:${port}`;
  await server.waitHttp(`${url}/v2/`, 30_000);
  return { kind: 'distribution', store, url, host: `127.0.0.1:${port}`, server, dataDir: dir, proxy };
}

export function startRegistry(kind: Kind, store: Store, ctx: Context): Promise<Registry> {
  return kind === 'berth' ? startBerth(store, ctx) : startDistribution(store, ctx);
}

/** Where a Distribution 2.8 keeps its data: a directory, or an S3 bucket at an endpoint. */
export type DistributionStorage =
  | { readonly rootDirectory: string }
  | { readonly region: string; readonly endpoint: string; readonly bucket: string };

/**
 * The one config.yml every bench runs Distribution with: warnings only, no access log, deletes on,
 * redirects to S3 on (its default), the in-memory blob descriptor cache (on unless `cache` is false),
 * and upload purging off so that no background walk of _uploads lands in a measurement (it starts
 * 0-59 min after boot).
 */
export function distributionConfig(storage: DistributionStorage, port: number, cache = true): string {
  const q = (s: string | undefined) => JSON.stringify(s ?? '');
  const store =
    'rootDirectory' in storage
      ? ['  filesystem:', `    rootdirectory: ${q(storage.rootDirectory)}`]
      : [
          '  s3:',
          `    region: ${q(storage.region)}`,
          `    regionendpoint: ${q(storage.endpoint)}`,
          `    bucket: ${q(storage.bucket)}`,
          `    accesskey: ${q(process.env.AWS_ACCESS_KEY_ID)}`,
          `    secretkey: ${q(process.env.AWS_SECRET_ACCESS_KEY)}`,
          '    secure: false',
          '    v4auth: true',
        ];
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    ...store,
    ...(cache ? ['  cache:', '    blobdescriptor: inmemory'] : []),
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${q(randomBytes(16).toString('hex'))}`,
    '',
  ].join('\n');
}

/** Distribution's environment: REGISTRY_* variables would override its config; aws-sdk-go v1 panics on AWS_CA_BUNDLE. */
export function distributionEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_') && k !== 'AWS_CA_BUNDLE'),
  );
}

/**
 * `berth relay` in front of `registryUrl`, as Lambda users push: its own docker config dir (so no
 * credentials of the machine are used) and no BERTH_* settings of the harness. `host` is what
 * clients push to.
 */
export async function startRelay(
  workDir: string,
  registryUrl: string,
): Promise<{ relay: Server; host: string }> {
  const port = await freePort();
  const config = join(workDir, `relay-config-${port}`);
  mkdirSync(config, { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: config };
  for (const name of Object.keys(env)) if (name.startsWith('BERTH_')) delete env[name];
  const relay = Server.start(
    'berth relay',
    process.execPath,
    [BERTH_CLI, 'relay', '--registry', registryUrl, '--port', String(port)],
    env,
  );
  await relay.waitHttp(`http://127.0.0.1:${port}/v2/`);
  return { relay, host: `127.0.0.1:${port}` };
}
