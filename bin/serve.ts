import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, parseConfig } from '../lib/config/config.ts';
import { configInput } from '../lib/config/sources.ts';
import { createLogger } from '../lib/logging/logger.ts';
import { startLocalServer, type RunningServer } from '../lib/server/local-registry.ts';
import { trustInstructions } from '../lib/server/tls.ts';

export const SERVE_USAGE = `Options for serve (environment variable in brackets):
  --host <addr>         Address to listen on [BERTH_HOST] (default 127.0.0.1); any address beyond
                        loopback needs --auth-file
  --port <n>            Port [PORT] (default 5000)
  --data-dir <dir>      Where blobs and manifests are stored [BERTH_DATA_DIR] (default ./data)
  --auth-file <file>    Accounts and signing key written by \`berth users\`; turns authentication on
                        [BERTH_AUTH_FILE]
  --log-level <level>   debug, info, warn, error or silent [BERTH_LOG_LEVEL] (default info)
  --storage <kind>      filesystem or s3 [BERTH_STORAGE] (default filesystem); s3 reads
                        BERTH_S3_BUCKET, BERTH_S3_PREFIX, BERTH_S3_REGION, BERTH_S3_ENDPOINT,
                        BERTH_S3_FORCE_PATH_STYLE and the AWS SDK's usual credentials. Other AWS
                        calls (SSM parameters) go to BERTH_AWS_REGION, else AWS_REGION, else the
                        S3 region
  --no-redirect         Stream blob bytes through Berth instead of redirecting to S3 [BERTH_REDIRECT=off]
  --max-blob-size <n>   Largest blob accepted, in bytes [BERTH_MAX_BLOB_SIZE] (default 50 GiB)
  --mount-without-from  Let a mount request without ?from= link a blob from any repository
                        [BERTH_MOUNT_WITHOUT_FROM]
  --proxy-upstream <[prefix=]url>  Pull-through cache of that registry, e.g. https://registry-1.docker.io
                        for Docker Hub (repeatable; a prefix limits it to <prefix>/... repositories,
                        none covers the rest); mirrored repositories are read-only
                        [BERTH_PROXY_UPSTREAM, comma-separated; credentials from BERTH_PROXY_USERNAME
                        and BERTH_PROXY_PASSWORD, or BERTH_PROXY_PARAMETER on AWS]
  --proxy-tag-ttl <s>   Serve a cached tag this long before asking the upstream again
                        [BERTH_PROXY_TAG_TTL] (default 300)
  --tls-cert <pem>      Serve HTTPS with this certificate (chain) [BERTH_TLS_CERT]; with --tls-key
  --tls-key <pem>       Its private key [BERTH_TLS_KEY]; both files are re-read when they change
  --tls-self-signed     Serve HTTPS with a certificate from a local CA kept in <data-dir>/tls, and print
                        how to make docker, podman and containerd trust it [BERTH_TLS_SELF_SIGNED]
  --tls-hosts <list>    Names and addresses that certificate covers, comma-separated [BERTH_TLS_HOSTS]
                        (default localhost,127.0.0.1,::1 and --host when it is a specific address)
  --max-connections <n> Connections open at once [BERTH_MAX_CONNECTIONS] (default 1000, lowered to
                        fit the open-file limit); more get 503 with Retry-After
  --max-connections-per-address <n>  The same from one address, one /64 for IPv6
                        [BERTH_MAX_CONNECTIONS_PER_ADDRESS] (default 128, at most half the total)
  --cors-origin <origin>  Let web pages from this origin (https://ui.example.com) call the API from a
                        browser (repeatable; * alone allows every page, without browser credentials)
                        [BERTH_CORS_ORIGINS, comma-separated] (default: CORS off)
  The web UI is served at / from the built dist/web (npm start builds it); BERTH_WEB=off turns it
  off, BERTH_REGISTRY_NAME names the registry in it, BERTH_EXPIRES_AT shows when it expires.
  --lambda              Serve the built Lambda bundle (dist/registry/index.mjs, \`npm run build\`)
                        behind a local API Gateway HTTP API, with AWS's limits; on the filesystem
                        store, blob GETs redirect to signed storage URLs the gateway serves, as to S3

Timeouts (environment only, seconds unless said; the same for --lambda):
  BERTH_HEADERS_TIMEOUT (30)    to send a request's headers (and the TLS handshake)
  BERTH_BODY_TIMEOUT (30)       to a body's first byte, and the interval over which it must advance
                                by BERTH_BODY_MIN_BYTES (16384); the same floor for a response the
                                client reads. Time the server spends not reading does not count
  BERTH_KEEPALIVE_TIMEOUT (5)   an idle keep-alive connection is closed after this
  BERTH_UNAUTH_TIMEOUT (10)     /token requests must be sent whole within this (bodies up to 8 KiB)
`;

/** The flags that choose the store, shared with `berth gc` and `berth usage` (S3 settings come from BERTH_S3_*). */
export const STORE_FLAGS = {
  'data-dir': { type: 'string' },
  storage: { type: 'string' },
  'log-level': { type: 'string' },
} as const;

export function storeConfigInput(values: { 'data-dir'?: string; storage?: string; 'log-level'?: string }) {
  return { dataDir: values['data-dir'], storage: values.storage, logLevel: values['log-level'] };
}

/** `berth serve`: runs until SIGTERM or SIGINT. */
export async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      'auth-file': { type: 'string' },
      'log-level': { type: 'string' },
      storage: { type: 'string' },
      'no-redirect': { type: 'boolean' },
      'max-blob-size': { type: 'string' },
      'mount-without-from': { type: 'boolean' },
      lambda: { type: 'boolean' },
      'proxy-upstream': { type: 'string', multiple: true },
      'proxy-tag-ttl': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-self-signed': { type: 'boolean' },
      'tls-hosts': { type: 'string' },
      'max-connections': { type: 'string' },
      'max-connections-per-address': { type: 'string' },
      'cors-origin': { type: 'string', multiple: true },
    },
  });
  const config = parseConfig(
    configInput(process.env, {
      host: values.host,
      port: values.port,
      dataDir: values['data-dir'],
      authFile: values['auth-file'],
      logLevel: values['log-level'],
      storage: values.storage,
      redirect: values['no-redirect'] ? false : undefined,
      maxBlobSize: values['max-blob-size'],
      mountWithoutFrom: values['mount-without-from'],
      proxyUpstream: values['proxy-upstream']?.join(','),
      proxyTagTtlSeconds: values['proxy-tag-ttl'],
      tlsCert: values['tls-cert'],
      tlsKey: values['tls-key'],
      tlsSelfSigned: values['tls-self-signed'],
      tlsHosts: values['tls-hosts'],
      maxConnections: values['max-connections'],
      maxConnectionsPerAddress: values['max-connections-per-address'],
      corsOrigins: values['cors-origin']?.join(','),
    }),
  );
  if (values.lambda && (config.tlsCert || config.tlsSelfSigned)) {
    throw new ConfigError([
      'tls: the local gateway (--lambda) serves plain HTTP on loopback; leave out --tls-*',
    ]);
  }
  const logger = createLogger(config.logLevel);
  const server = values.lambda
    ? // The gateway emulator is loaded only for --lambda.
      await (await import('../lib/gateway/local.ts')).startLambdaGateway(config, logger, registryBundle())
    : await startLocalServer(config, logger);
  logger.info('berth listening', {
    url: server.url,
    dataDir: config.dataDir,
    storage: config.storage,
    ...(config.proxyUpstream ? { mirrorOf: config.proxyUpstream } : {}),
    ...(config.corsOrigins ? { corsOrigins: config.corsOrigins } : {}),
    auth:
      config.authFile || config.authParameter
        ? 'on'
        : 'off: listening on loopback only, anyone on this machine can push and delete (--auth-file turns it on)',
  });
  const tls = 'tls' in server ? (server as RunningServer).tls : undefined;
  if (tls?.selfSigned) {
    process.stderr.write(
      trustInstructions(tls.selfSigned.caCertFile, tls.selfSigned.hosts, portOf(server.url)),
    );
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info('shutting down', { signal });
      void server.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  logger.info('stopped');
  return 0;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/**
 * The registry function's bundle: `dist/registry/index.mjs` from bin/serve.ts (tsx), or from the
 * bundled command that `npm start` runs, whose code is in dist/cli/ or (split) in dist/cli/chunks/.
 * The first that exists; the gateway says what to do when none does.
 */
function registryBundle(): string {
  const candidates = ['../dist/registry/index.mjs', '../registry/index.mjs', '../../registry/index.mjs'].map(
    (path) => fileURLToPath(new URL(path, import.meta.url)),
  );
  return candidates.find((path) => existsSync(path)) ?? candidates[0]!;
}
