import { UploadQuotaExceeded } from './errors.ts';

/** Caps per client on what upload sessions may hold open at once (BERTH_UPLOAD_SESSIONS_PER_CLIENT, ...). */
export interface UploadQuotaLimits {
  /** Sessions open at once. */
  readonly sessions: number;
  /** Bytes received into sessions not yet completed or cancelled. */
  readonly bytes: number;
  /** Sessions untouched this long no longer count (they are the janitor's to remove). */
  readonly idleMs: number;
}

interface Entry {
  readonly client: string;
  bytes: number;
  touched: number;
}

/**
 * What each client (the account when authentication is on, else the source address) holds in open
 * upload sessions, counted in this process, so that one client cannot fill the store with abandoned
 * sessions. The local server is the one process of its store, so there the count is exact; on Lambda
 * each container counts the sessions it served (docs/architecture.md, "Upload sessions").
 *
 * A session counts from its creation until it is completed, cancelled or purged here, or until it
 * has been idle for `idleMs` (a session another process removed). Bytes are checked before a request
 * sends more; the request that crosses the cap completes, the next is refused.
 */
export class UploadQuota {
  private readonly sessions = new Map<string, Entry>();
  private readonly byClient = new Map<string, Set<string>>();

  constructor(private readonly limits: UploadQuotaLimits) {}

  /** Refuses a new session when the client is at a cap. */
  check(client: string, now = Date.now()): void {
    const held = this.held(client, now);
    if (held.sessions >= this.limits.sessions) {
      throw new UploadQuotaExceeded(client, 'sessions', held.sessions, this.limits.sessions);
    }
    if (held.bytes >= this.limits.bytes) throw this.overBytes(client, held.bytes);
  }

  /** Counts a new session against its client. */
  open(client: string, id: string, now = Date.now()): void {
    this.sessions.set(id, { client, bytes: 0, touched: now });
    let ids = this.byClient.get(client);
    if (!ids) this.byClient.set(client, (ids = new Set()));
    ids.add(id);
  }

  /**
   * Before a request adds bytes to session `id` (of `client`): refused when the client's open sessions
   * already hold the cap, or would with the `announced` length. A session this process does not know
   * (created elsewhere, or before a restart) starts being counted here.
   */
  admit(client: string, id: string, offset: number, announced: number | undefined, now = Date.now()): number {
    const entry = this.sessions.get(id);
    if (!entry) {
      this.sessions.set(id, { client, bytes: offset, touched: now });
      let ids = this.byClient.get(client);
      if (!ids) this.byClient.set(client, (ids = new Set()));
      ids.add(id);
    } else {
      entry.bytes = offset;
      entry.touched = now;
    }
    const held = this.held(client, now);
    const after = held.bytes + (announced ?? 0);
    if (held.bytes >= this.limits.bytes || after > this.limits.bytes) {
      throw this.overBytes(client, after);
    }
    return this.limits.bytes - held.bytes;
  }

  /** The answer to a request that sent `received` bytes where its client had room for `remaining`. */
  overflow(client: string, remaining: number, received: number): UploadQuotaExceeded {
    return this.overBytes(client, this.limits.bytes - remaining + received);
  }

  private overBytes(client: string, bytes: number): UploadQuotaExceeded {
    return new UploadQuotaExceeded(client, 'bytes', bytes, this.limits.bytes);
  }

  /** Session `id` now holds `bytes`. */
  update(id: string, bytes: number, now = Date.now()): void {
    const entry = this.sessions.get(id);
    if (entry) {
      entry.bytes = bytes;
      entry.touched = now;
    }
  }

  /** The session is over (completed, cancelled, purged): it no longer counts. */
  close(id: string): void {
    const entry = this.sessions.get(id);
    if (!entry) return;
    this.sessions.delete(id);
    const ids = this.byClient.get(entry.client);
    ids?.delete(id);
    if (ids?.size === 0) this.byClient.delete(entry.client);
  }

  private held(client: string, now: number): { sessions: number; bytes: number } {
    let sessions = 0;
    let bytes = 0;
    for (const id of this.byClient.get(client) ?? []) {
      const entry = this.sessions.get(id)!;
      if (now - entry.touched >= this.limits.idleMs) {
        this.close(id);
        continue;
      }
      sessions++;
      bytes += entry.bytes;
    }
    return { sessions, bytes };
  }
}
