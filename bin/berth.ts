#!/usr/bin/env -S npx tsx
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, parseConfig } from '../lib/config/config.ts';
import { configInput } from '../lib/config/sources.ts';
import { createLogger, describeError } from '../lib/logging/logger.ts';
import { startLocalServer } from '../lib/server/local.ts';
import { startLambdaGateway } from '../lib/gateway/local.ts';

const USAGE = `Usage: berth <command> [options]

Commands:
  serve     Run the registry on this machine (filesystem store)

Options for serve (environment variable in brackets):
  --host <addr>         Address to listen on [BERTH_HOST] (default 127.0.0.1)
  --port <n>            Port [PORT] (default 5000)
  --data-dir <dir>      Where blobs and manifests are stored [BERTH_DATA_DIR] (default ./data)
  --log-level <level>   debug, info, warn, error or silent [BERTH_LOG_LEVEL] (default info)
  --storage <kind>      filesystem or s3 [BERTH_STORAGE] (default filesystem); s3 reads
                        BERTH_S3_BUCKET, BERTH_S3_PREFIX, BERTH_S3_REGION, BERTH_S3_ENDPOINT,
                        BERTH_S3_FORCE_PATH_STYLE and the AWS SDK's usual credentials
  --no-redirect         Stream blob bytes through Berth instead of redirecting to S3 [BERTH_REDIRECT=off]
  --max-blob-size <n>   Largest blob accepted, in bytes [BERTH_MAX_BLOB_SIZE] (default 50 GiB)
  --mount-without-from  Let a mount request without ?from= link a blob from any repository
                        [BERTH_MOUNT_WITHOUT_FROM]
  --lambda              Serve the built Lambda bundle (dist/registry/index.mjs, \`npm run build\`)
                        behind a local API Gateway HTTP API, with AWS's limits
  -h, --help            Show this help
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      'log-level': { type: 'string' },
      storage: { type: 'string' },
      'no-redirect': { type: 'boolean' },
      'max-blob-size': { type: 'string' },
      'mount-without-from': { type: 'boolean' },
      lambda: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0];
  if (values.help || command === undefined) {
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (command !== 'serve') {
    process.stderr.write(`berth: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  const config = parseConfig(
    configInput(process.env, {
      host: values.host,
      port: values.port,
      dataDir: values['data-dir'],
      logLevel: values['log-level'],
      storage: values.storage,
      redirect: values['no-redirect'] ? false : undefined,
      maxBlobSize: values['max-blob-size'],
      mountWithoutFrom: values['mount-without-from'],
    }),
  );
  const logger = createLogger(config.logLevel);
  const server = values.lambda
    ? await startLambdaGateway(
        config,
        logger,
        fileURLToPath(new URL('../dist/registry/index.mjs', import.meta.url)),
      )
    : await startLocalServer(config, logger);
  logger.info('berth listening', { url: server.url, dataDir: config.dataDir, storage: config.storage });
  if (config.host !== '127.0.0.1' && config.host !== 'localhost' && config.host !== '::1') {
    logger.warn(
      'listening beyond loopback without authentication: anyone who can reach this port can push and delete',
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`berth: ${err.message}\n`);
    } else if (err instanceof Error && 'code' in err && err.code === 'EADDRINUSE') {
      process.stderr.write(`berth: the address is already in use; choose another --port\n`);
    } else if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`berth: ${err.message}\n\n${USAGE}`);
    } else {
      process.stderr.write(`berth: ${JSON.stringify(describeError(err))}\n`);
    }
    process.exit(1);
  },
);
