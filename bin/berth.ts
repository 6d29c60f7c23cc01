#!/usr/bin/env -S npx tsx
import { ConfigError } from '../lib/config/config.ts';
import { describeError } from '../lib/logging/logger.ts';
import { ACCOUNTS_USAGE, UsageError, accounts } from './accounts.ts';
import { serve, serveUsage } from './serve.ts';

// The other commands are loaded when run (and for the help text): `berth serve`, which idles for
// hours, then never loads the relay, push, gc and fsck code or what only they use.
async function usageText(): Promise<string> {
  const [{ CLIENT_USAGE }, { GC_USAGE }, { FSCK_USAGE }] = await Promise.all([
    import('./relay.ts'),
    import('./gc.ts'),
    import('./fsck.ts'),
  ]);
  return `Usage: berth <command> [options]

Commands:
  serve                   Run the registry on this machine
  users, robots, anonymous  Manage who may pull, push and delete
  relay                   A local endpoint that pushes any layer size to a remote Berth registry
  push                    Push an OCI layout or docker save archive to a registry
  gc                      Delete what no tag or manifest needs (online; retention rules; --dry-run)
  usage                   Bytes and blob counts per repository
  fsck                    Check that every tag pulls and nothing is left behind (online; --repair)

${serveUsage()}
${ACCOUNTS_USAGE}
${CLIENT_USAGE}
${GC_USAGE}
${FSCK_USAGE}`;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (
    command === undefined ||
    command === '-h' ||
    command === '--help' ||
    rest.includes('--help') ||
    rest.includes('-h')
  ) {
    process.stdout.write(await usageText());
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
      return (await import('./relay.ts')).relay(rest);
    case 'push':
      return (await import('./push.ts')).push(rest);
    case 'gc':
      return (await import('./gc.ts')).gc(rest);
    case 'usage':
      return (await import('./gc.ts')).usage(rest);
    case 'fsck':
      return (await import('./fsck.ts')).fsck(rest);
    default:
      process.stderr.write(`berth: unknown command "${command}"\n\n${await usageText()}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  async (err: unknown) => {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`berth: ${err.message}\n`);
    } else if (err instanceof Error && 'code' in err && err.code === 'EADDRINUSE') {
      process.stderr.write(`berth: the address is already in use; choose another --port\n`);
    } else if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`berth: ${err.message}\n\n${await usageText()}`);
    } else if (err instanceof Error) {
      process.stderr.write(`berth: ${err.message}\n`);
    } else {
      process.stderr.write(`berth: ${JSON.stringify(describeError(err))}\n`);
    }
    process.exit(1);
  },
);
