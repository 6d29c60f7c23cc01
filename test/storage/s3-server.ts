import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createS3Client, type S3ClientOptions } from '../../lib/storage/s3/client.ts';

/**
 * A private MinIO for the S3 tests: on 127.0.0.1 at a free port, data in a temp dir, one bucket, the
 * root credentials handed to the SDK through AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (as on Lambda,
 * where the driver gets its credentials from the environment too). test/e2e/setup-s3.sh installs it.
 */
export interface S3TestServer {
  readonly endpoint: string;
  readonly region: string;
  readonly bucket: string;
  /**
   * MinIO's clock minus this process's, in ms (about 0, unless the tests run under faketime: MinIO is
   * a static Go binary that libfaketime does not reach). See testS3Client.
   */
  readonly clockOffsetMs: number;
  stop(): Promise<void>;
}

/**
 * An S3 client for the test server that signs with MinIO's time from its first request. The SDK would
 * learn the offset itself from a refused first request and retry (the product relies on that), but
 * that retry would spend an attempt that tests of retries count.
 */
export function testS3Client(server: S3TestServer, options: Partial<S3ClientOptions> = {}): S3Client {
  const client = createS3Client({
    region: server.region,
    endpoint: server.endpoint,
    forcePathStyle: true,
    ...options,
  });
  client.config.systemClockOffset = server.clockOffsetMs;
  return client;
}

const cacheDir =
  process.env.BERTH_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'berth');

/** Where setup-s3.sh puts MinIO; BERTH_MINIO names another binary. */
export const MINIO_PATH = process.env.BERTH_MINIO ?? join(cacheDir, 'bin', 'minio');

export const minioInstalled = existsSync(MINIO_PATH);

const REGION = 'us-east-1';
const START_TIMEOUT_MS = 20_000;

export async function startS3Server(): Promise<S3TestServer> {
  // Looked up now, not at import: the bench installs MinIO after importing this module.
  if (!existsSync(MINIO_PATH)) throw new Error(`MinIO is not at ${MINIO_PATH}: run test/e2e/setup-s3.sh`);
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-minio-'));
  const user = `berth${randomBytes(6).toString('hex')}`;
  const password = randomBytes(18).toString('base64url');
  try {
    const { child, endpoint } = await startMinio(dataDir, user, password);
    const env = useCredentials(user, password);
    const server: S3TestServer = {
      endpoint,
      region: REGION,
      bucket: 'berth-test',
      clockOffsetMs: await clockOffset(endpoint),
      stop: async () => {
        await kill(child);
        env.restore();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
    await createBucket(server).catch(async (err: unknown) => {
      await server.stop();
      throw err;
    });
    return server;
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** MinIO's clock minus ours, from the Date header of an answer (whole seconds, which SigV4 tolerates). */
async function clockOffset(endpoint: string): Promise<number> {
  const res = await fetch(`${endpoint}/minio/health/live`);
  const date = Date.parse(res.headers.get('date') ?? '');
  return Number.isNaN(date) ? 0 : date - Date.now();
}

/** The free port is found before MinIO binds it, so another process can take it first: try again then. */
async function startMinio(dataDir: string, user: string, password: string) {
  for (let attempt = 1; ; attempt++) {
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const child = spawn(
      MINIO_PATH,
      ['server', dataDir, '--address', endpoint.slice('http://'.length), '--quiet'],
      {
        env: {
          ...process.env,
          MINIO_ROOT_USER: user,
          MINIO_ROOT_PASSWORD: password,
          MINIO_BROWSER: 'off',
          MINIO_UPDATE: 'off',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    try {
      await waitReady(child, endpoint);
      return { child, endpoint };
    } catch (err) {
      await kill(child);
      if (attempt === 3) throw new Error(`MinIO did not start: ${String(err)}\n${output}`, { cause: err });
    }
  }
}

async function waitReady(child: ChildProcess, endpoint: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`MinIO exited (${child.exitCode})`);
    const live = await fetch(`${endpoint}/minio/health/live`).then(
      (res) => res.ok,
      () => false,
    );
    if (live) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`MinIO not live after ${START_TIMEOUT_MS} ms`);
}

/** A port free on 127.0.0.1 right now (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Ends the process by its pid: a polite SIGTERM, then SIGKILL if it lingers. */
async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

function useCredentials(user: string, password: string) {
  const names = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'] as const;
  const saved = names.map((name) => [name, process.env[name]] as const);
  for (const name of names) delete process.env[name];
  process.env.AWS_ACCESS_KEY_ID = user;
  process.env.AWS_SECRET_ACCESS_KEY = password;
  return {
    restore() {
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    },
  };
}

async function createBucket({ endpoint, region, bucket, clockOffsetMs }: S3TestServer): Promise<void> {
  const client = new S3Client({ endpoint, region, forcePathStyle: true, systemClockOffset: clockOffsetMs });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}
