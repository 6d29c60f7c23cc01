import { parseArgs } from 'node:util';
import { createProgress } from '../lib/client/progress.ts';
import { formatBytes } from '../lib/logging/format.ts';
import { RemoteRegistry } from '../lib/client/remote.ts';
import { isLoopback } from '../lib/config/config.ts';
import { parseName } from '../lib/oci/names.ts';
import { openImage } from '../lib/push/image-source.ts';
import { pushImage } from '../lib/push/push.ts';
import { UsageError } from './accounts.ts';
import { CLIENT_OPTIONS, credentialsFor, tuningFrom } from './relay.ts';

/** `berth push <oci-layout-dir|docker-archive.tar> <host>/<repo>:<tag>`. */
export async function push(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { insecure: { type: 'boolean' }, ...CLIENT_OPTIONS },
  });
  const [source, ref] = positionals;
  if (!source || !ref || positionals.length !== 2) {
    throw new UsageError('push needs <oci-layout-dir|docker-archive.tar> <registry-host>/<repository>:<tag>');
  }
  const target = parseRef(ref);
  const scheme = values.insecure || isLoopback(target.host.replace(/:\d+$/, '')) ? 'http' : 'https';
  const credentials = await credentialsFor(target.host, values);
  const remote = new RemoteRegistry({
    url: `${scheme}://${target.host}`,
    ...(credentials && { credentials }),
  });
  const image = await openImage(source);
  const progress = createProgress();
  const started = Date.now();
  try {
    const summary = await pushImage(
      image,
      { remote, repo: target.repo, reference: target.reference },
      progress,
      tuningFrom(values),
    );
    progress.stop();
    const seconds = (Date.now() - started) / 1000;
    process.stderr.write(
      `pushed ${target.host}/${target.repo}:${target.reference} ${summary.digest}: ${summary.uploaded} blobs uploaded (${formatBytes(summary.bytes)}), ${summary.skipped} already there, ${seconds.toFixed(1)} s\n`,
    );
    process.stdout.write(`${summary.digest}\n`);
    return 0;
  } finally {
    progress.stop();
  }
}

/** `host[:port]/repo[:tag|@digest]`; the host is required (there is no default registry). */
export function parseRef(ref: string): { host: string; repo: string; reference: string } {
  const slash = ref.indexOf('/');
  if (slash < 0) throw new UsageError(`${ref}: name the registry host, e.g. registry.example.com/team/app:1`);
  const host = ref.slice(0, slash);
  let rest = ref.slice(slash + 1);
  let reference = 'latest';
  const at = rest.indexOf('@');
  if (at >= 0) {
    reference = rest.slice(at + 1);
    rest = rest.slice(0, at);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon >= 0) {
      reference = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
    }
  }
  return { host, repo: parseName(rest), reference };
}
