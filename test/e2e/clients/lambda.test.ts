// Real clients through the Lambda path: the BUILT registry bundle behind the local API Gateway
// (`berth serve --lambda`) on the S3 driver, so it runs inside test/e2e/with-s3.ts:
//
//   npx tsx test/e2e/with-s3.ts npm run test:e2e:lambda
//
// A request through Lambda carries at most ~4.4 MB of blob bytes and every client sends a layer as
// one request body, so the scenarios with bigger layers assert the refusal instead: the registry's
// 413 SIZE_INVALID naming the fix just above the limit, API Gateway's 413 further up.
import { LAMBDA_BODY_LIMIT, TOO_LARGE_MESSAGE } from '../../../lib/lambda/handler.ts';
import { registerClientScenarios } from './scenarios.ts';
import { repoRoot, startBerth } from './harness/registry.ts';
import { run } from './harness/proc.ts';
import { GatewayRequestLog } from './harness/requestlog.ts';

registerClientScenarios({
  name: 'berth (serve --lambda, S3)',
  quick: process.env.BERTH_E2E_QUICK === '1',
  maxRequestBody: {
    bytes: LAMBDA_BODY_LIMIT,
    name: 'the Lambda request limit',
    refused: /SIZE_INVALID|size invalid|\b413\b|Request Entity Too Large/i,
    // Base64 of 4.55 MB still fits in Lambda's 6 MiB event, so the function answers, not the gateway.
    justAbove: { size: 4_550_000, message: new RegExp(escape(TOO_LARGE_MESSAGE.slice(0, 40))) },
    // regctl answers a refused monolithic PUT by uploading the same session in PATCH chunks.
    chunked: ['regctl'],
  },
  target: async (workDir) => {
    if (process.env.BERTH_STORAGE !== 's3') {
      throw new Error('the Lambda path needs S3: run `npx tsx test/e2e/with-s3.ts npm run test:e2e:lambda`');
    }
    await run('npm', ['run', 'build'], { cwd: repoRoot });
    return startBerth(workDir, {
      command: 'npx tsx bin/berth.ts serve --lambda --port {port} --data-dir {dataDir}',
      requestLog: (file) => new GatewayRequestLog(file),
    });
  },
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
