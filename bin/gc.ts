import { parseArgs } from 'node:util';
import { parseConfig } from '../lib/config/config.ts';
import { flagHelp } from '../lib/config/docs.ts';
import { configFlags, configInput, flagInput } from '../lib/config/sources.ts';
import { collectGarbage, countByKind, MIN_SETTLE_MS } from '../lib/gc/collector.ts';
import { gcOptionsOf } from '../lib/setup/gc.ts';
import type { LockInfo } from '../lib/gc/state.ts';
import { formatDuration, parseDuration } from '../lib/gc/duration.ts';
import { formatUsage, Usage } from '../lib/registry/usage.ts';
import { formatBytes } from '../lib/logging/format.ts';
import { MANIFEST_CHECK_WINDOW_MS } from '../lib/registry/manifests.ts';
import { InMemoryHashStates } from '../lib/registry/hashing.ts';
import { createStorage, openStore } from '../lib/setup/registry.ts';
import { UsageError } from './accounts.ts';

export const GC_USAGE = `Options for gc (safe while \`berth serve\` runs on the same store; docs/gc.md):
  --dry-run             Print what would be deleted and the bytes freed; change nothing
  --delete-untagged     Also delete manifests no tag reaches (except an index's children and
                        referrers of kept manifests)
  --settle <duration>   How long set-aside objects wait before being deleted for good
                        (default 5m; the least is ${formatDuration(MANIFEST_CHECK_WINDOW_MS + 5000)})
${flagHelp('gc', (option) => option.flag?.commands?.includes('serve') !== true)}
  --data-dir, --storage, --log-level   The store, as for serve (S3 settings from BERTH_S3_*)

Options for usage:
  --json                Print the report as JSON
  --save                Also store it where GET /v2/_berth/v1/usage serves it from
  --data-dir, --storage   The store, as for serve
`;

/** `berth gc`: one collection, start to finish (waiting out the settle period), or a dry run. */
export async function gc(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...configFlags('gc'),
      'dry-run': { type: 'boolean' },
      'delete-untagged': { type: 'boolean' },
      settle: { type: 'string' },
    },
  });
  const config = parseConfig(
    configInput(
      process.env,
      usageErrors(() => flagInput('gc', values)),
    ),
  );
  const settle = values.settle;
  const settleMs = typeof settle === 'string' ? duration(settle) : MIN_SETTLE_MS;
  if (settleMs < MANIFEST_CHECK_WINDOW_MS + 5000) {
    throw new UsageError(
      `--settle must be at least ${formatDuration(MANIFEST_CHECK_WINDOW_MS + 5000)}: pushes may take that long between checking a blob and referencing it`,
    );
  }
  const dryRun = values['dry-run'] === true;
  const store = await openStore(config, { hashes: new InMemoryHashStates() });
  const result = await collectGarbage(store, {
    ...gcOptionsOf(config),
    settleMs,
    dryRun,
    deleteUntagged: values['delete-untagged'] === true,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    onProgress: (message, fields) => {
      if (config.logLevel !== 'silent' && fields?.seconds !== undefined) {
        process.stderr.write(`${message} (${String(fields.seconds)} s)\n`);
      }
    },
  });
  if (result.status === 'locked') {
    process.stderr.write(`berth: ${describeLock(result.lock)}\n`);
    return 1;
  }
  const verb = dryRun ? 'would delete' : 'deleted';
  for (const d of result.deleted) {
    process.stdout.write(`${verb} ${d.kind} ${d.key}${d.size > 0 ? ` (${formatBytes(d.size)})` : ''}\n`);
  }
  const counts = Object.entries(countByKind(result.deleted))
    .map(([kind, n]) => `${n} ${kind}${n === 1 ? '' : 's'}`)
    .join(', ');
  process.stdout.write(
    `${dryRun ? 'dry run: would free' : 'freed'} ${formatBytes(result.bytesFreed)} (${result.bytesFreed} bytes)` +
      `${counts ? `: ${counts}` : ': nothing to collect'}` +
      `${result.restored > 0 ? `; ${result.restored} set-aside objects were needed again and put back` : ''}\n`,
  );
  if (!dryRun) await store.registry.usage.save(await store.registry.usage.compute());
  return 0;
}

/** `berth usage`: bytes and blobs per repository. */
export async function usage(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...configFlags('usage'), json: { type: 'boolean' }, save: { type: 'boolean' } },
  });
  const config = parseConfig(configInput(process.env, flagInput('usage', values)));
  const usage = new Usage(await createStorage(config));
  const report = await usage.compute();
  if (values.save) await usage.save(report);
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatUsage(report));
  return 0;
}

/** Who holds the collection lock and until when, so a person can tell a live run from a dead one. */
function describeLock(lock: LockInfo | undefined): string {
  if (!lock || !lock.until) return 'another garbage collection took over this store; try again later';
  const holder = lock.holder
    ? ` (started ${lock.holder.since} by pid ${lock.holder.pid} on ${lock.holder.host})`
    : '';
  const left = Math.max(0, Math.ceil((lock.until - Date.now()) / 1000));
  return `another garbage collection is running on this store${holder}; its lock expires at ${new Date(lock.until).toISOString()} (in ${left} s) unless it keeps working, so if it died, try again then`;
}

function duration(text: string): number {
  return usageErrors(() => parseDuration(text));
}

/** A flag's value people got wrong is a usage error (its message says what is wrong). */
function usageErrors<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
