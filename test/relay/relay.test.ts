import { execFileSync } from 'node:child_process';
import { randomFillSync, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../lib/auth/admin.ts';
import { BlobUpload, DEFAULT_TUNING } from '../../lib/client/blob-upload.ts';
import { RemoteRegistry } from '../../lib/client/remote.ts';
import { parseConfig, type ConfigInput } from '../../lib/config/config.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import { openImage } from '../../lib/push/image-source.ts';
import { pushImage } from '../../lib/push/push.ts';
import { startRelay, type RunningRelay } from '../../lib/relay/relay-endpoint.ts';
import type { RunningServer } from '../../lib/server/local-registry.ts';
import { startLocalRegistry } from '../../lib/setup/local-server.ts';
import { imageManifest, sha256 } from '../http/harness.ts';
import { FaultProxy } from '../storage/s3-fault-proxy.ts';
import { minioInstalled, startS3Server, type S3TestServer } from '../storage/s3-server.ts';

const MiB = 1024 * 1024;
const tuning = { ...DEFAULT_TUNING, partSize: 5 * MiB, concurrency: 3 };

interface Remote {
  server: RunningServer;
  paths: string[];
}

let dir: string;
let s3: S3TestServer | undefined;
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-relay-'));
  if (minioInstalled || process.env.CI) s3 = await startS3Server();
});
afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A Berth server as users start it, recording the paths it was asked for. */
async function remote(input: ConfigInput): Promise<Remote> {
  const paths: string[] = [];
  const logger = createLogger('info', {}, (line) => {
    const record = JSON.parse(line) as { msg?: string; method?: string; path?: string };
    if (record.msg === 'request') paths.push(`${record.method} ${record.path}`);
  });
  const server = await startLocalRegistry(
    parseConfig({ port: 0, dataDir: join(dir, randomUUID()), shutdownGraceSeconds: 1, ...input }),
    logger,
  );
  stops.push(() => server.close());
  return { server, paths };
}

function s3Config(): ConfigInput {
  if (!s3) throw new Error('no MinIO');
  return {
    storage: 's3',
    s3: {
      bucket: s3.bucket,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      region: s3.region,
      prefix: randomUUID(),
    },
    verifySyncLimit: 8 * MiB,
  };
}

async function relayTo(
  url: string,
  credentials?: { username: string; password: string },
): Promise<RunningRelay> {
  const relay = await startRelay({
    remote: new RemoteRegistry({
      url,
      ...(credentials && { credentials: { kind: 'password', ...credentials } }),
    }),
    port: 0,
    tuning,
  });
  stops.push(() => relay.close());
  return relay;
}

/** docker's way: POST, one PATCH with the whole blob, PUT ?digest=. */
async function dockerPush(base: string, repo: string, blob: Uint8Array<ArrayBuffer>, digest = sha256(blob)) {
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(start.status).toBe(202);
  const location = start.headers.get('Location')!;
  expect(location.startsWith(`/v2/${repo}/blobs/uploads/`)).toBe(true);
  const patch = await fetch(base + location, { method: 'PATCH', body: blob });
  expect(patch.status).toBe(202);
  expect(patch.headers.get('Range')).toBe(`0-${blob.byteLength - 1}`);
  return fetch(`${base}${patch.headers.get('Location')}?digest=${digest}`, { method: 'PUT' });
}

/** containerd's and buildx's way: POST, then one PUT ?digest= that carries the whole blob. */
async function containerdPush(
  base: string,
  repo: string,
  blob: Uint8Array<ArrayBuffer>,
  digest = sha256(blob),
) {
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(start.status).toBe(202);
  const location = start.headers.get('Location')!;
  return fetch(`${base}${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, {
    method: 'PUT',
    body: blob,
  });
}

/** A `docker save` archive of one image whose one layer is `size` random bytes. */
async function singleLayerArchive(size: number): Promise<{ file: string; layer: Buffer }> {
  const image = join(dir, `image-${randomUUID()}`);
  await mkdir(join(image, 'layer1'), { recursive: true });
  const layer = randomFillSync(Buffer.alloc(size));
  await writeFile(join(image, 'layer1', 'layer.tar'), layer);
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: [sha256(layer)] },
  });
  await writeFile(join(image, 'config.json'), config);
  await writeFile(
    join(image, 'manifest.json'),
    JSON.stringify([{ Config: 'config.json', RepoTags: ['app:1'], Layers: ['layer1/layer.tar'] }]),
  );
  const file = `${image}.tar`;
  execFileSync('tar', ['-cf', file, '-C', image, 'manifest.json', 'config.json', 'layer1/layer.tar']);
  return { file, layer };
}

async function manifestFor(base: string, repo: string, layer: Uint8Array, tag: string): Promise<Response> {
  const config = new TextEncoder().encode('{"architecture":"amd64","os":"linux"}');
  const put = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(config)}`, {
    method: 'POST',
    body: config,
  });
  expect(put.status).toBe(201);
  return fetch(`${base}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: imageManifest(config, [layer]),
  });
}

describe('berth relay', () => {
  it('pushes to a filesystem registry with ordinary chunked uploads (no direct path there)', async () => {
    const { server, paths } = await remote({});
    const relay = await relayTo(server.url);
    const blob = randomFillSync(new Uint8Array(12 * MiB + 7));
    expect((await dockerPush(relay.url, 'team/app', blob)).status).toBe(201);
    expect((await manifestFor(relay.url, 'team/app', blob, 'v1')).status).toBe(201);
    const get = await fetch(`${server.url}/v2/team/app/blobs/${sha256(blob)}`);
    expect(sha256(new Uint8Array(await get.arrayBuffer()))).toBe(sha256(blob));
    expect(paths.filter((p) => p.startsWith('PATCH')).length).toBeGreaterThan(1);
    // A blob whose digest comes first (containerd's PUT) cannot go to the store either: PATCHes again.
    const known = randomFillSync(new Uint8Array(9 * MiB + 1));
    paths.length = 0;
    expect((await containerdPush(relay.url, 'team/app', known)).status).toBe(201);
    expect(paths.filter((p) => p.startsWith('PATCH'))).toHaveLength(1);
    const again = await fetch(`${server.url}/v2/team/app/blobs/${sha256(known)}`);
    expect(sha256(new Uint8Array(await again.arrayBuffer()))).toBe(sha256(known));
  });

  it('sends a small layer to the remote in one monolithic POST, opening no session for it', async () => {
    const { server, paths } = await remote({});
    const relay = await relayTo(server.url);
    const blob = randomFillSync(new Uint8Array(3 * MiB + 5));
    expect((await dockerPush(relay.url, 'team/small', blob)).status).toBe(201);
    const uploads = paths.filter((p) => p.includes('/blobs/uploads'));
    expect(uploads).toEqual(['POST /v2/team/small/blobs/uploads/']);
    const get = await fetch(`${server.url}/v2/team/small/blobs/${sha256(blob)}`);
    expect(sha256(new Uint8Array(await get.arrayBuffer()))).toBe(sha256(blob));
    // A lie about a small blob's digest is the remote's DIGEST_INVALID, passed on.
    const lie = await dockerPush(relay.url, 'team/small', blob, sha256('not the blob'));
    expect(lie.status).toBe(400);
    expect(((await lie.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('DIGEST_INVALID');
    // A cancelled upload that never reached the remote is simply forgotten.
    const start = await fetch(`${relay.url}/v2/team/small/blobs/uploads/`, { method: 'POST' });
    const cancelled = await fetch(relay.url + start.headers.get('Location')!, { method: 'DELETE' });
    expect(cancelled.status).toBe(204);
    const after = await fetch(relay.url + start.headers.get('Location')!, { method: 'PATCH', body: blob });
    expect(after.status).toBe(404);
  });

  describe.skipIf(!minioInstalled && !process.env.CI)('to a registry on S3', () => {
    it('sends a large layer in parts straight to S3 and never through the registry', async () => {
      const { server, paths } = await remote(s3Config());
      const relay = await relayTo(server.url);
      const blob = randomFillSync(new Uint8Array(23 * MiB + 11));
      expect((await dockerPush(relay.url, 'team/app', blob)).status).toBe(201);
      expect(paths.some((p) => p.startsWith('PATCH'))).toBe(false);
      expect(paths.filter((p) => p.includes('/_berth/v1/uploads/')).length).toBeGreaterThan(0);
      expect((await manifestFor(relay.url, 'team/app', blob, 'v1')).status).toBe(201);
      // Pulls pass through the relay too; the blob GET is answered with the remote's redirect to S3.
      const get = await fetch(`${relay.url}/v2/team/app/blobs/${sha256(blob)}`);
      expect(sha256(new Uint8Array(await get.arrayBuffer()))).toBe(sha256(blob));
      const manifest = await fetch(`${relay.url}/v2/team/app/manifests/v1`, {
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(manifest.status).toBe(200);
    });

    it('sends a layer between the small limit and one part in one part straight to S3', async () => {
      const { server, paths } = await remote(s3Config());
      const relay = await relayTo(server.url);
      // Above smallLimit (4 MiB), below partSize (5 MiB here): the session is still being opened
      // when the client finishes, and the one part goes once it is.
      const blob = randomFillSync(new Uint8Array(4 * MiB + 300_000));
      expect((await dockerPush(relay.url, 'team/mid', blob)).status).toBe(201);
      expect(paths.some((p) => p.startsWith('PATCH') || p.startsWith('PUT'))).toBe(false);
      expect(paths.filter((p) => p.endsWith('/complete'))).toHaveLength(1);
      const get = await fetch(`${server.url}/v2/team/mid/blobs/${sha256(blob)}`);
      expect(sha256(new Uint8Array(await get.arrayBuffer()))).toBe(sha256(blob));
    });

    it('passes a lie about the digest on as DIGEST_INVALID, and nothing becomes visible', async () => {
      const { server } = await remote(s3Config());
      const relay = await relayTo(server.url);
      const blob = randomFillSync(new Uint8Array(12 * MiB));
      const lie = sha256('not the blob');
      const res = await dockerPush(relay.url, 'team/app', blob, lie);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('DIGEST_INVALID');
      for (const digest of [lie, sha256(blob)]) {
        expect((await fetch(`${server.url}/v2/team/app/blobs/${digest}`, { method: 'HEAD' })).status).toBe(
          404,
        );
      }
    });

    it('sends a blob whose digest comes first in one PUT that S3 checks, with no parts', async () => {
      const { server, paths } = await remote(s3Config());
      const relay = await relayTo(server.url);
      const blob = randomFillSync(new Uint8Array(13 * MiB + 5));
      expect((await containerdPush(relay.url, 'team/known', blob)).status).toBe(201);
      const extension = paths.filter((p) => p.includes('/_berth/v1/uploads/')).map((p) => p.split('/').pop());
      expect(extension).toEqual(['object', 'complete']);
      expect(paths.some((p) => p.startsWith('PATCH'))).toBe(false);
      const get = await fetch(`${server.url}/v2/team/known/blobs/${sha256(blob)}`);
      expect(sha256(new Uint8Array(await get.arrayBuffer()))).toBe(sha256(blob));
      // The same in one monolithic POST ?digest= with the body.
      const other = randomFillSync(new Uint8Array(6 * MiB));
      paths.length = 0;
      const post = await fetch(`${relay.url}/v2/team/known/blobs/uploads/?digest=${sha256(other)}`, {
        method: 'POST',
        body: other,
      });
      expect(post.status).toBe(201);
      expect(paths.filter((p) => p.endsWith('/object'))).toHaveLength(1);
      expect((await manifestFor(relay.url, 'team/known', blob, 'v1')).status).toBe(201);
    });

    it('passes the store refusing bytes that are not the digest on as DIGEST_INVALID', async () => {
      const { server } = await remote(s3Config());
      const relay = await relayTo(server.url);
      const blob = randomFillSync(new Uint8Array(8 * MiB));
      const lie = sha256('not the blob');
      const res = await containerdPush(relay.url, 'team/lie', blob, lie);
      expect(res.status).toBe(400);
      const error = ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
      expect(error.code).toBe('DIGEST_INVALID');
      expect(error.message).toMatch(/do not have digest/);
      for (const digest of [lie, sha256(blob)]) {
        expect((await fetch(`${server.url}/v2/team/lie/blobs/${digest}`, { method: 'HEAD' })).status).toBe(
          404,
        );
      }
      // The client's retry with the right digest goes through.
      expect((await containerdPush(relay.url, 'team/lie', blob)).status).toBe(201);
    });

    it('stops a checked upload whose bytes do not match what was announced, and keeps nothing', async () => {
      const { server } = await remote(s3Config());
      const remoteRegistry = new RemoteRegistry({ url: server.url });
      const blob = randomFillSync(new Uint8Array(6 * MiB));
      const longer = BlobUpload.deferred(remoteRegistry, 'team/size', tuning);
      longer.expect(sha256(blob), blob.byteLength - 1);
      await expect(longer.write(blob)).rejects.toThrow(/more than the .* bytes announced/);
      await longer.cancel();
      const shorter = BlobUpload.deferred(remoteRegistry, 'team/size', tuning);
      shorter.expect(sha256(blob), blob.byteLength + 1);
      await shorter.write(blob);
      expect(shorter.way).toBe('checked');
      await expect(shorter.finish(sha256(blob))).rejects.toThrow(/as announced|not the .* announced/);
      await shorter.cancel();
      expect(
        (await fetch(`${server.url}/v2/team/size/blobs/${sha256(blob)}`, { method: 'HEAD' })).status,
      ).toBe(404);
    });

    it('berth push sends a blob whose checked PUT was cut off again, from the archive', async () => {
      const proxy = await FaultProxy.start(s3!.endpoint);
      stops.push(() => proxy.close());
      const config = s3Config();
      const { server } = await remote({ ...config, s3: { ...config.s3!, endpoint: proxy.endpoint } });
      // The first PUT straight to the store (presigned: the signature is in its URL) loses its connection.
      const checkedPut = (method: string, url: string) =>
        method === 'PUT' && url.includes('/data/') && url.includes('X-Amz-Signature');
      proxy.inject(checkedPut, 'drop', 1);
      const archive = await singleLayerArchive(6 * MiB);
      const summary = await pushImage(
        await openImage(archive.file),
        { remote: new RemoteRegistry({ url: server.url }), repo: 'ci/retry', reference: '1' },
        undefined,
        tuning,
      );
      expect(summary.uploaded).toBe(2);
      expect(proxy.requests.filter((r) => checkedPut(r.method, r.url))).toHaveLength(2);
      const get = await fetch(`${server.url}/v2/ci/retry/blobs/${sha256(archive.layer)}`);
      expect(sha256(new Uint8Array(await get.arrayBuffer()))).toBe(sha256(archive.layer));
    });

    it('logs in to the remote itself; the local client sends no credentials', async () => {
      const authFile = join(dir, `auth-${randomUUID()}.json`);
      await addUser(authFile, 'alice', 'alice-password', ['team/*:pull,push']);
      const { server } = await remote({ ...s3Config(), authFile });
      const anonymous = await fetch(`${server.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
      expect(anonymous.status).toBe(401);
      const relay = await relayTo(server.url, { username: 'alice', password: 'alice-password' });
      const blob = randomFillSync(new Uint8Array(9 * MiB));
      expect((await dockerPush(relay.url, 'team/app', blob)).status).toBe(201);
      expect((await manifestFor(relay.url, 'team/app', blob, 'v1')).status).toBe(201);
      const denied = await relayTo(server.url, { username: 'alice', password: 'wrong' });
      const res = await fetch(`${denied.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
      expect(res.status).toBe(401);
    });

    it('berth push uploads a docker save archive and its manifest', async () => {
      const { server, paths } = await remote(s3Config());
      const { file: archive, layer: layerTar } = await singleLayerArchive(7 * MiB);
      const remoteRegistry = new RemoteRegistry({ url: server.url });
      const summary = await pushImage(
        await openImage(archive),
        { remote: remoteRegistry, repo: 'ci/app', reference: '1' },
        undefined,
        tuning,
      );
      expect(summary.uploaded).toBe(2);
      // The layer (over the small limit) went in one checked PUT: its digest was known first.
      expect(paths.filter((p) => p.includes('/_berth/v1/uploads/')).map((p) => p.split('/').pop())).toEqual([
        'object',
        'complete',
      ]);
      const manifest = await fetch(`${server.url}/v2/ci/app/manifests/1`, {
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      const body = (await manifest.json()) as { layers: { digest: string; size: number }[] };
      expect(body.layers).toEqual([
        expect.objectContaining({ digest: sha256(layerTar), size: layerTar.byteLength }),
      ]);
      const again = await pushImage(await openImage(archive), {
        remote: remoteRegistry,
        repo: 'ci/app',
        reference: '1',
      });
      expect(again).toMatchObject({ uploaded: 0, skipped: 2 });
    });
  });
});
