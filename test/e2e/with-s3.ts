/**
 * Runs a command against a private MinIO: `tsx test/e2e/with-s3.ts <command...>`. The command sees
 * BERTH_STORAGE=s3 and the BERTH_S3_* settings and credentials, so `npm start` inside it (the
 * conformance and client scripts) serves from S3. MinIO is stopped when the command ends.
 */
import { spawn } from 'node:child_process';
import { startS3Server } from '../storage/s3-server.ts';

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('usage: tsx test/e2e/with-s3.ts <command> [args...]\n');
  process.exit(2);
}
const server = await startS3Server();
const env = {
  ...process.env,
  BERTH_STORAGE: 's3',
  BERTH_S3_BUCKET: server.bucket,
  BERTH_S3_REGION: server.region,
  BERTH_S3_ENDPOINT: server.endpoint,
  BERTH_S3_FORCE_PATH_STYLE: 'true',
};
process.stderr.write(`[with-s3] MinIO at ${server.endpoint}, bucket ${server.bucket}\n`);
const child = spawn(command, args, { stdio: 'inherit', env });
const forward = (signal: NodeJS.Signals) => child.kill(signal);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
const code = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
await server.stop();
process.exit(code);
