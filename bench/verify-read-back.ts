/**
 * How fast the registry reads a direct upload back to verify its digest (parallel ranged GETs
 * feeding one sha256), against a private MinIO on this machine: what sets how large a blob can be
 * verified inside API Gateway's 30 s (docs/upload-extension.md).
 *
 *   npx tsx bench/verify-read-back.ts [size-MiB=1024]
 */
import { randomFillSync, randomUUID } from 'node:crypto';
import { readBackDigest } from '../lib/registry/read-back.ts';
import { createS3Client, S3Driver } from '../lib/storage/s3/index.ts';
import { startS3Server } from '../test/storage/s3-server.ts';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 1024);
const server = await startS3Server();
try {
  const client = createS3Client({ region: server.region, endpoint: server.endpoint, forcePathStyle: true });
  const storage = new S3Driver({ client, bucket: server.bucket, prefix: randomUUID() });
  const partSize = 64 * MiB;
  const part = randomFillSync(new Uint8Array(partSize));
  const id = await storage.multipart.create('data/x');
  const parts = [];
  for (let n = 1; n * partSize <= sizeMiB * MiB; n++) {
    parts.push(await storage.multipart.uploadPart('data/x', id, n, part, partSize));
  }
  await storage.multipart.complete('data/x', id, parts);
  const size = parts.length * partSize;
  const rows: string[] = [];
  for (const [rangeMiB, concurrency] of [
    [8, 1],
    [8, 4],
    [8, 8],
    [16, 8],
  ] as const) {
    const started = performance.now();
    await readBackDigest(storage, 'data/x', size, 'sha256', { rangeSize: rangeMiB * MiB, concurrency });
    const seconds = (performance.now() - started) / 1000;
    const rate = size / MiB / seconds;
    rows.push(
      `| ${size / MiB} MiB | ${rangeMiB} MiB x ${concurrency} | ${seconds.toFixed(2)} s | ${rate.toFixed(0)} MiB/s | ${((rate * 25) / 1024).toFixed(1)} GiB |`,
    );
  }
  console.log('| object | ranges | time | rate | verifiable in 25 s |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const row of rows) console.log(row);
  client.destroy();
} finally {
  await server.stop();
}
