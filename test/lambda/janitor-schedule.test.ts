import type { Context, ScheduledEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import {
  MAX_CONTINUATIONS,
  createJanitorHandler,
  type JanitorContinuation,
} from '../../lib/lambda/janitor.ts';
import { createLambdaLogger } from '../../lib/lambda/logging.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { deleteManifest, gcDefaults, imageOf, push, storedKeys } from '../gc/harness.ts';
import { testRegistry } from '../http/harness.ts';

/*
 * The janitor runs once a day on AWS (an idle registry then costs nothing); a collection that needs
 * more than one invocation carries itself on at once by invoking the janitor again.
 */

const { remainingMs: _r, sleep: _s, ...gcOptions } = gcDefaults;

/** An invocation that runs out of time after `steps` checks of the remaining time. */
function shortInvocation(steps: number, id: string): Context {
  let checks = steps;
  return {
    awsRequestId: id,
    getRemainingTimeInMillis: () => (checks-- > 0 ? 600_000 : 0),
  } as unknown as Context;
}

async function garbage() {
  const r = testRegistry({ storage: new MemoryDriver() });
  for (let i = 0; i < 3; i++) {
    await push(r, `repo-${i}`, 'v1', imageOf(50 + i));
    await deleteManifest(r, `repo-${i}`, imageOf(50 + i).digest);
  }
  return r;
}

describe('the janitor carrying an unfinished collection on', () => {
  it('invokes itself again until the collection is done, then stops', async () => {
    const r = await garbage();
    const sent: JanitorContinuation[] = [];
    const janitor = createJanitorHandler(r, 3600, createLambdaLogger('silent'), gcOptions, undefined, {
      continueWith: async (event) => {
        sent.push(event);
      },
    });
    // The scheduled run, then each continuation as Lambda would deliver it.
    let event: ScheduledEvent | JanitorContinuation = { id: 'schedule-1' } as ScheduledEvent;
    const statuses: string[] = [];
    for (let i = 0; i < 40; i++) {
      const before = sent.length;
      const summary = await janitor(event, shortInvocation(4 + i, `req-${i}`));
      statuses.push(summary.gc!.status);
      if (sent.length === before) break;
      expect(summary.continuation).toBe(sent.length);
      event = sent.at(-1)!;
    }
    expect(statuses[0]).toBe('paused');
    expect(statuses.at(-1)).toBe('done');
    // One continuation per paused run, numbered from 1, none after the collection finished.
    expect(sent.map((e) => e.berthJanitorContinuation)).toEqual(statuses.slice(0, -1).map((_, i) => i + 1));
    expect(await storedKeys(r.storage, 'blobs/')).toEqual([]);
  });

  it('stops after the most continuations in a row, leaving the rest to the next scheduled run', async () => {
    const r = await garbage();
    const sent: JanitorContinuation[] = [];
    const lines: string[] = [];
    const janitor = createJanitorHandler(
      r,
      3600,
      createLambdaLogger('info', (l) => lines.push(l)),
      gcOptions,
      undefined,
      { continueWith: async (event) => void sent.push(event) },
    );
    const summary = await janitor(
      { berthJanitorContinuation: MAX_CONTINUATIONS },
      shortInvocation(2, 'req-last'),
    );
    expect(summary.gc!.status).toBe('paused');
    expect(sent).toEqual([]);
    expect(summary.continuation).toBeUndefined();
    expect(lines.join('\n')).toContain('collection still unfinished after the most continuations');
  });
});

describe('the janitor on an idle registry', () => {
  it('starts a due collection only after a push, or once the idle interval has passed', async () => {
    let clock = Date.parse('2026-03-01T00:00:00Z');
    const memory = new MemoryDriver({ clock: () => clock });
    // The S3 driver lists with modification times; the memory store is given the same here.
    const storage = Object.assign(memory, {
      listObjects: async (prefix: string, options?: { startAfter?: string; limit?: number }) => {
        const page = await memory.list(prefix, options);
        const objects = await Promise.all(
          page.keys.map(async (key) => {
            const info = (await memory.head(key))!;
            return { key, size: info.size, etag: info.etag, lastModified: info.lastModified };
          }),
        );
        return { objects, truncated: page.truncated };
      },
    });
    const r = testRegistry({ storage });
    const day = 24 * 3600_000;
    const janitor = createJanitorHandler(
      r,
      3600,
      createLambdaLogger('silent'),
      { ...gcOptions, now: () => clock, intervalMs: day, idleIntervalMs: 7 * day },
      // The store's checks: weekly, as on AWS.
      {
        intervalMs: 7 * day,
        uploadTtlMs: day,
        graceMs: 0,
        recheckDelayMs: 0,
        writeMetric: () => {},
        now: () => clock,
      },
    );
    const run = async () =>
      (await janitor({ id: 'daily' } as ScheduledEvent, shortInvocation(1000, 'req'))).gc!.status;

    await push(r, 'team/app', 'v1', imageOf(60));
    expect(await run()).toBe('done');
    // Deleted, but no push since: the daily runs leave the garbage (and the store's listing) alone.
    await deleteManifest(r, 'team/app', imageOf(60).digest);
    const garbage = (await storedKeys(storage, 'blobs/')).length;
    for (let i = 1; i < 7; i++) {
      clock += day;
      const summary = await janitor({ id: 'daily' } as ScheduledEvent, shortInvocation(1000, 'req'));
      expect(summary.gc!.status, `day ${i}`).toBe('idle');
      // Nothing collecting: the check is merely not due.
      expect(summary.fsck!.status, `day ${i}`).toBe('not due');
    }
    expect((await storedKeys(storage, 'blobs/')).length).toBe(garbage);
    // A week after the last collection it runs anyway, and catches up with the deletion.
    clock += day;
    expect(await run()).toBe('done');
    expect(await storedKeys(storage, 'blobs/')).toEqual([]);

    // A push is a sign of work: the next due run collects.
    clock += day;
    await push(r, 'team/other', 'v1', imageOf(61));
    await deleteManifest(r, 'team/other', imageOf(61).digest);
    clock += day;
    expect(await run()).toBe('done');
    expect(await storedKeys(storage, 'blobs/')).toEqual([]);
    clock += day;
    expect(await run()).toBe('idle');
  });
});
