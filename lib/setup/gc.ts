import { readFileSync } from 'node:fs';
import type { Config } from '../config/config.ts';
import { MIN_SETTLE_MS, type GcOptions } from '../gc/collector.ts';
import { parseRetention, type ImmutableRule, type RetentionRule } from '../registry/tag-policy.ts';

/** The immutable-tag rules the configuration names (BERTH_IMMUTABLE_TAGS). */
export function immutableTagsOf(config: Pick<Config, 'immutableTags'>): ImmutableRule[] {
  return config.immutableTags ?? [];
}

/**
 * The retention rules: BERTH_RETENTION's JSON, else the file BERTH_RETENTION_FILE / --retention-file
 * names (read once, at start).
 */
export function retentionOf(config: Pick<Config, 'retention' | 'retentionFile'>): RetentionRule[] {
  if (config.retention) return config.retention;
  if (!config.retentionFile) return [];
  let text: string;
  try {
    text = readFileSync(config.retentionFile, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the retention file ${config.retentionFile}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    return parseRetention(text);
  } catch (err) {
    throw new Error(`${config.retentionFile}: ${(err as Error).message}`, { cause: err });
  }
}

/** Collection options from the configuration; the caller adds what is per run (dry run, time limit). */
export function gcOptionsOf(
  config: Config,
): Pick<
  GcOptions,
  'graceMs' | 'retention' | 'immutable' | 'uploadTtlMs' | 'settleMs' | 'deleteUntagged' | 'dryRun'
> {
  return {
    graceMs: config.gcGraceSeconds * 1000,
    retention: retentionOf(config),
    immutable: immutableTagsOf(config),
    uploadTtlMs: config.uploadTtlSeconds * 1000,
    settleMs: MIN_SETTLE_MS,
    deleteUntagged: false,
    dryRun: false,
  };
}
