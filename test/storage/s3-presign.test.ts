import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Presigner, type PresignOptions } from '../../lib/storage/s3/presign.ts';

// Presigner signs a method's first URL with the SDK's getSignedUrl and the later ones from what that
// URL taught (lib/storage/s3/presign.ts). Every URL must be the one getSignedUrl would have made,
// byte for byte: same host, path escaping, query and signature. No server; the clock is faked.

const NOW = Date.UTC(2031, 4, 6, 7, 8, 9);

afterEach(() => {
  vi.useRealTimers();
});

const credentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};

const clients: [string, () => S3Client, string][] = [
  [
    'an S3-compatible endpoint with a port, path style',
    () =>
      new S3Client({
        endpoint: 'http://127.0.0.1:9000',
        region: 'us-east-1',
        forcePathStyle: true,
        credentials,
      }),
    'berth',
  ],
  [
    'AWS, virtual-hosted, temporary credentials (session token)',
    () =>
      new S3Client({
        region: 'eu-west-1',
        credentials: { ...credentials, sessionToken: 'FwoGZXIvYXdzE//token+/=' },
      }),
    'berth-registry',
  ],
  [
    'AWS, a bucket name with dots (path style)',
    () => new S3Client({ region: 'ap-southeast-2', credentials }),
    'my.registry.bucket',
  ],
  [
    'an HTTPS endpoint with a path',
    () =>
      new S3Client({
        endpoint: 'https://storage.example.com/s3',
        region: 'auto',
        forcePathStyle: true,
        credentials,
      }),
    'b',
  ],
];

const keys = [
  'prefix/data/3f0b6d1e-8c1a-4d55-9b8e-6f4b8a1f2c3d',
  'blobs/sha256/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  'data/0a1b.tail-3-deadbeef',
  "odd/a b+c!d'e(f)g*h~i;j,k=l&m?n#o%p",
  'ünïcödé/キー/😀',
  'double//slash/',
];

const optionSets: PresignOptions[] = [
  { method: 'GET', expiresInSeconds: 900, contentType: 'application/octet-stream' },
  { method: 'GET', expiresInSeconds: 60 },
  {
    method: 'GET',
    expiresInSeconds: 604_800,
    contentType: 'application/vnd.oci.image.layer.v1.tar',
    filename: 'layer "1".tar',
  },
  { method: 'GET', expiresInSeconds: 300, filename: 'café.tar' },
  { method: 'HEAD', expiresInSeconds: 900 },
];

/** What the SDK's getSignedUrl gives for the same object, options and signing time. */
function sdkUrl(client: S3Client, bucket: string, key: string, options: PresignOptions): Promise<string> {
  const input = { Bucket: bucket, Key: key };
  const command =
    options.method === 'HEAD'
      ? new HeadObjectCommand(input)
      : new GetObjectCommand({
          ...input,
          ...(options.contentType !== undefined && { ResponseContentType: options.contentType }),
          ...(options.filename !== undefined && {
            ResponseContentDisposition: attachmentOf(options.filename),
          }),
        });
  return getSignedUrl(client, command, { expiresIn: options.expiresInSeconds, signingDate: new Date(NOW) });
}

/** The Content-Disposition Presigner asks for (RFC 6266), as it writes it. */
function attachmentOf(filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  const exact = encodeURIComponent(filename).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${exact}`;
}

describe('Presigner: every URL is the one getSignedUrl makes', () => {
  for (const [name, makeClient, bucket] of clients) {
    it(name, async () => {
      vi.useFakeTimers({ toFake: ['Date'], now: NOW });
      const client = makeClient();
      const presigner = new Presigner(client, bucket);
      let compared = 0;
      // Each method's first URL is the SDK's own; all the others come from the template.
      for (const key of keys) {
        for (const options of optionSets) {
          const ours = await presigner.url(key, options);
          expect(ours).toBe(await sdkUrl(client, bucket, key, options));
          compared++;
        }
      }
      expect(compared).toBe(keys.length * optionSets.length);
    });
  }

  it('with a public endpoint: signed for that origin, as the SDK signs with a client of it', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: NOW });
    const internal = new S3Client({
      endpoint: 'http://10.0.0.5:9000',
      region: 'us-east-1',
      forcePathStyle: true,
      credentials,
    });
    const publicEndpoint = 'https://registry-storage.example.com';
    const presigner = new Presigner(internal, 'berth', publicEndpoint);
    const outside = new S3Client({
      endpoint: publicEndpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials,
    });
    for (const key of keys.slice(0, 3)) {
      const ours = await presigner.url(key, optionSets[0]!);
      expect(new URL(ours).origin).toBe(publicEndpoint);
      expect(ours).toBe(await sdkUrl(outside, 'berth', key, optionSets[0]!));
    }
  });

  it('signs with the time the store taught (the client clock offset), not this machine’s alone', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: NOW });
    const client = new S3Client({
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      forcePathStyle: true,
      credentials,
    });
    client.config.systemClockOffset = 3_600_000;
    const presigner = new Presigner(client, 'berth');
    for (const key of keys.slice(0, 3)) {
      const url = new URL(await presigner.url(key, { method: 'GET', expiresInSeconds: 60 }));
      expect(url.searchParams.get('X-Amz-Date')).toBe('20310506T080809Z');
    }
  });

  it('a first URL that fails (no credentials yet) is not kept: the next one is signed afresh', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: NOW });
    let available = false;
    const client = new S3Client({
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: async () => {
        if (!available) throw new Error('credentials are not available yet');
        return credentials;
      },
    });
    const presigner = new Presigner(client, 'berth');
    await expect(presigner.url('k', optionSets[1]!)).rejects.toThrow('not available');
    available = true;
    const reference = new S3Client({
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      forcePathStyle: true,
      credentials,
    });
    for (const key of ['k', 'l']) {
      expect(await presigner.url(key, optionSets[1]!)).toBe(
        await sdkUrl(reference, 'berth', key, optionSets[1]!),
      );
    }
  });
});
