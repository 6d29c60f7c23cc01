// What the client scenarios share: the options a test file passes, the registry and clients under
// test, the request log's position per test, and the helpers that push, ask and check.
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import { expect, type TestContext } from 'vitest';
import { ClientEnv, type ClientName, type LocalImage } from '../harness/clients.ts';
import { CommandError, type RunOptions } from '../harness/proc.ts';
import type { RegistryTarget } from '../harness/registry.ts';
import type { LoggedRequest } from '../harness/requestlog.ts';

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
export const STATUS_ONLY: readonly ClientName[] = ['ctr'];

/**
 * The most requests a refused push may make: docker tries a layer 5 times (about 50 s of back-off)
 * when the error code is not one it knows to be final; podman and buildah 4 times.
 */
export const MAX_REFUSED_ATTEMPTS = 5;

/** The parts of a manifest or index the scenarios look at (crane manifest). */
export interface ManifestSummary {
  mediaType?: string;
  config?: { digest: string };
  layers?: { digest: string; size: number }[];
  manifests?: { digest: string; platform?: { architecture: string; os: string } }[];
}

export interface Ctx {
  target: RegistryTarget;
  c: ClientEnv;
  workDir: string;
}

export const MiB = 1024 * 1024;

export const MB = (n: number) => `${(n / 1e6).toFixed(n < 10e6 ? 2 : 0)} MB`;

export function errorText(e: unknown): string {
  if (e instanceof CommandError) return e.result.stderr + e.result.stdout;
  return e instanceof Error ? e.message : String(e);
}

/** Runs fn, which must fail; returns the failure's text. */
export async function mustFail(what: string, fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return errorText(e);
  }
  throw new Error(`${what} succeeded but should have failed`);
}

/** What a clean "not found" looks like in each client's words. */
export const NOT_FOUND = /manifest unknown|not found|MANIFEST_UNKNOWN|NAME_UNKNOWN|404/i;

/**
 * What every scenario shares: the registry and clients (`ctx`, set by the suite's beforeAll), the
 * per-test position in the registry's request log, and the helpers that read and check it.
 */
export interface Scenarios {
  readonly ctx: Ctx;
  readonly opts: ScenarioOptions;
  readonly limit: RequestBodyLimit | undefined;
  readonly overLimit: (bytes: number) => boolean;
  /** This run's id: repositories and the work dir are named after it. */
  readonly runId: string;
  readonly repo: (name: string) => string;
  readonly clientsOr: (t: TestContext, ...tools: Parameters<ClientEnv['skipReason']>) => void;
  readonly needLog: (t: TestContext) => NonNullable<RegistryTarget['requests']>;
  readonly requestsSinceTestStart: () => Promise<LoggedRequest[]>;
  readonly requestsDuring: <T>(fn: () => Promise<T>) => Promise<{ value: T; requests: LoggedRequest[] }>;
  readonly expectRegistryDigest: (ref: string, expected: string, what: string) => Promise<void>;
  readonly manifestOf: (ref: string) => Promise<ManifestSummary>;
  readonly http: (method: string, p: string, headers?: Record<string, string>) => Promise<Response>;
  readonly bearerFor: (
    res: Response,
    creds: { username: string; password: string },
  ) => Promise<string | undefined>;
  readonly pushOverLimit: (
    t: TestContext,
    client: ClientName,
    push: () => Promise<{ digest: string }>,
    where: { repo: string; tag: string; blob: string; size: number },
  ) => Promise<string | undefined>;
  /** The request log's position when the current test started. */
  mark: number;
  /** Where each test's requests are written (<workDir>/requests). */
  requestsDir: string;
  /** Log position up to which 5xx answers to upload requests are expected (a client was killed mid-upload). */
  abortedUploadsUntil: number;
}

export function scenarioContext(opts: ScenarioOptions): Scenarios {
  const ctx = {} as Ctx;

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
    ctx.target.requests ? ctx.target.requests.since(s.mark) : [];

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
    return JSON.parse(r.stdout) as ManifestSummary;
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

  const s: Scenarios = {
    ctx,
    opts,
    limit,
    overLimit,
    runId,
    repo,
    clientsOr,
    needLog,
    requestsSinceTestStart,
    requestsDuring,
    expectRegistryDigest,
    manifestOf,
    http,
    bearerFor,
    pushOverLimit,
    mark: 0,
    requestsDir: '',
    abortedUploadsUntil: 0,
  };
  return s;
}

export type RunOptionsSpawn = NonNullable<RunOptions['onSpawn']>;

/** The size of one of a layout image's blobs. */
export function sizeOf(image: LocalImage, digest: string): number {
  return statSync(path.join(image.layout, 'blobs', ...digest.split(':'))).size;
}

/** Whether the registry under test answers blob GETs with redirects to presigned S3 URLs. */
export function blobsRedirected(): boolean {
  return process.env.BERTH_STORAGE === 's3' && !/^(0|false|no|off)$/i.test(process.env.BERTH_REDIRECT ?? '');
}
