#!/usr/bin/env -S npx tsx
import { ConfigError } from '../lib/config/config.ts';
import { describeError } from '../lib/logging/logger.ts';
import { ACCOUNTS_USAGE, UsageError, accounts } from './accounts.ts';
import { SERVE_USAGE, serve } from './serve.ts';
import { CLIENT_USAGE, relay } from './relay.ts';
import { push } from './push.ts';
import { GC_USAGE, gc, usage } from './gc.ts';
import { FSCK_USAGE, fsck } from './fsck.ts';

const USAGE = `Usage: berth <command> [options]

Commands:
  serve                   Run the registry on this machine
  users, robots, anonymous  Manage who may pull, push and delete
  relay                   A local endpoint that pushes any layer size to a remote Berth registry
  push                    Push an OCI layout or docker save archive to a registry
  gc                      Delete what no tag or manifest needs (online; retention rules; --dry-run)
  usage                   Bytes and blob counts per repository
  fsck                    Check that every tag pulls and nothing is left behind (online; --repair)

${SERVE_USAGE}
${ACCOUNTS_USAGE}
${CLIENT_USAGE}
${GC_USAGE}
${FSCK_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (
    command === undefined ||
    command === '-h' ||
    command === '--help' ||
    rest.includes('--help') ||
    rest.includes('-h')
  ) {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'users':
    case 'robots':
    case 'anonymous':
      return accounts(command, rest);
    case 'relay':
      return relay(rest);
    case 'push':
      return push(rest);
    case 'gc':
      return gc(rest);
    case 'usage':
      return usage(rest);
    case 'fsck':
      return fsck(rest);
    default:
      process.stderr.write(`berth: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`berth: ${err.message}\n`);
    } else if (err instanceof Error && 'code' in err && err.code === 'EADDRINUSE') {
      process.stderr.write(`berth: the address is already in use; choose another --port\n`);
    } else if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`berth: ${err.message}\n\n${USAGE}`);
    } else if (err instanceof Error) {
      process.stderr.write(`berth: ${err.message}\n`);
    } else {
      process.stderr.write(`berth: ${JSON.stringify(describeError(err))}\n`);
    }
    process.exit(1);
  },
);
