import { randomUUID } from 'node:crypto';
import * as z from 'zod';
import { parseStoredJson } from '../registry/json.ts';
import { PreconditionFailed, type StorageDriver } from '../storage/port.ts';

/** Where garbage collection keeps its progress, its lock and what it set aside (agreed with infra: `gc/`). */
export const GC_KEYS = {
  state: 'gc/state.json',
  lock: 'gc/lock.json',
  lastRun: 'gc/last-run.json',
  usage: 'gc/usage.json',
  quarantine: (runId: string, key: string) => `gc/quarantine/${runId}/${key}`,
  quarantinePrefix: (runId: string) => `gc/quarantine/${runId}/`,
} as const;

/** Something set aside: deleted from its key, a copy kept until the run is sure nobody needs it. */
export interface Quarantined {
  readonly kind: 'manifest' | 'referrer' | 'link' | 'blob';
  readonly key: string;
  readonly repo?: string;
  readonly digest?: string;
  /** Blob or manifest bytes freed when it goes for good. */
  readonly size: number;
  /** A blob completed from a multipart upload: its data object, deleted when the blob goes. */
  readonly dataKey?: string;
  /** A manifest's subject (its referrer entry is quarantined with it). */
  readonly subject?: string;
}

export type Phase = 'mark' | 'uploads' | 'blobs' | 'orphans' | 'quarantine' | 'settle' | 'verify' | 'finish';

export interface Deletion {
  readonly kind: 'tag' | 'manifest' | 'referrer' | 'link' | 'blob' | 'upload' | 'data' | 'multipart' | 'tail';
  readonly key: string;
  readonly repo?: string;
  readonly digest?: string;
  readonly size: number;
}

/** Everything a run knows between invocations (the janitor stops and resumes within Lambda's 15 minutes). */
export interface GcState {
  v: 1;
  runId: string;
  /** Time the run began, on the store's clock (storeTime): ages are measured against it. */
  startedAt: number;
  phase: Phase;
  /** Where the current phase's listing resumes. */
  cursor?: string;
  /** Digests of blobs something still needs. */
  keepBlobs: string[];
  /** Planned deletions, decided by the mark: quarantined in the quarantine phase. */
  plan: Deletion[];
  /** Upload session ids that existed when the sweep of uploads began, and when that was (store's clock). */
  sessions: string[];
  sessionsAt?: number;
  /** Data objects a blob pointer names. */
  namedData: string[];
  quarantined: Quarantined[];
  /** When the last item was set aside. */
  quarantinedAt?: number;
  /** Found needed again by the verification: keys of quarantined items to put back. */
  restore: string[];
  /** Blob digest -> link keys found in the verification (to re-point them after a re-upload). */
  links: Record<string, string[]>;
  /** Done and final: tags deleted, upload leftovers removed. */
  done: Deletion[];
  restored: number;
}

const stateSchema = z.looseObject({ v: z.literal(1), runId: z.string(), phase: z.string() });

export function newState(now: number): GcState {
  return {
    v: 1,
    runId: `${new Date(now).toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`,
    startedAt: now,
    phase: 'mark',
    keepBlobs: [],
    plan: [],
    sessions: [],
    namedData: [],
    quarantined: [],
    restore: [],
    links: {},
    done: [],
    restored: 0,
  };
}

export async function loadState(storage: StorageDriver): Promise<GcState | undefined> {
  const object = await storage.get(GC_KEYS.state);
  if (!object) return undefined;
  const parsed = stateSchema.safeParse(parseStoredJson(object.body));
  return parsed.success ? (parsed.data as unknown as GcState) : undefined;
}

export async function saveState(storage: StorageDriver, state: GcState): Promise<void> {
  await storage.put(GC_KEYS.state, new TextEncoder().encode(JSON.stringify(state)), {
    contentType: 'application/json',
  });
}

/**
 * One collector at a time: a lock object created only if absent, with an expiry so that a run that
 * died does not block the next one for longer than its lease.
 */
export async function acquireLock(
  storage: StorageDriver,
  leaseMs: number,
  now: number,
): Promise<string | undefined> {
  const token = randomUUID();
  const body = () => new TextEncoder().encode(JSON.stringify({ token, until: now + leaseMs }));
  try {
    await storage.put(GC_KEYS.lock, body(), { ifNoneMatch: '*', contentType: 'application/json' });
    return token;
  } catch (err) {
    if (!(err instanceof PreconditionFailed)) throw err;
  }
  const existing = await storage.get(GC_KEYS.lock);
  const held = existing ? (parseStoredJson(existing.body) as { until?: unknown } | undefined) : undefined;
  if (existing && typeof held?.until === 'number' && held.until > now) return undefined;
  try {
    if (existing)
      await storage.put(GC_KEYS.lock, body(), { ifMatch: existing.etag, contentType: 'application/json' });
    else await storage.put(GC_KEYS.lock, body(), { ifNoneMatch: '*', contentType: 'application/json' });
    return token;
  } catch (err) {
    if (err instanceof PreconditionFailed) return undefined;
    throw err;
  }
}

export async function releaseLock(storage: StorageDriver, token: string): Promise<void> {
  const existing = await storage.get(GC_KEYS.lock);
  const held = existing ? (parseStoredJson(existing.body) as { token?: unknown } | undefined) : undefined;
  if (held?.token === token) await storage.delete(GC_KEYS.lock);
}
