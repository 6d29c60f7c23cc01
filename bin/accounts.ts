import { parseArgs } from 'node:util';
import { openAuthStore } from '../lib/auth/auth-store.ts';
import { environmentValue } from '../lib/config/sources.ts';
import { addUser, createRobot, listAccounts, removeAccount, setAnonymousPull } from '../lib/auth/admin.ts';

export const ACCOUNTS_USAGE = `Accounts (all act on --auth-file <file> / BERTH_AUTH_FILE, created on first use, or on a
deployed registry's SSM parameter with --auth-parameter <name or ARN> / BERTH_AUTH_PARAMETER
(the AuthParameter output), using your AWS credentials in BERTH_AWS_REGION or AWS_REGION; a
deployed registry picks changes up within BERTH_AUTH_CACHE_SECONDS):
  berth users add <name> --password-stdin [--grant '<pattern>:<actions>']...
                        Add a user, or replace its password and grants. Grants like
                        'team-a/*:pull,push', '*:pull', and 'registry:catalog:*' for the catalog
  berth users remove <name>
  berth users list
  berth robots create <name> [--grant ...]... [--expires 30d]
                        A CI account with a generated secret, printed once (default expiry 90d)
  berth robots revoke <name>
  berth robots list
  berth anonymous set [<pattern>...]
                        Repositories anyone may pull without logging in (none: no anonymous pull)
`;

/** `berth users|robots|anonymous ...`. */
export async function accounts(group: string, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'auth-file': { type: 'string' },
      'auth-parameter': { type: 'string' },
      'auth-secret': { type: 'string' },
      'password-stdin': { type: 'boolean' },
      grant: { type: 'string', multiple: true },
      expires: { type: 'string' },
    },
  });
  if (values['auth-secret'] !== undefined || process.env.BERTH_AUTH_SECRET) {
    throw new UsageError(
      'the accounts of a deployed registry moved from Secrets Manager to an SSM parameter: use --auth-parameter <name> (the stack\'s AuthParameter output); see "Migrating from Secrets Manager" in docs/deployment.md',
    );
  }
  const env = process.env;
  const store = openAuthStore(
    {
      authFile: values['auth-file'] ?? environmentValue(env, 'authFile'),
      authParameter: values['auth-parameter'] ?? environmentValue(env, 'authParameter'),
    },
    environmentValue(env, 'awsRegion'),
  );
  if (!store) {
    throw new UsageError(
      "name the auth file with --auth-file (or BERTH_AUTH_FILE), or a deployed registry's parameter with --auth-parameter",
    );
  }
  const [action, name, ...rest] = positionals;
  const grants = values.grant ?? [];
  const needName = () => {
    if (!name) throw new UsageError(`berth ${group} ${action} needs an account name`);
    return name;
  };
  switch (`${group} ${action}`) {
    case 'users add': {
      if (!values['password-stdin'])
        throw new UsageError('give the password on standard input with --password-stdin');
      const password = (await readStdin()).replace(/\r?\n$/, '');
      await addUser(store, needName(), password, grants);
      process.stderr.write(`user ${name} saved in ${store.description}\n`);
      return 0;
    }
    case 'users remove':
      await removeAccount(store, needName(), 'user');
      return 0;
    case 'robots create': {
      const robot = await createRobot(store, needName(), grants, parseDuration(values.expires ?? '90d'));
      process.stdout.write(JSON.stringify(robot) + '\n');
      process.stderr.write(
        `the secret is shown once; log in with: docker login -u ${robot.name} --password-stdin\n`,
      );
      return 0;
    }
    case 'robots revoke':
      await removeAccount(store, needName(), 'robot');
      return 0;
    case 'users list':
    case 'robots list':
      for (const account of await listAccounts(store, group === 'users' ? 'user' : 'robot')) {
        process.stdout.write(JSON.stringify(account) + '\n');
      }
      return 0;
    case 'anonymous set':
      await setAnonymousPull(
        store,
        [name, ...rest].filter((p): p is string => p !== undefined),
      );
      return 0;
    default:
      throw new UsageError(`unknown command "berth ${group} ${action ?? ''}"`);
  }
}

export class UsageError extends Error {}

function parseDuration(text: string): number {
  const match = /^(\d+)([smhd])$/.exec(text);
  if (!match) throw new UsageError(`--expires takes a duration like 12h or 30d, not "${text}"`);
  return Number(match[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[match[2] as 's' | 'm' | 'h' | 'd'];
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
