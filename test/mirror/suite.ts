import { expect, it, vi } from 'vitest';
import { createLogger } from '../../lib/logging/logger.ts';
import { parseDigest } from '../../lib/oci/digest.ts';
import type { RepositoryName } from '../../lib/oci/names.ts';
import { keys } from '../../lib/registry/keys.ts';
import type { StorageDriver } from '../../lib/storage/port.ts';
import { errorCode, pushImage, randomBytes, sha256 } from '../http/harness.ts';
import { fakeUpstream, mirrorRegistry, type FakeUpstream, type MirrorTestOptions } from './harness.ts';

const MiB = 1024 * 1024;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/**
 * The pull-through cache's behaviour, on whichever store `storage` makes. `redirect` runs blob GETs
 * as on S3 in production (307 to a presigned URL, followed by `follow`).
 */
export function mirrorSuite(
  storage: () => Promise<StorageDriver>,
  variant: {
    mode?: 'stream' | 'fill';
    redirect?: boolean;
    follow?: (location: string) => Promise<Response>;
  } = {},
): void {
  async function setup(options: Partial<MirrorTestOptions> = {}) {
    const upstream = options.upstream ?? fakeUpstream(options.credentials);
    const mirror = mirrorRegistry({
      storage: options.storage ?? (await storage()),
      upstream,
      redirect: variant.redirect,
      mode: variant.mode,
      ...options,
    });
    return { upstream, mirror };
  }

  /** A blob GET as a client does it: following a redirect to storage when there is one. */
  async function getBlob(r: { request: (p: string) => Promise<Response> }, repo: string, digest: string) {
    const res = await r.request(`/v2/${repo}/blobs/${digest}`);
    if (res.status === 307 && variant.follow) return variant.follow(res.headers.get('Location')!);
    return res;
  }

  const blobRequests = (u: FakeUpstream) =>
    u.served.filter((r) => r.startsWith('GET') && r.includes('/blobs/'));

  it('serves a miss from the upstream, then the same content from its own storage without asking again', async () => {
    const { upstream, mirror } = await setup();
    const layer = randomBytes(300_000, 3);
    const image = await pushImage(upstream.registry, 'team/app', 'v1', { layers: [layer] });

    const manifest = await mirror.request('/v2/team/app/manifests/v1');
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('Docker-Content-Digest')).toBe(image.digest);
    expect(new Uint8Array(await manifest.arrayBuffer())).toEqual(image.bytes);
    const blob = await getBlob(mirror, 'team/app', image.layers[0]!);
    expect(blob.status).toBe(200);
    expect(sha256(new Uint8Array(await blob.arrayBuffer()))).toBe(image.layers[0]);
    const config = await getBlob(mirror, 'team/app', image.config);
    expect(sha256(new Uint8Array(await config.arrayBuffer()))).toBe(image.config);

    const asked = upstream.requests.length;
    const again = await mirror.request('/v2/team/app/manifests/v1');
    expect(new Uint8Array(await again.arrayBuffer())).toEqual(image.bytes);
    expect((await mirror.request(`/v2/team/app/manifests/${image.digest}`, { method: 'HEAD' })).status).toBe(
      200,
    );
    const cached = await getBlob(mirror, 'team/app', image.layers[0]!);
    expect(sha256(new Uint8Array(await cached.arrayBuffer()))).toBe(image.layers[0]);
    expect(upstream.requests.slice(asked)).toEqual([]);
  });

  it('sees the link of a copy that ends while it reads the link, instead of asking the upstream again', async () => {
    // A storage read answers what was stored when it started, however long it then takes (a loaded
    // store, a slow network): the second pull's read of the link starts before the first pull's copy
    // links the blob, and its (negative) answer arrives only after that copy has ended.
    const base = await storage();
    let linkKey = '';
    let linkWritten!: () => void;
    const written = new Promise<void>((resolve) => (linkWritten = resolve));
    let holdNextLinkRead = false;
    const slowStore = new Proxy(base, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (prop === 'put') {
          return async (key: string, ...rest: unknown[]) => {
            const put = await target.put(key, ...(rest as [Uint8Array]));
            if (key === linkKey) linkWritten();
            return put;
          };
        }
        if (prop === 'head') {
          return async (key: string) => {
            const info = await target.head(key);
            if (key === linkKey && holdNextLinkRead) {
              holdNextLinkRead = false;
              await written;
              // What is left of the copy after the link write runs without I/O; one turn lets it end.
              await new Promise((resolve) => setImmediate(resolve));
            }
            return info;
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const { upstream, mirror } = await setup({ storage: slowStore });
    const image = await pushImage(upstream.registry, 'app', 'v1', { layers: [randomBytes(300_000, 6)] });
    linkKey = keys.layerLink('app' as RepositoryName, parseDigest(image.layers[0]!));
    let release!: () => void;
    upstream.gate = new Promise((resolve) => (release = resolve));

    const first = getBlob(mirror, 'app', image.layers[0]!).then(async (res) =>
      sha256(new Uint8Array(await res.arrayBuffer())),
    );
    while (blobRequests(upstream).length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    holdNextLinkRead = true;
    const second = getBlob(mirror, 'app', image.layers[0]!).then(async (res) =>
      sha256(new Uint8Array(await res.arrayBuffer())),
    );
    release();
    expect(await Promise.all([first, second])).toEqual([image.layers[0], image.layers[0]]);
    expect(holdNextLinkRead).toBe(false);
    expect(upstream.served.filter((r) => r.includes('/blobs/'))).toEqual([
      `GET upstream.test/v2/app/blobs/${image.layers[0]}`,
    ]);
  });

  it('asks Docker Hub for library/<name> whether the client says alpine or library/alpine', async () => {
    const { upstream, mirror } = await setup({ dockerHub: true });
    const image = await pushImage(upstream.registry, 'library/alpine', 'latest');
    for (const repo of ['alpine', 'library/alpine']) {
      const res = await mirror.request(`/v2/${repo}/manifests/latest`);
      expect(res.headers.get('Docker-Content-Digest')).toBe(image.digest);
      const blob = await getBlob(mirror, repo, image.layers[0]!);
      expect(sha256(new Uint8Array(await blob.arrayBuffer()))).toBe(image.layers[0]);
    }
    expect(upstream.requests.filter((r) => r.includes('/v2/alpine/'))).toEqual([]);
    expect(upstream.requests.some((r) => r.includes('/v2/library/alpine/manifests/latest'))).toBe(true);
  });

  it('re-validates a tag with one HEAD once its TTL has passed, and follows the upstream when it moved', async () => {
    let now = 1_000_000;
    const { upstream, mirror } = await setup({ tagTtlMs: 60_000, now: () => now });
    const first = await pushImage(upstream.registry, 'app', 'stable', { layers: [randomBytes(500, 1)] });
    await mirror.request('/v2/app/manifests/stable');

    now += 59_000;
    let asked = upstream.requests.length;
    expect((await mirror.request('/v2/app/manifests/stable')).headers.get('Docker-Content-Digest')).toBe(
      first.digest,
    );
    expect(upstream.requests.slice(asked)).toEqual([]);

    now += 2_000;
    asked = upstream.requests.length;
    expect((await mirror.request('/v2/app/manifests/stable')).headers.get('Docker-Content-Digest')).toBe(
      first.digest,
    );
    expect(upstream.requests.slice(asked)).toEqual(['HEAD upstream.test/v2/app/manifests/stable']);
    asked = upstream.requests.length;
    await mirror.request('/v2/app/manifests/stable');
    expect(upstream.requests.slice(asked)).toEqual([]);

    const second = await pushImage(upstream.registry, 'app', 'stable', { layers: [randomBytes(500, 2)] });
    now += 61_000;
    const moved = await mirror.request('/v2/app/manifests/stable', { method: 'HEAD' });
    expect(moved.headers.get('Docker-Content-Digest')).toBe(second.digest);
    const body = await mirror.request('/v2/app/manifests/stable');
    expect(new Uint8Array(await body.arrayBuffer())).toEqual(second.bytes);
  });

  it('serves what it has when the upstream is down, and says which upstream failed for what it lacks', async () => {
    let now = 0;
    const { upstream, mirror } = await setup({ tagTtlMs: 1_000, now: () => now });
    const image = await pushImage(upstream.registry, 'app', 'v1');
    await pushImage(upstream.registry, 'other', 'v1', { layers: [randomBytes(100, 9)] });
    await mirror.request('/v2/app/manifests/v1');
    await (await getBlob(mirror, 'app', image.layers[0]!)).arrayBuffer();

    upstream.down = true;
    now += 10_000;
    const tag = await mirror.request('/v2/app/manifests/v1');
    expect(tag.status).toBe(200);
    expect(tag.headers.get('Docker-Content-Digest')).toBe(image.digest);
    const cached = await getBlob(mirror, 'app', image.layers[0]!);
    expect(sha256(new Uint8Array(await cached.arrayBuffer()))).toBe(image.layers[0]);

    const missing = await mirror.request('/v2/other/manifests/v1');
    expect(missing.status).toBe(503);
    const body = (await missing.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('UNAVAILABLE');
    expect(body.errors[0]!.message).toContain('https://upstream.test');
    const blob = await mirror.request(`/v2/app/blobs/${image.config}`);
    expect(blob.status).toBe(503);
  });

  it('fetches a blob once from the upstream when several clients miss it at the same time', async () => {
    const { upstream, mirror } = await setup();
    const layer = randomBytes(6 * MiB, 4);
    const image = await pushImage(upstream.registry, 'app', 'v1', { layers: [layer] });
    let release!: () => void;
    upstream.gate = new Promise((resolve) => (release = resolve));
    const pulls = Array.from({ length: 4 }, () =>
      getBlob(mirror, 'app', image.layers[0]!).then(async (res) =>
        sha256(new Uint8Array(await res.arrayBuffer())),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    release();
    expect(await Promise.all(pulls)).toEqual(Array(4).fill(image.layers[0]));
    expect(blobRequests(upstream), String(upstream.served)).toHaveLength(1);
  });

  it('never stores a blob whose bytes do not match its digest, and fetches it again later', async () => {
    const { upstream, mirror } = await setup();
    const image = await pushImage(upstream.registry, 'app', 'v1', { layers: [randomBytes(200_000, 5)] });
    upstream.tamper = true;
    const res = await getBlob(mirror, 'app', image.layers[0]!);
    if (res.status === 200) await expect(res.arrayBuffer()).rejects.toThrow();
    else expect(res.status).toBe(502);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const layerKey = `blobs/sha256/${image.layers[0]!.slice('sha256:'.length)}`;
    expect(await mirror.storage.head(layerKey)).toBeUndefined();

    upstream.tamper = false;
    const good = await getBlob(mirror, 'app', image.layers[0]!);
    expect(sha256(new Uint8Array(await good.arrayBuffer()))).toBe(image.layers[0]);
    expect(blobRequests(upstream), String(upstream.served)).toHaveLength(2);
  });

  it('logs a failed copy whose upload session it cannot cancel, naming the session left behind', async () => {
    const lines: string[] = [];
    const logger = createLogger('warn', {}, (line) => lines.push(line));
    // A store that refuses to abort multipart uploads (an S3 outage): the cancel of the failed copy fails.
    const store = await storage();
    const refusingAbort = new Proxy(store, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target);
        if (prop !== 'multipart') return typeof value === 'function' ? value.bind(target) : value;
        return new Proxy(value as object, {
          get(multipart, name) {
            if (name === 'abort') return async () => Promise.reject(new Error('abort refused'));
            const method: unknown = Reflect.get(multipart, name, multipart);
            return typeof method === 'function' ? method.bind(multipart) : method;
          },
        });
      },
    });
    const { upstream, mirror } = await setup({ storage: refusingAbort, logger });
    // Above the 5 MiB part size, so the copy goes through an upload session with a multipart upload.
    const image = await pushImage(upstream.registry, 'app', 'v1', { layers: [randomBytes(6 * MiB, 9)] });
    upstream.tamper = true;
    const res = await getBlob(mirror, 'app', image.layers[0]!);
    if (res.status === 200) await expect(res.arrayBuffer()).rejects.toThrow();
    else expect(res.status).toBe(502);
    const warned = () =>
      lines
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .find((l) => l.msg === 'mirror could not cancel the upload session of a failed copy');
    await vi.waitFor(() => expect(warned()).toBeDefined(), { timeout: 10_000 });
    expect(warned()).toMatchObject({
      level: 'warn',
      repository: 'app',
      digest: image.layers[0],
      session: expect.any(String),
      errorMessage: 'abort refused',
    });
  });

  it('lists a pulled referrer under its subject, and the repository in the catalog, as a push would', async () => {
    const { upstream, mirror } = await setup();
    const image = await pushImage(upstream.registry, 'team/app', 'v1');
    const signature = await pushImage(upstream.registry, 'team/app', 'sig', {
      artifactType: 'application/vnd.example.signature',
      subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.bytes.byteLength },
      annotations: { 'org.example.signed-by': 'ci' },
    });

    // A client pulls the image by tag, then its signature by digest (what cosign or oras do).
    expect((await mirror.request('/v2/team/app/manifests/v1')).status).toBe(200);
    const pulled = await mirror.request(`/v2/team/app/manifests/${signature.digest}`);
    expect(pulled.status).toBe(200);
    expect(new Uint8Array(await pulled.arrayBuffer())).toEqual(signature.bytes);

    const asked = upstream.requests.length;
    const referrers = await mirror.request(`/v2/team/app/referrers/${image.digest}`);
    expect(referrers.status).toBe(200);
    const index = (await referrers.json()) as { manifests: Record<string, unknown>[] };
    expect(index.manifests).toEqual([
      {
        mediaType: OCI_MANIFEST,
        digest: signature.digest,
        size: signature.bytes.byteLength,
        artifactType: 'application/vnd.example.signature',
        annotations: { 'org.example.signed-by': 'ci' },
      },
    ]);
    expect(upstream.requests.slice(asked)).toEqual([]);
    const catalog = (await (await mirror.request('/v2/_catalog')).json()) as { repositories: string[] };
    expect(catalog.repositories).toEqual(['team/app']);
  });

  it('refuses pushes and deletes in mirrored repositories, and takes them outside the prefix', async () => {
    const { mirror } = await setup({ prefix: 'hub=' });
    const push = await mirror.request('/v2/hub/library/alpine/blobs/uploads/', { method: 'POST' });
    expect(push.status).toBe(403);
    const body = (await push.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('DENIED');
    expect(body.errors[0]!.message).toContain('read-only pull-through cache of https://upstream.test');
    const put = await mirror.request('/v2/hub/library/alpine/manifests/latest', {
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: '{}',
    });
    expect(await errorCode(put)).toBe('DENIED');
    const own = await pushImage(mirror, 'team/app', 'v1');
    expect((await mirror.request(`/v2/team/app/manifests/${own.digest}`)).status).toBe(200);
  });

  it('maps the prefix away and answers what the upstream lacks with the spec 404', async () => {
    const { upstream, mirror } = await setup({ prefix: 'hub=' });
    const image = await pushImage(upstream.registry, 'library/nginx', '1');
    expect(
      (await mirror.request('/v2/hub/library/nginx/manifests/1')).headers.get('Docker-Content-Digest'),
    ).toBe(image.digest);
    const absent = await mirror.request('/v2/hub/library/nginx/manifests/2');
    expect(absent.status).toBe(404);
    expect(await errorCode(absent)).toBe('MANIFEST_UNKNOWN');
    const blob = await mirror.request(`/v2/hub/library/nginx/blobs/${sha256('nothing')}`);
    expect(blob.status).toBe(404);
  });

  it('fetches pull tokens with the configured upstream credentials', async () => {
    const credentials = { username: 'mirror-bot', password: 's3cret' };
    const { upstream, mirror } = await setup({ credentials });
    const image = await pushImage(upstream.registry, 'private/app', 'v1');
    const res = await mirror.request('/v2/private/app/manifests/v1');
    expect(res.headers.get('Docker-Content-Digest')).toBe(image.digest);
    const anonymous = await setup({ upstream });
    const refused = await anonymous.mirror.request('/v2/private/app/manifests/v1');
    expect(refused.status).toBe(404);
    expect(await errorCode(refused)).toBe('NAME_UNKNOWN');
  });
}
