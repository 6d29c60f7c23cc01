import { parseArgs } from 'node:util';
import { parseConfig } from '../lib/config/config.ts';
import { flagHelp } from '../lib/config/docs.ts';
import { configFlags, configInput, flagInput } from '../lib/config/sources.ts';
import { fsck as check } from '../lib/fsck/fsck.ts';
import { formatReport } from '../lib/fsck/format.ts';
import { exitCodeOf } from '../lib/fsck/report.ts';
import { InMemoryHashStates } from '../lib/registry/hashing.ts';
import { openStore } from '../lib/setup/registry.ts';
import { describeError } from '../lib/logging/logger.ts';

export const FSCK_USAGE = `Options for fsck (safe while \`berth serve\` runs on the same store; docs/fsck.md):
  --verify-digests      Also read every blob's data back and check its digest (reads every byte)
  --repair              Mend what is safe to mend: catalog entries, manifests from their tags' copies,
                        referrer entries, stale links, upload leftovers older than the upload TTL.
                        Never deletes a blob, a manifest or a tag
  --json                Print the report as JSON (its shape is in docs/fsck.md)
${flagHelp('fsck', (option) => option.flag?.commands?.includes('serve') !== true)}
  --data-dir, --storage, --log-level   The store, as for serve (S3 settings from BERTH_S3_*; the
                        upload TTL from BERTH_UPLOAD_TTL)
  Exit status: 0 nothing broken or inconsistent (leftovers may remain), 1 something is broken,
  2 the check could not run, 3 inconsistencies remain (run with --repair)
`;

/** `berth fsck`: checks the store and prints what it found (exit status: see FSCK_USAGE). */
export async function fsck(argv: string[]): Promise<number> {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        ...configFlags('fsck'),
        'verify-digests': { type: 'boolean' },
        repair: { type: 'boolean' },
        json: { type: 'boolean' },
      },
    });
    const config = parseConfig(configInput(process.env, flagInput('fsck', values)));
    const store = await openStore(config, { hashes: new InMemoryHashStates() });
    const report = await check(store, {
      uploadTtlMs: config.uploadTtlSeconds * 1000,
      graceMs: config.gcGraceSeconds * 1000,
      verifyDigests: values['verify-digests'] === true,
      repair: values.repair === true,
    });
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    return exitCodeOf(report);
  } catch (err) {
    const message = err instanceof Error ? err.message : JSON.stringify(describeError(err));
    process.stderr.write(`berth fsck: ${message}\n`);
    return 2;
  }
}
