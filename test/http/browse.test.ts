import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, createRobot, setAnonymousPull } from '../../lib/auth/admin.ts';
import { FileAuthStore } from '../../lib/auth/auth-store.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import { keys } from '../../lib/registry/keys.ts';
import { parseName, parseTag } from '../../lib/oci/names.ts';
import { loadAuth } from '../../lib/setup/auth.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import type { DetailedListPage, ListOptions } from '../../lib/storage/port.ts';
import { GC_KEYS } from '../../lib/gc/state.ts';
import { errorCode, pushBlob, randomBytes, sha256, testRegistry, type TestRegistry } from './harness.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

interface TagRow {
  name: string;
  digest: string;
  pushedAt: string;
  immutable?: boolean;
  summary?: { kind: string; size?: number; created?: string; platforms?: string[]; artifactType?: string };
}

/** An image as a build makes it: a config with a creation time, platform, env and history. */
async function pushImage(
  r: TestRegistry,
  repo: string,
  tag: string,
  options: { arch?: string; created?: string; layers?: Uint8Array<ArrayBuffer>[]; subject?: string } = {},
): Promise<{ digest: string; size: number; bytes: Uint8Array; total: number }> {
  const config = new TextEncoder().encode(
    JSON.stringify({
      created: options.created ?? '2024-05-01T10:00:00Z',
      architecture: options.arch ?? 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/bin', 'MODE=prod'], Entrypoint: ['/app'], Labels: { team: 'a' } },
      rootfs: { type: 'layers', diff_ids: [] },
      history: [{ created: '2024-05-01T10:00:00Z', created_by: 'COPY app /app # buildkit' }],
    }),
  );
  const layers = options.layers ?? [randomBytes(3000, tag.length + (options.arch?.length ?? 0))];
  const configDigest = await pushBlob(r, repo, config);
  const layerDigests: string[] = [];
  for (const l of layers) layerDigests.push(await pushBlob(r, repo, l));
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: config.length,
      },
      layers: layers.map((l, i) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: layerDigests[i],
        size: l.length,
      })),
      ...(options.subject && { subject: { mediaType: OCI_MANIFEST, digest: options.subject, size: 10 } }),
    }),
  );
  const res = await r.request(`/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': OCI_MANIFEST },
    body: manifest,
  });
  expect(res.status).toBe(201);
  const total = config.length + layers.reduce((t, l) => t + l.length, 0);
  return { digest: sha256(manifest), size: manifest.length, bytes: manifest, total };
}

async function pushIndex(
  r: TestRegistry,
  repo: string,
  tag: string,
  children: { digest: string; size: number; arch: string }[],
) {
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: children.map((c) => ({
      mediaType: OCI_MANIFEST,
      digest: c.digest,
      size: c.size,
      platform: { os: 'linux', architecture: c.arch },
    })),
  });
  const res = await r.request(`/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': OCI_INDEX },
    body: index,
  });
  expect(res.status).toBe(201);
  return sha256(index);
}

async function json<T>(res: Response): Promise<T> {
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as T;
}

/**
 * A memory store that lists like S3 (each object's etag and time come with the listing) and counts
 * the requests an S3 store would be sent.
 */
class CountingStore extends MemoryDriver {
  calls = { list: 0, head: 0, get: 0, put: 0 };
  override async head(key: string) {
    this.calls.head++;
    return super.head(key);
  }
  override async get(key: string) {
    this.calls.get++;
    return super.get(key);
  }
  override async put(...args: Parameters<MemoryDriver['put']>) {
    this.calls.put++;
    return super.put(...args);
  }
  override async list(prefix: string, options?: ListOptions) {
    this.calls.list++;
    return super.list(prefix, options);
  }
  async listObjects(prefix: string, options?: ListOptions): Promise<DetailedListPage> {
    this.calls.list++;
    const page = await super.list(prefix, options);
    const objects = [];
    for (const key of page.keys) {
      const info = await super.head(key);
      if (info) objects.push({ key, size: info.size, etag: info.etag, lastModified: info.lastModified });
    }
    return { objects, truncated: page.truncated };
  }
  reset() {
    this.calls = { list: 0, head: 0, get: 0, put: 0 };
  }
}

describe('tags with summaries', () => {
  it('lists each tag with its digest, kind, compressed size, creation time and platform', async () => {
    const r = testRegistry();
    const image = await pushImage(r, 'team/app', 'v1', { created: '2024-03-02T01:02:03Z', arch: 'arm64' });
    const body = await json<{ tags: TagRow[]; pending: number }>(
      await r.request('/v2/team/app/_berth/v1/tags'),
    );
    expect(body.pending).toBe(0);
    expect(body.tags).toHaveLength(1);
    const [tag] = body.tags;
    expect(tag).toMatchObject({ name: 'v1', digest: image.digest });
    expect(tag!.summary).toEqual({
      kind: 'image',
      mediaType: OCI_MANIFEST,
      size: image.total,
      created: '2024-03-02T01:02:03Z',
      platforms: ['linux/arm64'],
    });
    expect(Number.isNaN(Date.parse(tag!.pushedAt))).toBe(false);
  });

  it('sums the platform images of a multi-platform index', async () => {
    const r = testRegistry();
    const amd = await pushImage(r, 'team/multi', 'amd', { arch: 'amd64' });
    const arm = await pushImage(r, 'team/multi', 'arm', { arch: 'arm64' });
    await pushIndex(r, 'team/multi', 'latest', [
      { ...amd, arch: 'amd64' },
      { ...arm, arch: 'arm64' },
    ]);
    const body = await json<{ tags: TagRow[] }>(await r.request('/v2/team/multi/_berth/v1/tags'));
    const latest = body.tags.find((t) => t.name === 'latest')!;
    expect(latest.summary).toMatchObject({
      kind: 'index',
      platforms: ['linux/amd64', 'linux/arm64'],
      size: amd.total + arm.total,
    });
  });

  it('summarizes tags written before summaries existed, then serves them from the cache', async () => {
    const storage = new CountingStore();
    const r = testRegistry({ storage });
    const image = await pushImage(r, 'old/app', 'v1');
    // What an older Berth wrote: the manifest's bytes with only the digest in the metadata.
    await storage.put(keys.tag(parseName('old/app'), parseTag('v1')), image.bytes, {
      contentType: OCI_MANIFEST,
      metadata: { digest: image.digest },
    });
    const first = await json<{ tags: TagRow[] }>(await r.request('/v2/old/app/_berth/v1/tags'));
    expect(first.tags[0]!.summary).toMatchObject({
      kind: 'image',
      size: image.total,
      platforms: ['linux/amd64'],
    });
    storage.reset();
    const again = await json<{ tags: TagRow[] }>(await r.request('/v2/old/app/_berth/v1/tags'));
    expect(again.tags).toEqual(first.tags);
    expect(storage.calls).toEqual({ list: 1, head: 0, get: 1, put: 0 });
  });

  it('costs one listing and one cache read per page view however many tags, and re-reads only a moved tag', async () => {
    const storage = new CountingStore();
    const r = testRegistry({ storage });
    for (let i = 0; i < 30; i++) await pushImage(r, 'ci/app', `build-${String(i).padStart(2, '0')}`);
    await json(await r.request('/v2/ci/app/_berth/v1/tags?n=30'));
    storage.reset();
    const view = await json<{ tags: TagRow[] }>(await r.request('/v2/ci/app/_berth/v1/tags?n=30'));
    expect(view.tags).toHaveLength(30);
    expect(storage.calls).toEqual({ list: 1, head: 0, get: 1, put: 0 });

    const moved = await pushImage(r, 'ci/app', 'build-07', { arch: 'riscv64' });
    storage.reset();
    const after = await json<{ tags: TagRow[] }>(await r.request('/v2/ci/app/_berth/v1/tags?n=30'));
    expect(after.tags.find((t) => t.name === 'build-07')).toMatchObject({
      digest: moved.digest,
      summary: { platforms: ['linux/riscv64'] },
    });
    // The listing, the cache, one head of the moved tag, and the cache written back.
    expect(storage.calls).toEqual({ list: 1, head: 1, get: 1, put: 1 });
  });

  it('pages with n and last, a Link to the next page, and refuses a bad n', async () => {
    const r = testRegistry();
    for (const tag of ['a', 'b', 'c']) await pushImage(r, 'paged', tag);
    const res = await r.request('/v2/paged/_berth/v1/tags?n=2');
    expect(res.headers.get('Link')).toBe('</v2/paged/_berth/v1/tags?n=2&last=b>; rel="next"');
    const first = await json<{ tags: TagRow[]; next: string }>(res);
    expect(first.tags.map((t) => t.name)).toEqual(['a', 'b']);
    const second = await json<{ tags: TagRow[]; next?: string }>(
      await r.request(`/v2/paged/_berth/v1/tags?n=2&last=${first.next}`),
    );
    expect(second.tags.map((t) => t.name)).toEqual(['c']);
    expect(second.next).toBeUndefined();
    const bad = await r.request('/v2/paged/_berth/v1/tags?n=lots');
    expect(bad.status).toBe(400);
    expect(await errorCode(bad)).toBe('PAGINATION_NUMBER_INVALID');
    const unknown = await r.request('/v2/nothing/here/_berth/v1/tags');
    expect(unknown.status).toBe(404);
    expect(await errorCode(unknown)).toBe('NAME_UNKNOWN');
  });

  it('marks immutable tags', async () => {
    const r = testRegistry({ immutableTags: [{ repositories: 'prod/*', tags: 'v*' }] });
    await pushImage(r, 'prod/api', 'v1');
    await pushImage(r, 'prod/api', 'latest');
    const body = await json<{ tags: TagRow[] }>(await r.request('/v2/prod/api/_berth/v1/tags'));
    expect(body.tags.map((t) => [t.name, t.immutable ?? false])).toEqual([
      ['latest', false],
      ['v1', true],
    ]);
  });
});

describe('artifact kinds', () => {
  it('tells a Helm chart, an SBOM referrer and a signature from an image', async () => {
    const r = testRegistry();
    const chartConfig = new TextEncoder().encode('{"name":"web","version":"1.0.0"}');
    const chart = randomBytes(500, 3);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: {
        mediaType: 'application/vnd.cncf.helm.config.v1+json',
        digest: await pushBlob(r, 'charts/web', chartConfig),
        size: chartConfig.length,
      },
      layers: [
        {
          mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
          digest: await pushBlob(r, 'charts/web', chart),
          size: chart.length,
        },
      ],
    });
    const put = await r.request('/v2/charts/web/manifests/1.0.0', {
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: manifest,
    });
    expect(put.status).toBe(201);
    const body = await json<{ tags: TagRow[] }>(await r.request('/v2/charts/web/_berth/v1/tags'));
    expect(body.tags[0]!.summary).toMatchObject({ kind: 'helm', size: chartConfig.length + chart.length });
  });
});

describe('manifest details and referrers', () => {
  it('shows layers, the config (env, entrypoint, labels, history) and referrers with their types', async () => {
    const r = testRegistry();
    const image = await pushImage(r, 'team/app', 'v1');
    const empty = new TextEncoder().encode('{}');
    const emptyDigest = await pushBlob(r, 'team/app', empty);
    const sbom = randomBytes(200, 9);
    const sbomManifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/spdx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyDigest, size: 2 },
      layers: [
        { mediaType: 'application/spdx+json', digest: await pushBlob(r, 'team/app', sbom), size: 200 },
      ],
      subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.size },
    });
    const put = await r.request(`/v2/team/app/manifests/${sha256(sbomManifest)}`, {
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: sbomManifest,
    });
    expect(put.status).toBe(201);

    const details = await json<{
      digest: string;
      manifest: string;
      layers: { mediaType: string; size: number }[];
      config: {
        env: string[];
        entrypoint: string[];
        labels: Record<string, string>;
        history: { createdBy: string }[];
        platform: string;
      };
      referrers: { digest: string; artifactType: string; kind: string }[];
    }>(await r.request('/v2/team/app/_berth/v1/manifests/v1'));
    expect(details.digest).toBe(image.digest);
    expect(details.manifest).toBe(new TextDecoder().decode(image.bytes));
    expect(details.layers).toEqual([
      expect.objectContaining({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: 3000 }),
    ]);
    expect(details.config).toMatchObject({
      env: ['PATH=/usr/bin', 'MODE=prod'],
      entrypoint: ['/app'],
      labels: { team: 'a' },
      platform: 'linux/amd64',
      history: [{ createdBy: 'COPY app /app # buildkit' }],
    });
    expect(details.referrers).toEqual([
      expect.objectContaining({
        digest: sha256(sbomManifest),
        artifactType: 'application/spdx+json',
        kind: 'sbom',
      }),
    ]);
  });

  it("lists an index's platforms, each with its image's size", async () => {
    const r = testRegistry();
    const amd = await pushImage(r, 'team/multi', 'amd', { arch: 'amd64' });
    const index = await pushIndex(r, 'team/multi', 'latest', [{ ...amd, arch: 'amd64' }]);
    const details = await json<{
      digest: string;
      platforms: { digest: string; platform: string; size: number }[];
    }>(await r.request(`/v2/team/multi/_berth/v1/manifests/${index}`));
    expect(details.platforms).toEqual([
      {
        digest: amd.digest,
        mediaType: OCI_MANIFEST,
        platform: 'linux/amd64',
        attestation: false,
        size: amd.total,
      },
    ]);
  });
});

describe('what a delete would do', () => {
  it('names the other tags of a manifest, and what a manifest delete removes and untags', async () => {
    const r = testRegistry();
    const amd = await pushImage(r, 'team/app', 'amd');
    const index = await pushIndex(r, 'team/app', 'v1', [{ ...amd, arch: 'amd64' }]);
    await pushIndex(r, 'team/app', 'latest', [{ ...amd, arch: 'amd64' }]);

    const tagDelete = await json<{
      digest: string;
      removesTags: string[];
      otherTags: string[];
      untagged: string[];
    }>(await r.request('/v2/team/app/_berth/v1/manifests/v1/impact'));
    expect(tagDelete).toMatchObject({
      digest: index,
      removesTags: ['v1'],
      otherTags: ['latest'],
      untagged: [],
    });

    const manifestDelete = await json<{ removesTags: string[]; untagged: string[]; children: number }>(
      await r.request(`/v2/team/app/_berth/v1/manifests/${index}/impact`),
    );
    expect(manifestDelete.removesTags.sort()).toEqual(['latest', 'v1']);
    // The child keeps its own tag, so nothing else is left untagged.
    expect(manifestDelete).toMatchObject({ children: 1, untagged: [] });

    await r.request('/v2/team/app/manifests/amd', { method: 'DELETE' });
    const afterUntag = await json<{ untagged: string[] }>(
      await r.request(`/v2/team/app/_berth/v1/manifests/${index}/impact`),
    );
    expect(afterUntag.untagged).toEqual([amd.digest]);
  });
});

describe('repositories', () => {
  it('filters by name, pages, and gives tag counts, last push and the usage report size', async () => {
    const r = testRegistry();
    for (const name of ['alpha/api', 'alpha/web', 'beta/api', 'gamma/db']) await pushImage(r, name, 'v1');
    await pushImage(r, 'alpha/api', 'v2');
    await r.storage.put(
      GC_KEYS.usage,
      new TextEncoder().encode(
        JSON.stringify({
          generatedAt: '2024-06-01T00:00:00.000Z',
          totalBlobs: 1,
          totalBytes: 1,
          repositories: [
            {
              name: 'alpha/api',
              bytes: 12345,
              blobs: 1,
              exclusiveBlobs: 1,
              exclusiveBytes: 1,
              manifests: 2,
              tags: 2,
            },
          ],
        }),
      ),
    );
    const api = await json<{
      repositories: { name: string; tags: number; size?: number; lastPush: string }[];
      sizesAt: string;
    }>(await r.request('/v2/_berth/v1/repositories?q=API'));
    expect(api.repositories.map((x) => [x.name, x.tags, x.size])).toEqual([
      ['alpha/api', 2, 12345],
      ['beta/api', 1, undefined],
    ]);
    expect(api.sizesAt).toBe('2024-06-01T00:00:00.000Z');
    const page = await r.request('/v2/_berth/v1/repositories?n=3');
    expect(page.headers.get('Link')).toBe('</v2/_berth/v1/repositories?n=3&last=beta%2Fapi>; rel="next"');
    const rest = await json<{ repositories: { name: string }[]; next?: string }>(
      await r.request('/v2/_berth/v1/repositories?n=3&last=beta/api'),
    );
    expect(rest.repositories.map((x) => x.name)).toEqual(['gamma/db']);
    expect(rest.next).toBeUndefined();
  });
});

describe('with authentication', () => {
  let dir: string;
  let r: TestRegistry;
  let robotSecret: string;
  const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  const tokenFor = async (scopes: string[], user?: [string, string]) => {
    const query = scopes.map((s) => `scope=${encodeURIComponent(s)}`).join('&');
    const res = await r.request(`/token?${query}`, {
      headers: user ? { Authorization: basic(...user) } : {},
    });
    return { Authorization: `Bearer ${((await res.json()) as { token: string }).token}` };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-browse-'));
    const file = join(dir, 'auth.json');
    await addUser(file, 'admin', 'admin-password', ['*:pull,push,delete', 'registry:catalog:*']);
    await addUser(file, 'reader', 'reader-password', ['team/*:pull']);
    await setAnonymousPull(file, ['public/*']);
    robotSecret = (await createRobot(file, 'ci', ['team/*:pull'], 3600)).secret;
    const auth = await loadAuth(new FileAuthStore(file), 300, createLogger('silent'));
    r = testRegistry({ auth, browse: { name: 'payments', expiresAt: '2031-01-01T00:00:00.000Z' } });
    const admin = await tokenFor(
      ['repository:team/app:pull,push', 'repository:public/tool:pull,push', 'repository:secret/x:pull,push'],
      ['admin', 'admin-password'],
    );
    for (const name of ['team/app', 'public/tool', 'secret/x']) {
      const config = new TextEncoder().encode('{}');
      await r.request(`/v2/${name}/blobs/uploads/?digest=${sha256(config)}`, {
        method: 'POST',
        headers: { ...admin, 'Content-Length': '2' },
        body: config,
      });
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: 2 },
        layers: [],
      });
      const put = await r.request(`/v2/${name}/manifests/v1`, {
        method: 'PUT',
        headers: { ...admin, 'Content-Type': OCI_MANIFEST },
        body: manifest,
      });
      expect(put.status).toBe(201);
    }
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('lists only what the account may pull, and says what it may do in a repository', async () => {
    const reader = await tokenFor(['repository:team/app:pull'], ['reader', 'reader-password']);
    const list = await json<{ repositories: { name: string }[] }>(
      await r.request('/v2/_berth/v1/repositories', { headers: reader }),
    );
    expect(list.repositories.map((x) => x.name)).toEqual(['team/app']);
    const summary = await json<{ access: string[]; tags: number }>(
      await r.request('/v2/team/app/_berth/v1/summary', { headers: reader }),
    );
    expect(summary).toMatchObject({ access: ['pull'], tags: 1 });
    const denied = await r.request('/v2/secret/x/_berth/v1/tags', {
      headers: await tokenFor(['repository:secret/x:pull'], ['reader', 'reader-password']),
    });
    expect(denied.status).toBe(403);
    expect(await errorCode(denied)).toBe('DENIED');
  });

  it("gives the web UI's sign-in a refresh token for 8 hours, not docker's 30 days", async () => {
    const lifetime = async (clientId?: string) => {
      const form = new URLSearchParams({
        grant_type: 'password',
        username: 'reader',
        password: 'reader-password',
        access_type: 'offline',
        ...(clientId && { client_id: clientId }),
      });
      const res = await r.request('/token', { method: 'POST', body: form });
      const { refresh_token } = await json<{ refresh_token: string }>(res);
      const claims = JSON.parse(Buffer.from(refresh_token.split('.')[1]!, 'base64url').toString()) as {
        exp: number;
        iat: number;
      };
      return claims.exp - claims.iat;
    };
    expect(await lifetime('berth-ui')).toBe(8 * 3600);
    expect(await lifetime('docker')).toBe(30 * 86400);
  });

  it('signs a robot in with its secret, as the web UI does, and shows it what it may pull', async () => {
    const form = new URLSearchParams({
      grant_type: 'password',
      username: 'ci',
      password: robotSecret,
      access_type: 'offline',
      client_id: 'berth-ui',
      scope: 'registry:catalog:*',
    });
    const { token } = await json<{ token: string }>(
      await r.request('/token', { method: 'POST', body: form }),
    );
    const info = await json<{ account: string; admin: boolean }>(
      await r.request('/v2/_berth/v1/info', { headers: { Authorization: `Bearer ${token}` } }),
    );
    expect(info).toMatchObject({ account: 'ci', admin: false });
    const list = await json<{ repositories: { name: string }[] }>(
      await r.request('/v2/_berth/v1/repositories', { headers: { Authorization: `Bearer ${token}` } }),
    );
    expect(list.repositories.map((x) => x.name)).toEqual(['team/app']);
  });

  it('lets anonymous callers browse what anonymous users may pull, and nothing else', async () => {
    const anonymous = await tokenFor(['repository:public/tool:pull']);
    const list = await json<{ repositories: { name: string }[] }>(
      await r.request('/v2/_berth/v1/repositories', { headers: anonymous }),
    );
    expect(list.repositories.map((x) => x.name)).toEqual(['public/tool']);
    expect((await r.request('/v2/public/tool/_berth/v1/tags', { headers: anonymous })).status).toBe(200);
    const refused = await r.request('/v2/team/app/_berth/v1/tags', {
      headers: await tokenFor(['repository:team/app:pull']),
    });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('WWW-Authenticate')).toContain('scope="repository:team/app:pull"');
    expect((await r.request('/v2/_berth/v1/info')).status).toBe(401);
  });

  it('shows operations (version, storage, last GC run) only to accounts with registry:catalog:*', async () => {
    await r.storage.put(
      GC_KEYS.lastRun,
      new TextEncoder().encode(
        JSON.stringify({
          runId: 'r1',
          startedAt: '2024-06-01T00:00:00.000Z',
          finishedAt: '2024-06-01T00:01:00.000Z',
          deleted: { blob: 3 },
          bytesFreed: 4096,
          restored: 0,
        }),
      ),
    );
    const admin = await json<{
      name: string;
      expiresAt: string;
      admin: boolean;
      account: string;
      operations: { storage: string; version: string; lastGc: { bytesFreed: number } };
    }>(
      await r.request('/v2/_berth/v1/info', {
        headers: await tokenFor(['registry:catalog:*'], ['admin', 'admin-password']),
      }),
    );
    expect(admin).toMatchObject({
      name: 'payments',
      expiresAt: '2031-01-01T00:00:00.000Z',
      admin: true,
      account: 'admin',
    });
    expect(admin.operations).toMatchObject({ storage: 'memory', lastGc: { bytesFreed: 4096 } });
    expect(admin.operations.version).toMatch(/^\d+\.\d+\.\d+/);
    const reader = await json<{ admin: boolean; operations?: unknown; account: string }>(
      await r.request('/v2/_berth/v1/info', {
        headers: await tokenFor(['registry:catalog:*'], ['reader', 'reader-password']),
      }),
    );
    expect(reader).toMatchObject({ admin: false, account: 'reader' });
    expect(reader.operations).toBeUndefined();
  });
});
