/** A registry lifetime: `<n>h`, `<n>d` or `<n>w` (`12h`, `7d`, `2w`). */
const TTL = /^(\d{1,4})([hdw])$/;
const UNIT_MS = { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;

/** At least an hour, so a deployment finishes well before its registry expires; at most a year. */
export const MIN_TTL_MS = UNIT_MS.h;
export const MAX_TTL_MS = 366 * UNIT_MS.d;

export function parseTtl(text: string): number {
  const m = TTL.exec(text.trim());
  if (!m) throw new Error(`ttl "${text}" is not a duration like 12h, 7d or 2w`);
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  if (ms < MIN_TTL_MS || ms > MAX_TTL_MS) throw new Error(`ttl "${text}" must be between 1h and 366d`);
  return ms;
}

/**
 * When a registry deployed at `now` with `ttl` expires, rounded up to the next whole minute
 * (EventBridge Scheduler's one-time schedules fire at a minute).
 */
export function expiryFor(ttl: string, now: Date): Date {
  const at = now.getTime() + parseTtl(ttl);
  return new Date(Math.ceil(at / 60_000) * 60_000);
}

/** EventBridge Scheduler's one-time expression, in UTC: `at(2026-12-05T14:30:00)`. */
export function atExpression(when: Date): string {
  return `at(${when.toISOString().slice(0, 19)})`;
}
