import type { Context, ScheduledEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { FSCK_REPORT_KEY, type FsckReport } from '../../lib/fsck/report.ts';
import { createJanitorHandler, type JanitorFsckOptions } from '../../lib/lambda/janitor.ts';
import { createLambdaLogger } from '../../lib/lambda/logging.ts';
import { parseDigest } from '../../lib/oci/digest.ts';
import { keys, meta } from '../../lib/registry/keys.ts';
import { MemoryDriver } from '../../lib/storage/memory.ts';
import { gcDefaults } from '../gc/harness.ts';
import { sha256, testRegistry, type TestRegistry } from '../http/harness.ts';
import { ControlledStore } from '../sim/controlled-store.ts';
import { populate, type Populated } from '../fsck/harness.ts';

/*
 * The janitor's cheap checks of the store (docs/fsck.md, "On AWS"): after the collection, within the
 * invocation's remaining time and a read budget; findings as embedded metrics, a warning naming the
 * broken ones, and the report in gc/fsck.json.
 */

const { remainingMs: _r, sleep: _s, ...gcOptions } = gcDefaults;

function invocation(remainingMs: number, id = 'req-1'): Context {
  return { awsRequestId: id, getRemainingTimeInMillis: () => remainingMs } as unknown as Context;
}

async function brokenRegistry(): Promise<{
  r: TestRegistry;
  store: ControlledStore;
  p: Populated;
  data: string;
}> {
  const store = new ControlledStore(new MemoryDriver());
  const r = testRegistry({ storage: store });
  const p = await populate(r);
  // The multipart layer of app:v1 loses its data; app:mono's config (stored whole) is deleted.
  const data = (await store.head(keys.blob(parseDigest(p.app.layers[1]!))))!.metadata[meta.dataKey]!;
  await store.delete(data);
  await store.delete(keys.blob(parseDigest(sha256(p.mono.blobs[0]!))));
  return { r, store, p, data };
}

function janitor(
  r: TestRegistry,
  lines: string[],
  metrics: string[],
  options: Partial<JanitorFsckOptions> = {},
) {
  return createJanitorHandler(
    r,
    3600,
    createLambdaLogger('info', (l) => lines.push(l)),
    gcOptions,
    {
      intervalMs: 24 * 3600_000,
      uploadTtlMs: 3600_000,
      graceMs: 0,
      recheckDelayMs: 0,
      writeMetric: (line) => metrics.push(line),
      ...options,
    },
  );
}

describe('the janitor checks the store after its collection', () => {
  it('sends the findings as metrics, names the broken ones in a warning, and keeps the report', async () => {
    const { r, store, data } = await brokenRegistry();
    const lines: string[] = [];
    const metrics: string[] = [];
    const start = store.trace.length;
    const summary = await janitor(r, lines, metrics)({ id: 'evt-1' } as ScheduledEvent, invocation(600_000));
    expect(summary.gc!.status).toBe('done');
    expect(summary.fsck).toMatchObject({
      status: 'done',
      counts: { broken: 2, inconsistent: 0 },
      complete: true,
    });

    const parsed = metrics.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed[0]).toMatchObject({
      awsRequestId: 'req-1',
      FsckBroken: 2,
      FsckInconsistent: 0,
      FsckLeftovers: 0,
      FsckComplete: 1,
      _aws: { CloudWatchMetrics: [{ Namespace: 'Berth', Dimensions: [[]] }] },
    });
    expect(
      parsed
        .slice(1)
        .map((m) => [m.kind, m.severity, m.FsckFindings])
        .sort(),
    ).toEqual([
      ['blob-data-missing', 'broken', 1],
      ['blob-missing', 'broken', 1],
    ]);
    const warning = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.level === 'warn');
    expect(warning).toMatchObject({
      msg: 'fsck found broken or inconsistent objects',
      counts: { broken: 2 },
    });
    expect(JSON.stringify(warning)).toContain(`its data ${data} (6.0 MiB) is missing`);
    expect(JSON.stringify(warning)).toContain('"repository":"mirror"');

    const saved = JSON.parse(
      new TextDecoder().decode((await store.get(FSCK_REPORT_KEY))!.body),
    ) as FsckReport & {
      finishedAt: string;
    };
    expect(saved).toMatchObject({ mode: 'cheap', complete: true, counts: { broken: 2 }, skipped: [] });
    expect(Date.parse(saved.finishedAt)).not.toBeNaN();
    // Cheap: no manifest read, only listings and heads (the collection before it reads them).
    const fsckCalls = store.trace.slice(start).filter((l) => / (get|head|list) /.test(l));
    expect(fsckCalls.length).toBeGreaterThan(0);
    const lastGc = store.trace.findLastIndex((l) => l.includes(` put gc/usage.json `));
    const after = store.trace.slice(lastGc);
    expect(after.filter((l) => / get repos\/[^ ]*\/_manifests\//.test(l))).toEqual([]);
    expect(after.filter((l) => / get /.test(l)).every((l) => /_tags\/|gc\/|_verifying\//.test(l))).toBe(true);
  });

  it('runs once per interval, only with time to spare, and not while a collection is under way', async () => {
    const { r } = await brokenRegistry();
    const metrics: string[] = [];
    let clock = Date.now();
    const handler = janitor(r, [], metrics, { now: () => clock });
    const first = await handler({ id: 'evt-1' } as ScheduledEvent, invocation(600_000));
    expect(first.fsck!.status).toBe('done');
    clock += 3600_000;
    const second = await handler({ id: 'evt-2' } as ScheduledEvent, invocation(600_000));
    expect(second.fsck!.status).toBe('not due');
    clock += 24 * 3600_000;
    const short = await handler({ id: 'evt-3' } as ScheduledEvent, invocation(30_000));
    expect(short.fsck!.status).toBe('no time');
    const third = await handler({ id: 'evt-4' } as ScheduledEvent, invocation(600_000));
    expect(third.fsck!.status).toBe('done');
    expect(metrics.filter((l) => l.includes('"FsckBroken"'))).toHaveLength(2);

    // A collection that pauses (out of time): the check waits for it to finish.
    let steps = 3;
    const paused = await handler(
      { id: 'evt-5' } as ScheduledEvent,
      {
        awsRequestId: 'req-5',
        getRemainingTimeInMillis: () => (steps-- > 0 ? 600_000 : 0),
      } as unknown as Context,
    );
    expect(paused.gc!.status).toBe('paused');
    expect(paused.fsck!.status).toBe('collecting');
  });

  it('stays within its read budget and says the check was partial', async () => {
    const { r, store } = await brokenRegistry();
    const metrics: string[] = [];
    const handler = janitor(r, [], metrics, { maxReads: 3, intervalMs: 0 });
    const summary = await handler({ id: 'evt-1' } as ScheduledEvent, invocation(600_000));
    expect(summary.fsck).toMatchObject({ status: 'done', complete: false });
    // The check's reads: after this invocation's collection and usage report.
    const checkStart = store.trace.findLastIndex((l) => l.includes(' put gc/usage.json '));
    const reads = store.trace.slice(checkStart).filter((l) => / (head|get) /.test(l) && !/ gc\//.test(l));
    // The first pass's 3 reads, and the second look at what they found (a blob and its data).
    expect(reads.length).toBeLessThanOrEqual(3 + 2);
    const saved = JSON.parse(
      new TextDecoder().decode((await store.get(FSCK_REPORT_KEY))!.body),
    ) as FsckReport;
    expect(saved.skipped).toContain('blob data');
    expect(JSON.parse(metrics.filter((m) => m.includes('"FsckComplete"')).at(-1)!)).toMatchObject({
      FsckComplete: 0,
    });
  });
});
