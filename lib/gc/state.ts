import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import * as z from 'zod';
import { parseStoredJson } from '../util/json.ts';
import { PreconditionFailed, type StorageDriver } from '../storage/port.ts';
import { keys } from '../registry/keys.ts';

/** Where garbage collection keeps its progress, its lock and what it set aside (agreed with infra: `gc/`). */
export const GC_KEYS = {
  state: 'gc/state.json',
  lock: 'gc/lock.json',
  lastRun: 'gc/last-run.json',
  /** The usage report is the registry's (lib/registry/usage.ts), kept under `gc/` with the rest. */
  usage: keys.usage,
  quarantine: (runId: string, key: string) => `gc/quarantine/${runId}/${key}`,
  quarantinePrefix: (runId: string) => `gc/quarantine/${runId}/`,
} as const;

/** `gc/quarantine/<run>/<key>` read back: the run that set the copy aside, and the original key. */
export function parseQuarantineKey(key: string): { runId: string; original: string } | undefined {
  const match = /^gc\/quarantine\/([^/]+)\/(.+)$/.exec(key);
  return match ? { runId: match[1]!, original: match[2]! } : undefined;
}

/** Something set aside: deleted from its key, a copy kept until the run is sure nobody needs it. */
export interface Quarantined {
  readonly kind: 'manifest' | 'referrer' | 'link' | 'blob' | 'catalog';
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

export type Phase =
  'mark' | 'catalog' | 'uploads' | 'blobs' | 'orphans' | 'quarantine' | 'settle' | 'verify' | 'finish';

export interface Deletion {
  readonly kind:
    | 'tag'
    | 'manifest'
    | 'referrer'
    | 'link'
    | 'blob'
    | 'catalog'
    | 'upload'
    | 'data'
    | 'multipart'
    | 'tail'
    | 'temp';
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
  /** Repositories that held a tag or a manifest at the mark (their catalog entries stay). */
  contentRepos?: string[];
  /** Keys written to repair the layout (a missing catalog entry). */
  repaired?: string[];
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

/** A saved state and the etag it was saved with: the next save is conditional on it. */
export interface SavedState {
  readonly state: GcState;
  readonly etag: string | undefined;
}

export async function loadState(storage: StorageDriver): Promise<SavedState | undefined> {
  const object = await storage.get(GC_KEYS.state);
  if (!object) return undefined;
  const parsed = stateSchema.safeParse(parseStoredJson(object.body));
  return parsed.success ? { state: parsed.data as unknown as GcState, etag: object.etag } : undefined;
}

/** Another collector wrote the state or took the lock since this one last did: this one stops. */
export class GcPreempted extends Error {
  constructor(what: string) {
    super(`another garbage collection took over (${what}); this one stops`);
    this.name = 'GcPreempted';
  }
}

/**
 * Saves progress, conditionally on the etag of the last save (or on there being none): two
 * collectors that both believe they hold the lock cannot both go on. Returns the new etag.
 */
export async function saveState(
  storage: StorageDriver,
  state: GcState,
  etag: string | undefined,
): Promise<string> {
  try {
    const info = await storage.put(GC_KEYS.state, new TextEncoder().encode(JSON.stringify(state)), {
      contentType: 'application/json',
      ...(etag === undefined ? { ifNoneMatch: '*' as const } : { ifMatch: etag }),
    });
    return info.etag;
  } catch (err) {
    if (err instanceof PreconditionFailed) throw new GcPreempted('its progress was saved by another run');
    throw err;
  }
}

/** Who holds the lock: enough for a person to find the run, and for a run on the same host to see it died. */
export interface LockHolder {
  readonly host: string;
  readonly pid: number;
  readonly since: string;
}

export interface LockInfo {
  readonly token: string;
  /** Expiry on the holder's clock (ms). */
  readonly until: number;
  readonly holder?: LockHolder;
}

/** A lock this run holds: renewed while it works, lost if another run took it over. */
export interface HeldLock {
  readonly token: string;
  etag: string;
}

const lockSchema = z.looseObject({ token: z.string(), until: z.number() });

function readLock(body: Uint8Array): LockInfo | undefined {
  const parsed = lockSchema.safeParse(parseStoredJson(body));
  return parsed.success ? (parsed.data as unknown as LockInfo) : undefined;
}

/** Whether the holder is a process on this host that no longer exists (a killed `berth gc`). */
function holderDied(holder: LockHolder | undefined): boolean {
  if (!holder || holder.host !== hostname() || holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * One collector at a time: a lock object created only if absent, with an expiry so that a run that
 * died does not block the next one for longer than its lease (the run renews it while it works). A
 * lock whose holder was a process on this host that no longer exists is taken over at once.
 * Answers the lock, or the current holder's lock when another run holds it.
 */
export async function acquireLock(
  storage: StorageDriver,
  leaseMs: number,
  now: number,
): Promise<{ held: HeldLock } | { busy: LockInfo }> {
  const token = randomUUID();
  const holder: LockHolder = { host: hostname(), pid: process.pid, since: new Date(now).toISOString() };
  const body = () => new TextEncoder().encode(JSON.stringify({ token, until: now + leaseMs, holder }));
  try {
    const info = await storage.put(GC_KEYS.lock, body(), {
      ifNoneMatch: '*',
      contentType: 'application/json',
    });
    return { held: { token, etag: info.etag } };
  } catch (err) {
    if (!(err instanceof PreconditionFailed)) throw err;
  }
  const existing = await storage.get(GC_KEYS.lock);
  const held = existing && readLock(existing.body);
  if (held && held.until > now && !holderDied(held.holder)) return { busy: held };
  try {
    const info = existing
      ? await storage.put(GC_KEYS.lock, body(), { ifMatch: existing.etag, contentType: 'application/json' })
      : await storage.put(GC_KEYS.lock, body(), { ifNoneMatch: '*', contentType: 'application/json' });
    return { held: { token, etag: info.etag } };
  } catch (err) {
    if (!(err instanceof PreconditionFailed)) throw err;
    const now2 = await storage.get(GC_KEYS.lock);
    const other = now2 && readLock(now2.body);
    return { busy: other ?? { token: '', until: now + leaseMs } };
  }
}

/** Extends the lease of a lock this run holds; GcPreempted if another run has taken it over. */
export async function renewLock(
  storage: StorageDriver,
  lock: HeldLock,
  leaseMs: number,
  now: number,
): Promise<void> {
  const existing = await storage.get(GC_KEYS.lock);
  const current = existing && readLock(existing.body);
  if (!existing || current?.token !== lock.token) throw new GcPreempted('its lock is held by another run');
  try {
    const info = await storage.put(
      GC_KEYS.lock,
      new TextEncoder().encode(JSON.stringify({ ...current, until: now + leaseMs })),
      { ifMatch: existing.etag, contentType: 'application/json' },
    );
    lock.etag = info.etag;
  } catch (err) {
    if (err instanceof PreconditionFailed) throw new GcPreempted('its lock is held by another run');
    throw err;
  }
}

export async function releaseLock(storage: StorageDriver, token: string): Promise<void> {
  const existing = await storage.get(GC_KEYS.lock);
  const held = existing ? readLock(existing.body) : undefined;
  if (held?.token === token) await storage.delete(GC_KEYS.lock);
}
