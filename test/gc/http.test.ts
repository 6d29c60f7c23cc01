import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context, ScheduledEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../lib/auth/admin.ts';
import { FileAuthStore } from '../../lib/auth/auth-store.ts';
import { parseImmutableTags, parseRetention } from '../../lib/registry/tag-policy.ts';
import { Usage } from '../../lib/registry/usage.ts';
import { createJanitorHandler } from '../../lib/lambda/janitor.ts';
import { createLambdaLogger } from '../../lib/lambda/logging.ts';
import { createLogger } from '../../lib/logging/logger.ts';
import { loadAuth } from '../../lib/setup/auth.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { errorCode, testRegistry } from '../http/harness.ts';
import {
  deleteManifest,
  gcDefaults,
  imageOf,
  pullAndVerify,
  push,
  putManifest,
  storedKeys,
} from './harness.ts';

describe('immutable tags', () => {
  const r = testRegistry({ immutableTags: parseImmutableTags('prod/*, team/app:v*') });

  it('refuses to move an immutable tag, says why and what to do, and accepts the same digest again', async () => {
    await push(r, 'prod/api', 'latest', imageOf(1));
    const moved = await putManifest(r, 'prod/api', 'latest', imageOf(2));
    expect(moved.status).toBe(400);
    const body = (await moved.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('TAG_INVALID');
    expect(body.errors[0]!.message).toContain('immutable');
    expect(body.errors[0]!.message).toContain('push this image under a new tag');
    expect((await putManifest(r, 'prod/api', 'latest', imageOf(1))).status).toBe(201);
    await pullAndVerify(r, 'prod/api', 'latest');
    const head = await r.request('/v2/prod/api/manifests/latest', { method: 'HEAD' });
    expect(head.headers.get('Docker-Content-Digest')).toBe(imageOf(1).digest);
  });

  it('applies tag patterns per repository pattern', async () => {
    await push(r, 'team/app', 'v1', imageOf(3));
    await push(r, 'team/app', 'dev', imageOf(3));
    expect(await errorCode(await putManifest(r, 'team/app', 'v1', imageOf(4)))).toBe('TAG_INVALID');
    await push(r, 'team/app', 'dev', imageOf(4));
    await push(r, 'other', 'v1', imageOf(3));
    await push(r, 'other', 'v1', imageOf(4));
  });

  it('refuses malformed rules with a message naming the form', () => {
    expect(() => parseImmutableTags('Prod:*')).toThrow(/<repository pattern>\[:<tag pattern>\]/);
    expect(() => parseRetention('[{"repositories":"a","keepLast":-1}]')).toThrow(/keepLast/);
    expect(() => parseRetention('{')).toThrow(/JSON/);
  });
});

describe('usage API', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-usage-'));
    file = join(dir, 'auth.json');
    await addUser(file, 'admin', 'admin-password', ['*:pull,push,delete', 'registry:catalog:*']);
    await addUser(file, 'alice', 'alice-password', ['*:pull,push']);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('serves the stored report to accounts with registry:catalog:* only', async () => {
    const storage = new MemoryDriver();
    const r = testRegistry({
      storage,
      auth: await loadAuth(new FileAuthStore(file), 300, createLogger('silent')),
    });
    const tokenFor = async (user: string, password: string) => {
      const res = await r.request('/token?service=berth&scope=registry:catalog:*', {
        headers: { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
      });
      return `Bearer ${((await res.json()) as { token: string }).token}`;
    };
    const admin = await tokenFor('admin', 'admin-password');
    const none = await r.request('/v2/_berth/v1/usage', { headers: { Authorization: admin } });
    expect(none.status).toBe(404);
    expect(await none.text()).toContain('berth usage --save');
    const usage = new Usage(storage);
    await usage.save(await usage.compute());
    const ok = await r.request('/v2/_berth/v1/usage', { headers: { Authorization: admin } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ totalBlobs: 0, repositories: [] });
    const alice = await r.request('/v2/_berth/v1/usage', {
      headers: { Authorization: await tokenFor('alice', 'alice-password') },
    });
    expect(alice.status).toBe(403);
    const anonymous = await r.request('/v2/_berth/v1/usage');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('WWW-Authenticate')).toContain('scope="registry:catalog:*"');
  });
});

describe('janitor', () => {
  it('collects across invocations that run out of time, and logs each step', async () => {
    const r = testRegistry({ storage: new MemoryDriver() });
    for (let i = 0; i < 3; i++) {
      await push(r, `repo-${i}`, 'v1', imageOf(20 + i));
      await deleteManifest(r, `repo-${i}`, imageOf(20 + i).digest);
    }
    await push(r, 'kept', 'v1', imageOf(30));
    const lines: string[] = [];
    const { remainingMs: _r, sleep: _s, ...options } = gcDefaults;
    const janitor = createJanitorHandler(
      r,
      3600,
      createLambdaLogger('info', (l) => lines.push(l)),
      options,
    );
    const statuses: string[] = [];
    for (let i = 0; i < 50 && statuses.at(-1) !== 'done'; i++) {
      let checks = 4 + i;
      // A Lambda invocation that times out after a few steps: getRemainingTimeInMillis reaches zero.
      const context = {
        awsRequestId: `req-${i}`,
        getRemainingTimeInMillis: () => (checks-- > 0 ? 600_000 : 0),
      };
      const summary = await janitor({ id: `evt-${i}` } as ScheduledEvent, context as unknown as Context);
      statuses.push(summary.gc!.status);
    }
    expect(statuses).toContain('paused');
    expect(statuses.at(-1)).toBe('done');
    expect(
      lines.map((l) => JSON.parse(l) as { msg: string }).filter((l) => l.msg === 'janitor finished'),
    ).toHaveLength(statuses.length);
    expect((await storedKeys(r.storage, 'blobs/')).length).toBe(imageOf(30).blobs.length);
    await pullAndVerify(r, 'kept', 'v1');
  });

  it('starts a new collection only once the interval has passed, so an idle registry pays for no listings', async () => {
    // One clock for the janitor and the store's timestamps, controlled here and started from the
    // real time only so that nothing else (token lifetimes, logs) sees a strange date.
    let clock = Date.now();
    const storage = new MemoryDriver({ clock: () => clock });
    const r = testRegistry({ storage });
    const { remainingMs: _r, sleep: _s, ...options } = gcDefaults;
    const janitor = createJanitorHandler(r, 3600, createLambdaLogger('silent'), {
      ...options,
      now: () => clock,
      intervalMs: 24 * 3600_000,
    });
    const invoke = async (i: number) =>
      (
        await janitor(
          { id: `evt-${i}` } as ScheduledEvent,
          { awsRequestId: `req-${i}`, getRemainingTimeInMillis: () => 600_000 } as unknown as Context,
        )
      ).gc!.status;
    expect(await invoke(1)).toBe('done');
    await push(r, 'repo', 'v1', imageOf(40));
    await deleteManifest(r, 'repo', imageOf(40).digest);
    clock += 3600_000;
    expect(await invoke(2)).toBe('not due');
    expect((await storedKeys(storage, 'blobs/')).length).toBe(imageOf(40).blobs.length);
    clock += 24 * 3600_000;
    expect(await invoke(3)).toBe('done');
    expect(await storedKeys(storage, 'blobs/')).toEqual([]);
  });
});
