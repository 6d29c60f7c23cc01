import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll } from 'vitest';
import { startS3Server, testS3Client, type S3TestServer } from './s3-server.ts';

/**
 * For a describe block: a MinIO started before its tests, with an S3 client (path style, as MinIO
 * wants) for it; both are stopped after them. Kept apart from s3-server.ts, which scripts outside
 * vitest (test/e2e/with-s3.ts, bench/) import too.
 */
export function useS3Server(): { readonly server: S3TestServer; readonly client: S3Client } {
  let server: S3TestServer | undefined;
  let client: S3Client | undefined;
  beforeAll(async () => {
    server = await startS3Server();
    client = testS3Client(server);
  });
  afterAll(async () => {
    client?.destroy();
    await server?.stop();
  });
  return {
    get server() {
      if (!server) throw new Error('the S3 test server is not started yet (use it inside a test)');
      return server;
    },
    get client() {
      if (!client) throw new Error('the S3 test server is not started yet (use it inside a test)');
      return client;
    },
  };
}
