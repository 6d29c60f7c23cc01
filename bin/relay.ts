import { parseArgs } from 'node:util';
import { dockerCredentials, type Credentials } from '../lib/client/credentials.ts';
import { DEFAULT_TUNING, type UploadTuning } from '../lib/client/blob-upload.ts';
import { createProgress } from '../lib/client/progress.ts';
import { RemoteRegistry } from '../lib/client/remote.ts';
import { startRelay } from '../lib/relay/relay-endpoint.ts';
import { UsageError } from './accounts.ts';

const MiB = 1024 * 1024;

export const CLIENT_USAGE = `Options for relay:
  --registry <url>      The remote Berth registry (https://...); required
  --port <n>            Port on 127.0.0.1 (default 5080); push to localhost:<port>/<repo>:<tag>
Options for push:
  berth push <oci-layout-dir|docker-archive.tar> <registry-host>/<repo>:<tag>
  --insecure            Talk plain HTTP to the registry (a local test registry)
Options for both:
  --username <name>     Log in to the remote as this account (default: the docker config's
                        credentials for its host: auths or credential helpers)
  --password-stdin      Read the password from stdin (with --username)
  --part-size <MiB>     Size of the parts sent straight to storage (default 16)
  --concurrency <n>     Parts sent at once (default 4); memory is about (n + 1) x part size
`;

export const CLIENT_OPTIONS = {
  username: { type: 'string' },
  'password-stdin': { type: 'boolean' },
  'part-size': { type: 'string' },
  concurrency: { type: 'string' },
} as const;

export interface ClientFlags {
  username?: string;
  'password-stdin'?: boolean;
  'part-size'?: string;
  concurrency?: string;
}

/** Credentials from the flags, else the docker configuration; never written anywhere. */
export async function credentialsFor(host: string, flags: ClientFlags): Promise<Credentials | undefined> {
  if (flags['password-stdin'] && !flags.username) throw new UsageError('--password-stdin needs --username');
  if (flags.username) {
    if (!flags['password-stdin']) throw new UsageError('--username needs --password-stdin');
    let password = '';
    for await (const chunk of process.stdin) password += String(chunk);
    return { kind: 'password', username: flags.username, password: password.replace(/\r?\n$/, '') };
  }
  return dockerCredentials(host);
}

export function tuningFrom(flags: ClientFlags): UploadTuning {
  const partMiB =
    flags['part-size'] === undefined ? DEFAULT_TUNING.partSize / MiB : Number(flags['part-size']);
  const concurrency =
    flags.concurrency === undefined ? DEFAULT_TUNING.concurrency : Number(flags.concurrency);
  if (!Number.isInteger(partMiB) || partMiB < 5 || partMiB > 5120) {
    throw new UsageError('--part-size must be a whole number of MiB from 5 to 5120');
  }
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new UsageError('--concurrency must be from 1 to 64');
  }
  return { ...DEFAULT_TUNING, partSize: partMiB * MiB, concurrency };
}

/** `berth relay`: runs until SIGTERM or SIGINT. */
export async function relay(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { registry: { type: 'string' }, port: { type: 'string' }, ...CLIENT_OPTIONS },
  });
  if (!values.registry) throw new UsageError('relay needs --registry <url of the remote registry>');
  let url: URL;
  try {
    url = new URL(values.registry);
  } catch {
    throw new UsageError(`--registry ${values.registry} is not a URL (https://...)`);
  }
  const port = Number(values.port ?? 5080);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError('--port must be a port number');
  const credentials = await credentialsFor(url.host, values);
  const remote = new RemoteRegistry({ url: url.origin, ...(credentials && { credentials }) });
  const progress = createProgress();
  const running = await startRelay({ remote, port, tuning: tuningFrom(values), progress });
  const local = new URL(running.url);
  progress.log(
    `berth relay: ${running.url} -> ${url.origin} (${credentials ? 'with credentials' : 'anonymous'}); push to localhost:${local.port}/<repository>:<tag>`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      void running.close().then(resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  progress.stop();
  return 0;
}
