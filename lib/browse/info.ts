import * as z from 'zod';
import { GC_KEYS } from '../gc/state.ts';
import type { ImmutableRule, RetentionRule } from '../registry/tag-policy.ts';
import { parseStoredJson } from '../util/json.ts';
import type { StorageDriver } from '../storage/port.ts';

/** What the web UI is told about this registry, from its configuration. */
export interface BrowseSettings {
  /** A name to show (the team, on AWS). */
  readonly name?: string;
  /** When an ephemeral registry deletes itself (BERTH_EXPIRES_AT, set by the stack's ttl). */
  readonly expiresAt?: string;
  readonly storage: string;
  readonly version: string;
  readonly retention: readonly RetentionRule[];
  readonly immutable: readonly ImmutableRule[];
}

export interface LastGcRun {
  readonly runId: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly deleted: Record<string, number>;
  readonly bytesFreed: number;
  readonly restored: number;
}

const lastRunSchema = z.object({
  runId: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  deleted: z.record(z.string(), z.number()),
  bytesFreed: z.number(),
  restored: z.number(),
});

/** The last finished garbage collection (gc/last-run.json), if any. */
export async function lastGcRun(storage: StorageDriver): Promise<LastGcRun | undefined> {
  const stored = await storage.get(GC_KEYS.lastRun);
  const parsed = stored ? lastRunSchema.safeParse(parseStoredJson(stored.body)) : undefined;
  return parsed?.success ? parsed.data : undefined;
}
