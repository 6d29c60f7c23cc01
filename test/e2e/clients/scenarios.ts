// The client scenarios as vitest suites that run against any RegistryTarget. A test file calls
// registerClientScenarios() with a function that starts (or connects to) the registry; local,
// lambda and the other suites pass their own targets and reuse every scenario. Each workflow is a
// function of its own in scenarios/ (matrix.ts, small-images.ts, ..., interruptions.ts), called here
// in order inside one suite that owns the registry, the clients and the checks after every test.
//
// Every test asserts what a user would notice: the digest a client pushed is the digest the
// registry serves (crane digest) and the digest another client pulls; pulls fail cleanly after a
// delete; a second push uploads nothing. After each test the registry's log (when readable) must
// show no 5xx answer, and the requests of each test are written to <workDir>/requests/.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ClientEnv } from './harness/clients.ts';
import { note, reapLeftovers, setTranscript } from './harness/proc.ts';
import { RegistryProxy } from './harness/proxy.ts';
import type { RegistryTarget } from './harness/registry.ts';
import { formatRequests, serverErrors, type LoggedRequest } from './harness/requestlog.ts';
import { scenarioContext, type ScenarioOptions } from './scenarios/context.ts';
import { pushWithOneClientPullWithEveryOther } from './scenarios/matrix.ts';
import { smallAndEmptyImages } from './scenarios/small-images.ts';
import { layerJustAboveTheRequestLimit } from './scenarios/request-limit.ts';
import { bigImage } from './scenarios/big-image.ts';
import { multiPlatformImages } from './scenarios/multi-platform.ts';
import { rePushUploadsNothing } from './scenarios/re-push.ts';
import { crossRepositoryMounts } from './scenarios/mounts.ts';
import { pullPathsAndListings } from './scenarios/pulls-and-listings.ts';
import { deletingTagsAndManifests } from './scenarios/deletes.ts';
import { artifactsReferrersAndSignatures } from './scenarios/artifacts.ts';
import { interruptedPullsAndPushes } from './scenarios/interruptions.ts';

export type { RequestBodyLimit, ScenarioOptions } from './scenarios/context.ts';

export function registerClientScenarios(opts: ScenarioOptions): void {
  const s = scenarioContext(opts);
  const { ctx, requestsSinceTestStart } = s;

  describe(`real clients against ${opts.name}`, () => {
    beforeAll(async () => {
      await reapLeftovers();
      const base = process.env.BERTH_E2E_WORKDIR ?? os.tmpdir();
      mkdirSync(base, { recursive: true });
      // Lower case only: podman/buildah name images pulled from oci:<path> after the path.
      ctx.workDir = path.join(base, `berth-e2e-${s.runId}`);
      mkdirSync(ctx.workDir);
      setTranscript(path.join(ctx.workDir, 'commands.log'));
      s.requestsDir = path.join(ctx.workDir, 'requests');
      mkdirSync(s.requestsDir, { recursive: true });
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
      s.mark = ctx.target?.requests?.mark() ?? 0;
      s.abortedUploadsUntil = 0;
      note(`\n=== ${t.task.name}`);
    });

    afterEach(async (t) => {
      if (!ctx.target?.requests) return;
      const reqs = await requestsSinceTestStart();
      const file = t.task.name.replace(/[^\w.-]+/g, '_').slice(0, 120);
      writeFileSync(path.join(s.requestsDir, `${file}.txt`), formatRequests(reqs, 100_000) + '\n');
      const aborted = (r: LoggedRequest, i: number) =>
        s.mark + i < s.abortedUploadsUntil &&
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

    pushWithOneClientPullWithEveryOther(s);
    smallAndEmptyImages(s);
    layerJustAboveTheRequestLimit(s);
    bigImage(s);
    multiPlatformImages(s);
    rePushUploadsNothing(s);
    crossRepositoryMounts(s);
    pullPathsAndListings(s);
    deletingTagsAndManifests(s);
    artifactsReferrersAndSignatures(s);
    interruptedPullsAndPushes(s);
  });
}

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
