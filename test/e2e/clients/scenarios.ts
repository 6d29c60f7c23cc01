// The scenarios of issue #3, as vitest suites that run against any RegistryTarget. A test file calls
// registerClientScenarios() with a function that starts (or connects to) the registry; the Lambda,
// S3 and auth issues add their own test files with their own targets and reuse everything here.
//
// Every test asserts what a user would notice: the digest a client pushed is the digest the
// registry serves (crane digest) and the digest another client pulls; pulls fail cleanly after a
// delete; a second push uploads nothing. After each test the registry's log (when readable) must
// show no 5xx answer, and the requests of each test are written to <workDir>/requests/.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { CLIENTS, ClientEnv, layoutImage, type ClientName, type LocalImage } from './harness/clients.ts';
import {
  emptyLayer,
  MT,
  randomLayer,
  sha256,
  smallLayer,
  verifyDirCopy,
  verifyLayout,
} from './harness/images.ts';
import {
  CommandError,
  note,
  reapLeftovers,
  setTranscript,
  sleep,
  type RunOptions,
  type RunResult,
} from './harness/proc.ts';
import { RegistryProxy } from './harness/proxy.ts';
import type { RegistryTarget } from './harness/registry.ts';
import {
  formatRequests,
  inRepo,
  serverErrors,
  summarizeUploads,
  type LoggedRequest,
  type UploadSummary,
} from './harness/requestlog.ts';

export interface ScenarioOptions {
  /** Shown in the suite name and the report, e.g. 'berth (npm start)'. */
  name: string;
  /** Starts or connects to the registry; called once, with a fresh work dir. */
  target: (workDir: string) => Promise<RegistryTarget>;
  /** Leave out the slow scenarios (64 MiB image, interruptions), e.g. for a remote target. */
  quick?: boolean;
  /**
   * The most blob bytes one request may carry, when the path to the registry has such a limit
   * (through Lambda: about 4.4 MB). Clients send a layer as one request body, so scenarios with a
   * bigger layer assert that the push fails with `refused` and leaves nothing visible instead.
   */
  maxRequestBody?: RequestBodyLimit;
}

export interface RequestBodyLimit {
  bytes: number;
  /** Shown in test names, e.g. 'the Lambda request limit'. */
  name: string;
  /** What a client's failure must show, whoever refused (a gateway's 413 or the registry). */
  refused: RegExp;
  /**
   * A layer size just above `bytes` that reaches the registry and is refused by it, and the
   * message the registry's error carries (naming the fix) in the clients that print it.
   */
  justAbove?: { size: number; message: RegExp };
  /** Clients that, refused, upload the layer again in chunks below the limit: their pushes succeed. */
  chunked?: readonly ClientName[];
}

/** Clients that report a refused upload by its status only, without the registry's error message. */
const STATUS_ONLY: readonly ClientName[] = ['ctr'];

/**
 * The most requests a refused push may make: docker tries a layer 5 times (about 50 s of back-off)
 * when the error code is not one it knows to be final; podman and buildah 4 times.
 */
const MAX_REFUSED_ATTEMPTS = 5;

interface Ctx {
  target: RegistryTarget;
  c: ClientEnv;
  workDir: string;
}

const MiB = 1024 * 1024;

const MB = (n: number) => `${(n / 1e6).toFixed(n < 10e6 ? 2 : 0)} MB`;

function errorText(e: unknown): string {
  if (e instanceof CommandError) return e.result.stderr + e.result.stdout;
  return e instanceof Error ? e.message : String(e);
}

/** Runs fn, which must fail; returns the failure's text. */
async function mustFail(what: string, fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return errorText(e);
  }
  throw new Error(`${what} succeeded but should have failed`);
}

/** What a clean "not found" looks like in each client's words. */
const NOT_FOUND = /manifest unknown|not found|MANIFEST_UNKNOWN|NAME_UNKNOWN|404/i;

export function registerClientScenarios(opts: ScenarioOptions): void {
  const ctx = {} as Ctx;
  let mark = 0;
  let requestsDir = '';
  /** Log position up to which 5xx answers to upload requests are expected (a client was killed mid-upload). */
  let abortedUploadsUntil = 0;

  const clientsOr = (t: TestContext, ...tools: Parameters<ClientEnv['skipReason']>) => {
    const why = ctx.c.skipReason(...tools);
    if (why) t.skip(why);
  };

  const needLog = (t: TestContext) => {
    if (!ctx.target.requests) t.skip("the registry's request log is not readable here (set BERTH_E2E_LOG)");
    return ctx.target.requests!;
  };

  /** Requests since the start of the current test. */
  const requestsSinceTestStart = async (): Promise<LoggedRequest[]> =>
    ctx.target.requests ? ctx.target.requests.since(mark) : [];

  const requestsDuring = async <T>(
    fn: () => Promise<T>,
  ): Promise<{ value: T; requests: LoggedRequest[] }> => {
    const log = ctx.target.requests!;
    const m = log.mark();
    const value = await fn();
    return { value, requests: await log.since(m) };
  };

  // Repositories are named per run, so that runs against a long-lived registry (BERTH_E2E_URL) do
  // not see each other's blobs (which would turn uploads into no-ops and mounts into skips).
  const runId = randomBytes(4).toString('hex');
  const repo = (name: string) => `${process.env.BERTH_E2E_REPO_PREFIX ?? 'e2e'}/${runId}/${name}`;

  async function expectRegistryDigest(ref: string, expected: string, what: string): Promise<void> {
    const served = await ctx.c.craneDigest(ref);
    expect(served, `${what}: registry serves ${served} for ${ref}, pushed ${expected}`).toBe(expected);
  }

  async function manifestOf(ref: string): Promise<{
    mediaType?: string;
    config?: { digest: string };
    layers?: { digest: string; size: number }[];
    manifests?: { digest: string; platform?: { architecture: string; os: string } }[];
  }> {
    const r = await ctx.c.crane(['manifest', '--insecure', ref]);
    return JSON.parse(r.stdout) as Awaited<ReturnType<typeof manifestOf>>;
  }

  /** A raw request to the registry (the target's own auth headers, else Basic credentials if any). */
  async function http(method: string, p: string, headers: Record<string, string> = {}): Promise<Response> {
    const creds = ctx.target.credentials;
    const all: Record<string, string> = { ...headers };
    if (ctx.target.authHeaders) {
      Object.assign(all, await ctx.target.authHeaders(p));
    } else if (creds) {
      all.authorization = 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
    }
    const res = await fetch(`${ctx.target.url}${p}`, { method, headers: all, redirect: 'manual' });
    const bearer = res.status === 401 && creds ? await bearerFor(res, creds) : undefined;
    if (!bearer) return res;
    return fetch(`${ctx.target.url}${p}`, {
      method,
      headers: { ...headers, authorization: bearer },
      redirect: 'manual',
    });
  }

  /** The Docker token dance a client does on a Bearer challenge: the realm, with Basic credentials. */
  async function bearerFor(
    res: Response,
    creds: { username: string; password: string },
  ): Promise<string | undefined> {
    const challenge = /^Bearer\s+(.*)$/i.exec(res.headers.get('www-authenticate') ?? '')?.[1];
    if (!challenge) return undefined;
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (!params.realm) return undefined;
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    if (params.scope) url.searchParams.set('scope', params.scope);
    const basic = 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
    const token = await fetch(url, { headers: { authorization: basic } });
    if (!token.ok) return undefined;
    return `Bearer ${((await token.json()) as { token: string }).token}`;
  }

  const limit = opts.maxRequestBody;
  const overLimit = (bytes: number) => limit !== undefined && bytes > limit.bytes;

  /**
   * A push of a layer above the request limit. A client that sends the layer as one request must
   * fail with the refusal (no hang, no 5xx: the afterEach checks the log; few attempts), and neither
   * the big blob nor the tag becomes visible. A client that falls back to chunks (`limit.chunked`)
   * must push it complete. Returns the client's output when it failed.
   */
  async function pushOverLimit(
    t: TestContext,
    client: ClientName,
    push: () => Promise<{ digest: string }>,
    where: { repo: string; tag: string; blob: string; size: number },
  ): Promise<string | undefined> {
    const started = Date.now();
    if (limit!.chunked?.includes(client)) {
      const { digest } = await push();
      await expectRegistryDigest(`${ctx.target.host}/${where.repo}:${where.tag}`, digest, `${client} push`);
      const head = await http('HEAD', `/v2/${where.repo}/blobs/${where.blob}`);
      expect(head.status, 'the big blob after the push').toBe(200);
      expect(Number(head.headers.get('content-length'))).toBe(where.size);
      const patches = (await requestsSinceTestStart()).filter((q) => q.method === 'PATCH').length;
      t.annotate(`${client} was refused, then pushed the layer in chunks (${patches} PATCH requests)`);
      return undefined;
    }
    const text = await mustFail(`${client} push of a layer above ${limit!.name}`, push);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    expect(text, `${client} failed, but not with the refusal:\n${text}`).toMatch(limit!.refused);
    expect((await http('HEAD', `/v2/${where.repo}/blobs/${where.blob}`)).status, 'refused blob').toBe(404);
    expect((await http('HEAD', `/v2/${where.repo}/manifests/${where.tag}`)).status, 'tag').toBe(404);
    const refusals = (await requestsSinceTestStart()).filter((q) => q.status === 413).length;
    expect(refusals, `${client} kept retrying the refused upload`).toBeLessThanOrEqual(MAX_REFUSED_ATTEMPTS);
    const line = text.split('\n').find((l) => limit!.refused.test(l)) ?? '';
    t.annotate(
      `${client} failed after ${seconds} s, ${refusals} request(s) refused: ${line.trim().slice(0, 300)}`,
    );
    return text;
  }

  describe(`real clients against ${opts.name}`, () => {
    beforeAll(async () => {
      await reapLeftovers();
      const base = process.env.BERTH_E2E_WORKDIR ?? os.tmpdir();
      mkdirSync(base, { recursive: true });
      // Lower case only: podman/buildah name images pulled from oci:<path> after the path.
      ctx.workDir = path.join(base, `berth-e2e-${runId}`);
      mkdirSync(ctx.workDir);
      setTranscript(path.join(ctx.workDir, 'commands.log'));
      requestsDir = path.join(ctx.workDir, 'requests');
      mkdirSync(requestsDir, { recursive: true });
      ctx.target = await opts.target(ctx.workDir);
      if (process.env.BERTH_E2E_RECORD === '1') ctx.target = await recorded(ctx.target, ctx.workDir);
      try {
        ctx.c = await ClientEnv.start(ctx.target, ctx.workDir);
      } catch (e) {
        await ctx.target.stop();
        throw e;
      }
      console.log(
        `[e2e] ${opts.name}: registry ${ctx.target.url}, work dir ${ctx.workDir}` +
          (ctx.target.requests ? `, request log ${ctx.target.requests.file}` : ', no request log'),
      );
    }, 300_000);

    afterAll(async () => {
      await ctx.c?.stop();
      await ctx.target?.stop();
      setTranscript(undefined);
      if (ctx.workDir && process.env.BERTH_E2E_KEEP !== '1') {
        rmSync(ctx.workDir, { recursive: true, force: true });
      } else if (ctx.workDir) {
        console.log(`[e2e] kept ${ctx.workDir}`);
      }
    }, 120_000);

    beforeEach((t) => {
      mark = ctx.target?.requests?.mark() ?? 0;
      abortedUploadsUntil = 0;
      note(`\n=== ${t.task.name}`);
    });

    afterEach(async (t) => {
      if (!ctx.target?.requests) return;
      const reqs = await requestsSinceTestStart();
      const file = t.task.name.replace(/[^\w.-]+/g, '_').slice(0, 120);
      writeFileSync(path.join(requestsDir, `${file}.txt`), formatRequests(reqs, 100_000) + '\n');
      const aborted = (r: LoggedRequest, i: number) =>
        mark + i < abortedUploadsUntil &&
        /\/blobs\/uploads\//.test(r.path) &&
        ['PATCH', 'PUT'].includes(r.method);
      const errors = serverErrors(reqs.filter((r, i) => !aborted(r, i)));
      expect(errors, `the registry answered 5xx during this test:\n${formatRequests(errors)}`).toEqual([]);
    });

    it('environment: clients and versions', (t) => {
      const versions = Object.fromEntries(ctx.c.versions);
      const unavailable = Object.fromEntries(ctx.c.unavailable);
      Object.assign(t.task.meta, { versions, unavailable });
      console.log(
        '[e2e] client versions:',
        JSON.stringify(versions),
        'unavailable:',
        JSON.stringify(unavailable),
      );
      // A missing client fails here (so CI cannot go green by skipping), unless allowed explicitly;
      // the tests that need it are skipped with the reason either way.
      if (ctx.c.unavailable.size && process.env.BERTH_E2E_ALLOW_MISSING === '1') {
        t.skip(`missing clients allowed: ${JSON.stringify(unavailable)}`);
      }
      expect(ctx.c.unavailable.size, `unavailable: ${JSON.stringify(unavailable)}`).toBe(0);
    });

    // ------------------------------------------------------------ matrix
    describe('push with one client, pull with every other', () => {
      const pushed = new Map<ClientName, { ref: string; digest: string; config: string }>();

      for (const pusher of CLIENTS) {
        it(`push with ${pusher}`, async (t) => {
          clientsOr(t, pusher, 'crane');
          const c = ctx.c;
          const ref = c.ref(repo(`matrix/${pusher}`), 'v1');
          const files = { [`${pusher}.txt`]: `pushed by ${pusher}\n` };
          let digest: string;
          if (pusher === 'docker') {
            digest = (await c.pushLocal('docker', await c.dockerBuild(ref, files), ref)).digest;
          } else if (pusher === 'podman') {
            digest = (
              await c.pushLocal('podman', await c.podmanBuild(`localhost/matrix-${pusher}`, files), ref)
            ).digest;
          } else if (pusher === 'buildah') {
            digest = (
              await c.pushLocal('buildah', await c.buildahScratch(`localhost/matrix-${pusher}`, files), ref)
            ).digest;
          } else {
            const img = layoutImage(c.dir('layout'), { layers: [smallLayer(`matrix-${pusher}`)] });
            digest = (await c.push(pusher, img, ref)).digest;
            // These clients push a layout's manifest byte for byte.
            expect(digest, `${pusher} changed the manifest while pushing`).toBe(img.digest);
          }
          await expectRegistryDigest(ref, digest, `push with ${pusher}`);
          const m = await manifestOf(ref);
          pushed.set(pusher, { ref, digest, config: m.config!.digest });
        });
      }

      for (const pusher of CLIENTS) {
        for (const puller of CLIENTS) {
          if (puller === pusher) continue;
          it(`${pusher} -> ${puller}`, async (t) => {
            clientsOr(t, puller);
            const src = pushed.get(pusher);
            if (!src) t.skip(`the push with ${pusher} did not succeed`);
            const got = await ctx.c.pull(puller, src!.ref);
            expect(got.digest, `${puller} pulled ${got.digest}, ${pusher} pushed ${src!.digest}`).toBe(
              src!.digest,
            );
            if (got.configDigest) expect(got.configDigest, 'config (image ID) digest').toBe(src!.config);
            await expectRegistryDigest(src!.ref, src!.digest, 'after the pull');
          });
        }
      }
    });

    // ------------------------------------------------------------ single-layer and empty images
    describe('small and empty images', () => {
      it('single-layer image: crane push, docker pull by tag and by digest', async (t) => {
        clientsOr(t, 'crane', 'docker');
        const c = ctx.c;
        const img = layoutImage(c.dir('layout'), { layers: [smallLayer('single')] });
        const ref = c.ref(repo('single'), 'v1');
        const { digest } = await c.push('crane', img, ref);
        expect(digest).toBe(img.digest);
        const byTag = await c.pull('docker', ref);
        expect(byTag.digest).toBe(digest);
        expect(byTag.configDigest).toBe(img.configDigest);
        await c.forget('docker', ref);
        const byDigest = await c.pull('docker', c.ref(repo('single'), digest));
        expect(byDigest.digest).toBe(digest);
        expect(byDigest.configDigest).toBe(img.configDigest);
      });

      it('image whose only layer is an empty tarball (buildah from scratch, no files)', async (t) => {
        clientsOr(t, 'buildah', 'docker', 'ctr', 'skopeo', 'podman');
        const c = ctx.c;
        const ref = c.ref(repo('empty-layer'), 'v1');
        const local = await c.buildahScratch('localhost/empty-layer', {});
        const { digest } = await c.pushLocal('buildah', local, ref);
        const m = await manifestOf(ref);
        expect(m.layers?.length, 'buildah commits one empty layer').toBe(1);
        for (const puller of ['docker', 'ctr', 'skopeo', 'podman'] as const) {
          const got = await c.pull(puller, ref);
          expect(got.digest, `${puller} pull`).toBe(digest);
        }
      });

      it('image with no layers at all (OCI layout) and an empty-tar layer between two others', async (t) => {
        clientsOr(t, 'crane', 'skopeo', 'docker', 'podman', 'ctr', 'regctl');
        const c = ctx.c;
        const none = layoutImage(c.dir('layout'), { layers: [] });
        const noneRef = c.ref(repo('no-layers'), 'v1');
        expect((await c.push('crane', none, noneRef)).digest).toBe(none.digest);
        for (const puller of ['skopeo', 'regctl', 'ctr', 'podman'] as const) {
          const got = await c.pull(puller, noneRef);
          expect(got.digest, `${puller} pull`).toBe(none.digest);
        }
        const sandwich = layoutImage(c.dir('layout'), {
          layers: [smallLayer('below'), emptyLayer(), smallLayer('above')],
        });
        const sandwichRef = c.ref(repo('empty-between'), 'v1');
        expect((await c.push('skopeo', sandwich, sandwichRef)).digest).toBe(sandwich.digest);
        for (const puller of ['docker', 'podman', 'ctr', 'crane'] as const) {
          const got = await c.pull(puller, sandwichRef);
          expect(got.digest, `${puller} pull`).toBe(sandwich.digest);
        }
      });

      it('docker build FROM scratch with only a LABEL (no layers): docker push, pull elsewhere', async (t) => {
        clientsOr(t, 'docker', 'crane', 'podman');
        const c = ctx.c;
        const ref = c.ref(repo('docker-no-layers'), 'v1');
        await c.dockerBuild(ref, {}, ['LABEL berth.e2e=no-layers']);
        let digest: string;
        try {
          digest = (await c.pushLocal('docker', ref, ref)).digest;
        } catch (e) {
          // A skip rather than a failure when docker itself refuses before talking to the registry.
          const reqs = await requestsSinceTestStart();
          if (ctx.target.requests && !reqs.some((r) => r.path.includes(`/${repo('docker-no-layers')}/`))) {
            t.skip(
              `docker refuses to push an image without layers: ${errorText(e).trim().split('\n').pop()}`,
            );
          }
          throw e;
        }
        expect((await manifestOf(ref)).layers ?? []).toEqual([]);
        await expectRegistryDigest(ref, digest, 'docker push');
        expect((await c.pull('podman', ref)).digest).toBe(digest);
      });
    });

    // ------------------------------------------------------------ a layer just above the request limit
    if (limit?.justAbove) {
      describe(`a layer just above ${limit.name}`, () => {
        const size = limit.justAbove!.size;
        for (const client of CLIENTS) {
          const name = limit?.chunked?.includes(client)
            ? `${client} push of a ${MB(size)} layer: refused whole, then pushed in chunks`
            : `${client} push of a ${MB(size)} layer fails with the registry's error`;
          it(name, async (t) => {
            clientsOr(t, client, 'crane');
            const c = ctx.c;
            const r = repo(`limit/${client}`);
            // The tar adds a header block, padding and two end blocks to the file.
            const img = layoutImage(c.dir('layout'), {
              layers: [smallLayer(`limit-${client}`), randomLayer('big.bin', size - 2048)],
            });
            const ref = c.ref(r, 'v1');
            const big = img.layers[1]!;
            const text = await pushOverLimit(t, client, () => c.push(client, img, ref), {
              repo: r,
              tag: 'v1',
              blob: big,
              size: sizeOf(img, big),
            });
            if (text !== undefined && !STATUS_ONLY.includes(client)) {
              expect(text, "the registry's message naming the fix").toMatch(limit!.justAbove!.message);
            }
            await c.forget(client, ref);
          });
        }
      });
    }

    // ------------------------------------------------------------ big image
    describe.skipIf(opts.quick)('image with 22 layers, one of them 64 MiB of random bytes', () => {
      let big: LocalImage & { layers: string[] };
      const bigRef = () => ctx.c.ref(repo('big'), 'v1');

      let pushed = false;
      const refused = overLimit(64 * MiB);
      // Through a request limit the image still gets in with a client that pushes in chunks, so
      // that the pulls of a 64 MiB layer are tested there too.
      const chunker = refused ? limit!.chunked?.[0] : undefined;
      const pushName = refused
        ? `crane push of the layout is refused (the 64 MiB layer is above ${limit!.name})` +
          (chunker ? `; ${chunker} pushes it in chunks` : '')
        : 'crane push of the layout';

      const bigImage = () => {
        if (!big) {
          const layers: Buffer[] = [];
          for (let i = 0; i < 22; i++) {
            layers.push(
              i === 19 ? randomLayer('berth/random.bin', 64 * MiB) : smallLayer(`big-${i}`, 1 + (i % 3)),
            );
          }
          big = layoutImage(ctx.c.dir('layout'), { layers });
        }
        return big;
      };
      const bigLayer = () => ({
        blob: bigImage().layers[19]!,
        size: sizeOf(bigImage(), bigImage().layers[19]!),
      });

      // First, while no repository of the registry holds the layer that docker could mount.
      if (refused) {
        it(`docker push is refused (the 64 MiB layer is above ${limit?.name})`, async (t) => {
          clientsOr(t, 'docker');
          const c = ctx.c;
          const ref = c.ref(repo('big-docker-refused'), 'v1');
          await c.dockerLoad(bigImage(), ref);
          const where = { repo: repo('big-docker-refused'), tag: 'v1', ...bigLayer() };
          await pushOverLimit(t, 'docker', () => c.pushLocal('docker', ref, ref), where);
          await c.forget('docker', ref);
        });
      }

      it(pushName, async (t) => {
        clientsOr(t, 'crane');
        const img = bigImage();
        if (refused) {
          const where = { repo: repo('big'), tag: 'v1', ...bigLayer() };
          await pushOverLimit(t, 'crane', () => ctx.c.push('crane', img, bigRef()), where);
          if (!chunker) return;
          clientsOr(t, chunker);
        }
        const { digest } = await ctx.c.push(chunker ?? 'crane', img, bigRef());
        pushed = true;
        expect(digest).toBe(img.digest);
        const m = await manifestOf(bigRef());
        expect(m.layers?.map((l) => l.digest)).toEqual(img.layers);
        expect(Math.max(...m.layers!.map((l) => l.size))).toBeGreaterThan(64 * MiB);
      });

      for (const puller of ['docker', 'podman', 'skopeo', 'ctr', 'regctl'] as const) {
        it(`pull with ${puller}`, async (t) => {
          clientsOr(t, puller);
          if (refused && !chunker) t.skip(`the image cannot be pushed: a layer is above ${limit!.name}`);
          if (!pushed) t.skip('the push did not succeed');
          const got = await ctx.c.pull(puller, bigRef());
          expect(got.digest).toBe(big.digest);
          if (got.configDigest) expect(got.configDigest).toBe(big.configDigest);
          await ctx.c.forget(puller, bigRef());
        });
      }

      const dockerName = refused
        ? 'docker pull, then push into another repository (the 64 MiB layer is mounted, not sent), crane and buildah pull it'
        : 'docker push (docker recompresses: new digest), crane and buildah pull it';
      it(dockerName, async (t) => {
        clientsOr(t, 'docker', 'crane', 'buildah');
        if (!pushed) t.skip('the layout push did not succeed');
        const c = ctx.c;
        const ref = c.ref(repo('big-docker'), 'v1');
        // Through a request limit docker can only push the big layer by mounting it from where it
        // is, which it remembers from a pull.
        if (refused) await c.pull('docker', bigRef());
        else await c.dockerLoad(big, ref);
        const { value, requests } = ctx.target.requests
          ? await requestsDuring(() => c.pushLocal('docker', refused ? bigRef() : ref, ref))
          : { value: await c.pushLocal('docker', refused ? bigRef() : ref, ref), requests: [] };
        const { digest } = value;
        if (refused && ctx.target.requests) {
          const s = summarizeUploads(inRepo(requests, repo('big-docker')));
          expect(s.mountsDone, formatRequests(requests)).toBeGreaterThan(0);
        }
        await expectRegistryDigest(ref, digest, 'docker push');
        expect((await manifestOf(ref)).layers).toHaveLength(22);
        expect((await c.pull('crane', ref)).digest).toBe(digest);
        const got = await c.pull('buildah', ref);
        expect(got.digest).toBe(digest);
        await c.forget('buildah', ref);
        await c.forget('docker', ref);
        if (refused) await c.forget('docker', bigRef());
      });
    });

    // ------------------------------------------------------------ multi-platform
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
          const img = await c.buildahScratch(
            `localhost/multi-oci-${p.arch}`,
            { [`${p.arch}.txt`]: p.arch },
            p,
          );
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
        const inspected = await c.podman([
          'image',
          'inspect',
          '--format',
          '{{.Architecture}} {{.Digest}}',
          id,
        ]);
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

    // ------------------------------------------------------------ re-push
    describe('pushing the same image twice uploads no blob the second time', () => {
      for (const client of CLIENTS) {
        it(`${client} pushes twice`, async (t) => {
          clientsOr(t, client, 'crane');
          needLog(t);
          const c = ctx.c;
          const r = repo(`repush/${client}`);
          const ref = c.ref(r, 'v1');
          const img = layoutImage(c.dir('layout'), {
            layers: [smallLayer(`repush-${client}-a`), smallLayer(`repush-${client}-b`)],
          });
          const first = await c.push(client, img, ref);
          await expectRegistryDigest(ref, first.digest, 'first push');
          // docker, podman, buildah and ctr push the image now in their own store a second time.
          const again =
            client === 'docker' || client === 'podman' || client === 'buildah' || client === 'ctr'
              ? () => c.pushLocal(client, first.local!, ref)
              : () => c.push(client, img, ref);
          const { value, requests } = await requestsDuring(again);
          await expectRegistryDigest(ref, value.digest, 'second push');
          const s: UploadSummary = summarizeUploads(inRepo(requests, r));
          const seen = formatRequests(requests);
          expect(s.patches + s.completions, `second push uploaded blobs:\n${seen}`).toBe(0);
          expect(s.sessionsOpened, `second push opened upload sessions:\n${seen}`).toBe(0);
          const found = inRepo(requests, r).filter((q) => q.method === 'HEAD' && q.status === 200);
          expect(
            found.length,
            `second push never HEADed an existing blob or manifest:\n${seen}`,
          ).toBeGreaterThan(0);
          // crane, regctl and oras stop at the manifest HEAD; podman/buildah HEAD the uncompressed digest
          // first (404), then the compressed one (200).
          const putManifest = requests.some((q) => q.method === 'PUT' && q.path.includes('/manifests/'));
          t.annotate(`${s.blobHeads} blob HEADs; manifest ${putManifest ? 'PUT again' : 'not PUT again'}`);
          note(`re-push ${client}: ${JSON.stringify(s)}`);
        });
      }
    });

    // ------------------------------------------------------------ cross-repository mount
    describe('two images sharing layers pushed into different repositories', () => {
      const base = () => [smallLayer('shared-base-1', 3), smallLayer('shared-base-2', 3)];

      async function expectMounted(
        requests: LoggedRequest[],
        targetRepo: string,
        shared: number,
      ): Promise<UploadSummary> {
        const s = summarizeUploads(inRepo(requests, targetRepo));
        const seen = formatRequests(inRepo(requests, targetRepo));
        expect(
          s.mountsDone,
          `expected ${shared} mounted blobs in ${targetRepo}:\n${seen}`,
        ).toBeGreaterThanOrEqual(shared);
        return s;
      }

      it('docker mounts the shared layers from the first repository', async (t) => {
        clientsOr(t, 'docker');
        needLog(t);
        const c = ctx.c;
        const a = layoutImage(c.dir('layout'), { layers: base() });
        const b = layoutImage(c.dir('layout'), { layers: [...base(), smallLayer('docker-derived')] });
        const refA = c.ref(repo('mount/docker-a'), 'v1');
        const refB = c.ref(repo('mount/docker-b'), 'v1');
        await c.dockerLoad(a, refA);
        await c.dockerLoad(b, refB);
        await c.pushLocal('docker', refA, refA);
        const { value, requests } = await requestsDuring(() => c.pushLocal('docker', refB, refB));
        await expectRegistryDigest(refB, value.digest, 'docker push of the derived image');
        const s = await expectMounted(requests, repo('mount/docker-b'), 2);
        expect(s.completions, 'only the new layer and the config are uploaded').toBe(2);
        expect((await c.pull('crane', refB)).digest).toBe(value.digest);
      });

      it('podman mounts the shared layers (and cancels declined mounts with DELETE)', async (t) => {
        clientsOr(t, 'podman');
        needLog(t);
        const c = ctx.c;
        const a = layoutImage(c.dir('layout'), { layers: base() }, 'a');
        const b = layoutImage(c.dir('layout'), { layers: [...base(), smallLayer('podman-derived')] }, 'b');
        const refA = c.ref(repo('mount/podman-a'), 'v1');
        const refB = c.ref(repo('mount/podman-b'), 'v1');
        await c.push('podman', a, refA);
        const idB = (await c.podman(['pull', '-q', `oci:${b.layout}:${b.tag}`])).stdout
          .trim()
          .split('\n')
          .pop()!;
        const { value, requests } = await requestsDuring(() => c.pushLocal('podman', idB, refB));
        await expectRegistryDigest(refB, value.digest, 'podman push of the derived image');
        const s = await expectMounted(requests, repo('mount/podman-b'), 2);
        expect(s.sessionDeletes, 'a 201 mount leaves no session to delete').toBe(s.mountsDeclined);
        expect((await c.pull('skopeo', refB)).digest).toBe(value.digest);
      });

      it('crane append onto a base in another repository mounts its layers', async (t) => {
        clientsOr(t, 'crane');
        needLog(t);
        const c = ctx.c;
        const a = layoutImage(c.dir('layout'), { layers: base() });
        const refA = c.ref(repo('mount/crane-a'), 'v1');
        const refB = c.ref(repo('mount/crane-b'), 'v1');
        await c.push('crane', a, refA);
        const layerTar = path.join(c.dir('layer'), 'layer.tar');
        writeFileSync(layerTar, smallLayer('crane-derived'));
        const { value, requests } = await requestsDuring(() =>
          c.crane(['append', '--insecure', '-b', refA, '-f', layerTar, '-t', refB]),
        );
        const digest = /sha256:[a-f0-9]{64}/.exec(value.stdout)?.[0] ?? (await c.craneDigest(refB));
        await expectRegistryDigest(refB, digest, 'crane append');
        await expectMounted(requests, repo('mount/crane-b'), 2);
        expect((await c.pull('regctl', refB)).digest).toBe(digest);
      });

      for (const client of ['crane', 'regctl', 'oras', 'skopeo'] as const) {
        it(`${client} copies an image between two repositories of the registry`, async (t) => {
          clientsOr(t, client);
          needLog(t);
          const c = ctx.c;
          const a = layoutImage(c.dir('layout'), {
            layers: [smallLayer(`copy-${client}-1`), smallLayer(`copy-${client}-2`)],
          });
          const refA = c.ref(repo(`copy/${client}-a`), 'v1');
          const refB = c.ref(repo(`copy/${client}-b`), 'v1');
          await c.push('crane', a, refA);
          const copy: Record<typeof client, () => Promise<RunResult>> = {
            crane: () => c.crane(['copy', '--insecure', refA, refB]),
            regctl: () => c.regctl(['image', 'copy', refA, refB]),
            oras: () => c.oras(['cp', '--no-tty', '--from-plain-http', '--to-plain-http', refA, refB]),
            skopeo: () =>
              c.skopeo([
                'copy',
                '-q',
                '--src-tls-verify=false',
                '--dest-tls-verify=false',
                `docker://${refA}`,
                `docker://${refB}`,
              ]),
          };
          const { requests } = await requestsDuring(copy[client]);
          await expectRegistryDigest(refB, a.digest, `${client} copy`);
          const s = summarizeUploads(inRepo(requests, repo(`copy/${client}-b`)));
          note(`copy ${client}: ${JSON.stringify(s)}`);
          t.annotate(`mounts done ${s.mountsDone}, uploads ${s.completions}`);
          // Whatever the client chose, every blob arrived: mounted or uploaded, none skipped.
          expect(s.mountsDone + s.completions, formatRequests(requests)).toBeGreaterThanOrEqual(3);
        });
      }
    });

    // ------------------------------------------------------------ pulls, listing
    describe('pull paths and listings', () => {
      let digest = '';
      const r = repo('pulls/app');

      it('crane push + crane tag; docker pull by tag and by digest', async (t) => {
        clientsOr(t, 'crane', 'docker');
        const c = ctx.c;
        const img = layoutImage(c.dir('layout'), { layers: [smallLayer('pulls-app')] });
        digest = (await c.push('crane', img, c.ref(r, 'v1'))).digest;
        await c.crane(['tag', '--insecure', c.ref(r, 'v1'), 'v2']);
        await c.crane(['tag', '--insecure', c.ref(r, 'v1'), 'latest']);
        expect((await c.pull('docker', c.ref(r, 'v2'))).digest).toBe(digest);
        await c.forget('docker', c.ref(r, 'v2'));
        const byDigest = await c.pull('docker', c.ref(r, digest));
        expect(byDigest.digest).toBe(digest);
        const repoDigests = await c.docker([
          'image',
          'inspect',
          '--format',
          '{{json .RepoDigests}}',
          c.ref(r, digest),
        ]);
        expect(repoDigests.stdout).toContain(`${ctx.target.host}/${r}@${digest}`);
      });

      it('ctr images pull HEADs the tag, then GETs the manifest by digest', async (t) => {
        clientsOr(t, 'ctr');
        if (!digest) t.skip('the push did not succeed');
        const c = ctx.c;
        const { value, requests } = ctx.target.requests
          ? await requestsDuring(() => c.pull('ctr', c.ref(r, 'v2')))
          : { value: await c.pull('ctr', c.ref(r, 'v2')), requests: [] };
        expect(value.digest).toBe(digest);
        if (ctx.target.requests) {
          // With authentication the very first HEAD is challenged (401) and repeated with a token.
          const manifestRequests = inRepo(requests, r).filter(
            (q) => q.path.includes('/manifests/') && q.status !== 401,
          );
          expect(manifestRequests[0], formatRequests(requests)).toMatchObject({
            method: 'HEAD',
            path: `/v2/${r}/manifests/v2`,
            status: 200,
          });
          expect(
            manifestRequests.some((q) => q.method === 'GET' && q.path === `/v2/${r}/manifests/${digest}`),
          ).toBe(true);
        }
      });

      it('skopeo inspect shows the digest and the tags', async (t) => {
        clientsOr(t, 'skopeo');
        if (!digest) t.skip('the push did not succeed');
        const c = ctx.c;
        const out = await c.skopeo(['inspect', '--tls-verify=false', `docker://${c.ref(r, 'v1')}`]);
        const info = JSON.parse(out.stdout) as { Digest: string; RepoTags: string[] };
        expect(info.Digest).toBe(digest);
        expect([...info.RepoTags].sort()).toEqual(['latest', 'v1', 'v2']);
        const raw = await c.skopeo([
          'inspect',
          '--raw',
          '--tls-verify=false',
          `docker://${c.ref(r, digest)}`,
        ]);
        expect(sha256(raw.stdout)).toBe(digest);
      });

      it('crane ls, crane catalog, regctl tag ls, oras repo ls/tags', async (t) => {
        clientsOr(t, 'crane', 'regctl', 'oras');
        if (!digest) t.skip('the push did not succeed');
        const c = ctx.c;
        const lines = (s: string) =>
          s
            .split('\n')
            .map((l) => l.trim())
            .filter(Boolean);
        expect(lines((await c.crane(['ls', '--insecure', `${ctx.target.host}/${r}`])).stdout).sort()).toEqual(
          ['latest', 'v1', 'v2'],
        );
        expect(lines((await c.regctl(['tag', 'ls', `${ctx.target.host}/${r}`])).stdout).sort()).toEqual([
          'latest',
          'v1',
          'v2',
        ]);
        expect(
          lines((await c.oras(['repo', 'tags', '--plain-http', `${ctx.target.host}/${r}`])).stdout).sort(),
        ).toEqual(['latest', 'v1', 'v2']);
        const catalog = lines((await c.crane(['catalog', '--insecure', ctx.target.host])).stdout);
        expect(catalog).toContain(r);
        expect(catalog).toContain(repo('matrix/crane'));
        const orasCatalog = lines((await c.oras(['repo', 'ls', '--plain-http', ctx.target.host])).stdout);
        expect(orasCatalog).toContain(r);
      });
    });

    // ------------------------------------------------------------ deletes
    describe('deleting tags and manifests', () => {
      const r = repo('delete/app');
      let a = '';
      let b = '';

      async function expectPullFails(ref: string): Promise<void> {
        for (const client of ['docker', 'crane', 'skopeo', 'ctr'] as const) {
          if (ctx.c.skipReason(client)) continue;
          const text = await mustFail(`${client} pull ${ref}`, () => ctx.c.pull(client, ref));
          expect(text, `${client} pull of ${ref} should fail with not found`).toMatch(NOT_FOUND);
        }
      }

      it('setup: image A tagged a1 and a2, image B tagged b1', async (t) => {
        clientsOr(t, 'crane');
        const c = ctx.c;
        const imgA = layoutImage(c.dir('layout'), { layers: [smallLayer('delete-a')] });
        const imgB = layoutImage(c.dir('layout'), { layers: [smallLayer('delete-b')] });
        a = (await c.push('crane', imgA, c.ref(r, 'a1'))).digest;
        await c.crane(['tag', '--insecure', c.ref(r, 'a1'), 'a2']);
        b = (await c.push('crane', imgB, c.ref(r, 'b1'))).digest;
      });

      it('regctl tag rm a1: a1 is gone, a2 and the manifest stay', async (t) => {
        clientsOr(t, 'regctl', 'crane');
        if (!a) t.skip('setup failed');
        const c = ctx.c;
        await c.regctl(['tag', 'rm', c.ref(r, 'a1')]);
        const tags = (await c.crane(['ls', '--insecure', `${ctx.target.host}/${r}`])).stdout
          .split('\n')
          .filter(Boolean);
        expect(tags).not.toContain('a1');
        expect(tags).toContain('a2');
        expect(await c.craneDigest(c.ref(r, 'a2'))).toBe(a);
        expect(await c.craneDigest(c.ref(r, a))).toBe(a);
        await expectPullFails(c.ref(r, 'a1'));
      });

      it('crane delete B by digest: b1 and the digest no longer pull', async (t) => {
        clientsOr(t, 'crane');
        if (!b) t.skip('setup failed');
        const c = ctx.c;
        await c.crane(['delete', '--insecure', c.ref(r, b)]);
        await expectPullFails(c.ref(r, b));
        await expectPullFails(c.ref(r, 'b1'));
        const head = await http('HEAD', `/v2/${r}/manifests/${b}`);
        expect(head.status).toBe(404);
      });

      it('skopeo delete a2 (deletes manifest A): nothing of A pulls any more', async (t) => {
        clientsOr(t, 'skopeo', 'crane');
        if (!a) t.skip('setup failed');
        const c = ctx.c;
        await c.skopeo(['delete', '--tls-verify=false', `docker://${c.ref(r, 'a2')}`]);
        await expectPullFails(c.ref(r, 'a2'));
        await expectPullFails(c.ref(r, a));
        const text = await mustFail('skopeo inspect', () =>
          c.skopeo(['inspect', '--tls-verify=false', `docker://${c.ref(r, a)}`]),
        );
        expect(text).toMatch(NOT_FOUND);
      });
    });

    // ------------------------------------------------------------ artifacts and signatures
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
          const tags = (await c.crane(['ls', '--insecure', `${ctx.target.host}/${repo('art/image')}`]))
            .stdout;
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

    // ------------------------------------------------------------ interruptions
    describe.skipIf(opts.quick)('interrupted pulls and pushes', () => {
      const SIZE = 48 * MiB;
      const RATE = 12 * MiB;
      let proxy: RegistryProxy;

      beforeAll(async () => {
        proxy = await new RegistryProxy({ upstream: ctx.target.url, bytesPerSecond: RATE }).start();
        await ctx.c.useHost(proxy.host);
      });
      afterAll(async () => {
        await proxy?.close();
      });

      /** Runs `start` through the slow proxy and SIGKILLs the client once `bytes` have passed. */
      async function killMidway(
        direction: 'up' | 'down',
        bytes: number,
        start: (onSpawn: RunOptionsSpawn) => Promise<unknown>,
      ) {
        let pid: number | undefined;
        const running = start((child) => (pid = child.pid)).catch((e: unknown) => e);
        await proxy.waitForBytes(direction, bytes);
        if (pid === undefined) throw new Error('client pid unknown');
        process.kill(pid, 'SIGKILL');
        const outcome = await running;
        if (!(outcome instanceof CommandError) || outcome.result.signal !== 'SIGKILL') {
          throw new Error(`the client was not interrupted (it finished first?): ${errorText(outcome)}`);
        }
        await sleep(500);
      }

      let source: (LocalImage & { layers: string[] }) | undefined;
      const pullRef = () => ctx.c.ref(repo('interrupt/pull'), 'v1');

      for (const client of ['skopeo', 'crane', 'ctr', 'podman', 'regctl', 'docker'] as const) {
        // Skipped where blob GETs are redirected to S3: the bytes then go from the store straight to
        // the client, past this proxy, which cannot see them to kill the client half way.
        it.skipIf(blobsRedirected())(`${client} pull killed half way, then pulled again`, async (t) => {
          clientsOr(t, client, 'crane');
          if (overLimit(SIZE))
            t.skip(`the ${SIZE / MiB} MiB layer to pull cannot be pushed: above ${limit!.name}`);
          const c = ctx.c;
          if (!source) {
            source = layoutImage(c.dir('layout'), {
              layers: [smallLayer('interrupt-pull'), randomLayer('big.bin', SIZE)],
            });
            await c.push('crane', source, pullRef());
          }
          const viaProxy = c.ref(repo('interrupt/pull'), 'v1', proxy.host);
          await killMidway('down', SIZE / 2, (onSpawn) => c.pull(client, viaProxy, { onSpawn }));
          if (client === 'docker') {
            // The CLI is gone; dockerd notices the closed API connection and cancels the pull.
            await sleep(1_000);
          }
          const got = await c.pull(client, pullRef());
          expect(got.digest).toBe(source.digest);
          if (got.configDigest) expect(got.configDigest).toBe(source.configDigest);
          await c.forget(client, pullRef());
          await c.forget(client, viaProxy);
        });
      }

      for (const client of ['crane', 'skopeo', 'oras', 'regctl', 'podman', 'docker'] as const) {
        const name = !overLimit(SIZE)
          ? `${client} push killed half way leaves no partial blob, then pushes again`
          : limit!.chunked?.includes(client)
            ? `${client} push of a ${SIZE / MiB} MiB layer (above ${limit!.name}): refused whole, then pushed in chunks`
            : `${client} push of a ${SIZE / MiB} MiB layer is refused (above ${limit!.name}), leaves nothing visible`;
        it(name, async (t) => {
          clientsOr(t, client, 'crane');
          const c = ctx.c;
          const r = repo(`interrupt/push-${client}`);
          const img = layoutImage(c.dir('layout'), {
            layers: [smallLayer(`interrupt-${client}`), randomLayer('big.bin', SIZE)],
          });
          const bigLayer = img.layers[1]!;
          if (overLimit(SIZE)) {
            const ref = c.ref(r, 'v1');
            await pushOverLimit(t, client, () => c.push(client, img, ref), {
              repo: r,
              tag: 'v1',
              blob: bigLayer,
              size: sizeOf(img, bigLayer),
            });
            if (client === 'docker') await c.forget('docker', ref);
            return;
          }
          const viaProxy = c.ref(r, 'v1', proxy.host);
          // docker and podman get the image into their store first, so that only the upload is interrupted.
          let local = '';
          if (client === 'docker') local = await c.dockerLoad(img, viaProxy);
          if (client === 'podman') local = await c.loadLayout('podman', img);
          await killMidway('up', SIZE / 2, (onSpawn) =>
            client === 'docker' || client === 'podman'
              ? c.pushLocal(client, local, viaProxy, { onSpawn })
              : c.push(client, img, viaProxy, { onSpawn }),
          );
          if (client === 'docker') await sleep(1_000);
          if (ctx.target.requests) {
            const killed = await ctx.target.requests.since(mark);
            abortedUploadsUntil = mark + killed.length;
            const logged = killed.filter((q) => q.status >= 500 && /\/blobs\/uploads\//.test(q.path));
            if (logged.length) {
              t.annotate(
                `registry logged ${logged.map((q) => `${q.method} ${q.status}`).join(', ')} for the killed upload`,
              );
            }
          }
          // Nothing of the interrupted push is visible.
          const head = await http('HEAD', `/v2/${r}/blobs/${bigLayer}`);
          if (client !== 'docker')
            expect(head.status, 'partial blob visible after the killed push').toBe(404);
          else if (head.status === 200) t.annotate('dockerd finished the upload after its CLI was killed');
          const manifest = await http('HEAD', `/v2/${r}/manifests/v1`);
          if (client !== 'docker') expect(manifest.status).toBe(404);
          // Pushed again, directly: complete and intact.
          const ref = c.ref(r, 'v1');
          let digest: string;
          if (client === 'docker' || client === 'podman') {
            digest = (await c.pushLocal(client, local, ref)).digest;
          } else {
            digest = (await c.push(client, img, ref)).digest;
            expect(digest).toBe(img.digest);
          }
          await expectRegistryDigest(ref, digest, 'the second push');
          const m = await manifestOf(ref);
          for (const l of m.layers!) {
            const res = await http('HEAD', `/v2/${r}/blobs/${l.digest}`);
            expect(res.status).toBe(200);
            expect(Number(res.headers.get('content-length'))).toBe(l.size);
          }
          expect((await c.pull('skopeo', ref)).digest).toBe(digest);
        });
      }
    });
  });
}

type RunOptionsSpawn = NonNullable<RunOptions['onSpawn']>;

/**
 * BERTH_E2E_RECORD=1: the clients talk to the registry through a recording proxy, which writes every
 * request with its headers to <workDir>/http-record.jsonl (kept with BERTH_E2E_KEEP=1).
 */
async function recorded(target: RegistryTarget, workDir: string): Promise<RegistryTarget> {
  const recordFile = path.join(workDir, 'http-record.jsonl');
  const proxy = await new RegistryProxy({ upstream: target.url, recordFile }).start();
  console.log(`[e2e] recording requests with headers to ${recordFile}`);
  return {
    ...target,
    url: proxy.url,
    host: proxy.host,
    stop: async () => {
      await proxy.close();
      await target.stop();
    },
  };
}

/** The size of one of a layout image's blobs. */
function sizeOf(image: LocalImage, digest: string): number {
  return statSync(path.join(image.layout, 'blobs', ...digest.split(':'))).size;
}

/** Whether the registry under test answers blob GETs with redirects to presigned S3 URLs. */
function blobsRedirected(): boolean {
  return process.env.BERTH_STORAGE === 's3' && !/^(0|false|no|off)$/i.test(process.env.BERTH_REDIRECT ?? '');
}
