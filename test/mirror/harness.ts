import { Browse } from '../../lib/browse/browse.ts';
import { createApp } from '../../lib/http/app.ts';
import { createLogger, type Logger } from '../../lib/logging/logger.ts';
import { Mirror } from '../../lib/mirror/mirror.ts';
import { parseUpstreams } from '../../lib/mirror/spec.ts';
import { UpstreamClient, type UpstreamCredentials } from '../../lib/mirror/upstream.ts';
import { InMemoryHashStates, SerializedHashStates } from '../../lib/registry/hashing.ts';
import { Registry } from '../../lib/registry/registry.ts';
import type { StorageDriver } from '../../lib/storage/port.ts';
import { testRegistry, type TestRegistry } from '../http/harness.ts';

export const UPSTREAM = 'https://upstream.test';

export interface FakeUpstream {
  /** The registry behind the fake: push images into it with test/http/harness.ts helpers. */
  readonly registry: TestRegistry;
  /** Every request that reached it (token requests included), as "METHOD /path". */
  readonly requests: string[];
  /** The requests it answered past authentication (what a client would be billed for). */
  readonly served: string[];
  /** Refuse connections, as a host that is down does. */
  down: boolean;
  /** Serve these bytes instead of the real ones for blob GETs (a malicious or broken upstream). */
  tamper: boolean;
  /** Answer blob GETs with a redirect to this origin (as Docker Hub does to its CDN). */
  cdn: boolean;
  /** Hold blob GET bodies until this resolves (to make misses overlap). */
  gate?: Promise<void>;
  readonly fetch: typeof fetch;
}

/**
 * An upstream registry in-process: a Berth (memory store) behind Docker token auth as Docker Hub
 * speaks it (401 with a Bearer challenge, then a token from the realm), reached through the fetch
 * the mirror is given. With `credentials`, the realm wants them as Basic auth.
 */
export function fakeUpstream(credentials?: UpstreamCredentials): FakeUpstream {
  const registry = testRegistry();
  const requests: string[] = [];
  const served: string[] = [];
  const fake: FakeUpstream = {
    registry,
    requests,
    served,
    down: false,
    tamper: false,
    cdn: false,
    fetch: async (input, init) => {
      const url = new URL(String(input));
      const method = init?.method ?? 'GET';
      if (fake.down) throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
      requests.push(`${method} ${url.host}${url.pathname}`);
      const headers = new Headers(init?.headers);
      if (url.host === 'auth.test') {
        const expected = credentials
          ? `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`
          : undefined;
        if (expected && headers.get('Authorization') !== expected) return new Response('{}', { status: 401 });
        return Response.json({ token: `token-for ${url.searchParams.get('scope')}`, expires_in: 300 });
      }
      if (url.host === 'cdn.test') {
        return blobBody(await registry.request(url.pathname, { method }), fake, init?.signal);
      }
      const name = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(url.pathname)?.[1];
      if (headers.get('Authorization') !== `Bearer token-for repository:${name}:pull`) {
        return new Response('{"errors":[{"code":"UNAUTHORIZED"}]}', {
          status: 401,
          headers: {
            'WWW-Authenticate': `Bearer realm="https://auth.test/token",service="fake",scope="repository:${name}:pull"`,
          },
        });
      }
      served.push(`${method} ${url.host}${url.pathname}`);
      if (fake.cdn && method === 'GET' && url.pathname.includes('/blobs/')) {
        return new Response(null, { status: 307, headers: { Location: `https://cdn.test${url.pathname}` } });
      }
      const res = await registry.request(url.pathname, { method, headers });
      return url.pathname.includes('/blobs/') && method === 'GET' ? blobBody(res, fake, init?.signal) : res;
    },
  };
  return fake;
}

/** The blob's bytes, tampered with or held back as the fake is told; an abort fails the body, as fetch's does. */
async function blobBody(
  res: Response,
  fake: FakeUpstream,
  signal: AbortSignal | null | undefined,
): Promise<Response> {
  if (res.status !== 200 || (!fake.tamper && !fake.gate)) return res;
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (fake.tamper) bytes[0] = bytes[0]! ^ 0xff;
  const gate = fake.gate;
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      signal?.addEventListener('abort', () => controller.error(signal.reason), { once: true });
      controller.enqueue(bytes.slice(0, 1));
      await gate;
      if (signal?.aborted) return;
      controller.enqueue(bytes.slice(1));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: res.headers });
}

export interface MirrorTestOptions {
  readonly storage: StorageDriver;
  readonly upstream: FakeUpstream;
  /** `[prefix=]` part of the upstream spec, e.g. 'hub=' (default: the catch-all). */
  readonly prefix?: string;
  readonly dockerHub?: boolean;
  readonly credentials?: UpstreamCredentials;
  readonly mode?: 'stream' | 'fill';
  readonly redirect?: boolean;
  readonly tagTtlMs?: number;
  readonly fillTimeoutMs?: number;
  readonly now?: () => number;
  /** Where the registry and the mirror log; absent, nowhere. */
  readonly logger?: Logger;
}

/** Berth with a pull-through cache of the fake upstream, requests served in-process. */
export function mirrorRegistry(options: MirrorTestOptions): TestRegistry & { mirror: Mirror } {
  const partSize = 5 * 1024 * 1024;
  const registry = new Registry({
    storage: options.storage,
    hashes: options.mode === 'fill' ? new SerializedHashStates() : new InMemoryHashStates(),
    limits: { maxBlobSize: 1024 * 1024 * 1024, partSize, leaseMs: 60_000 },
    mountWithoutFrom: false,
  });
  const logger = options.logger ?? createLogger('silent');
  const [spec] = parseUpstreams(`${options.prefix ?? ''}${UPSTREAM}`);
  const client = new UpstreamClient(
    { ...spec!, dockerHub: options.dockerHub ?? false },
    async () => options.credentials,
    logger,
    options.upstream.fetch,
    options.now,
  );
  const mirror = new Mirror({
    registry,
    upstreams: [client],
    tagTtlMs: options.tagTtlMs ?? 60_000,
    mode: options.mode ?? 'stream',
    fillTimeoutMs: options.fillTimeoutMs ?? 20_000,
    maxBlobSize: 1024 * 1024 * 1024,
    partSize,
    logger,
    now: options.now,
  });
  const app = createApp({
    registry,
    logger,
    mirror,
    redirect: { enabled: options.redirect ?? false, ttlSeconds: 900 },
    browse: new Browse({ registry, storage: options.storage }),
  });
  return {
    storage: options.storage,
    registry,
    mirror,
    request: async (path, init) =>
      app.request(`http://registry.test${path}`, init, { incoming: { url: path } }),
  };
}
