import { describe, expect, it } from 'vitest';
import { DEFAULT_THROTTLE, LoginThrottle, type ThrottleSettings } from '../../lib/auth/login-throttle.ts';

/** A throttle on a clock the test moves. */
function throttle(settings: Partial<ThrottleSettings> = {}) {
  const clock = { now: 1_000_000 };
  const t = new LoginThrottle({ ...DEFAULT_THROTTLE, ...settings }, () => clock.now);
  return { t, clock };
}

const fail = async () => ({ ok: false, value: 'no' });
const pass = async () => ({ ok: true, value: 'yes' });

describe('login throttling', () => {
  it('locks an account from one address after five failures, and not from another address', async () => {
    const { t } = throttle();
    for (let i = 0; i < 5; i++) {
      expect(await t.attempt('alice', '10.0.0.2', fail)).toMatchObject({ outcome: 'checked', ok: false });
    }
    let checked = false;
    const refused = await t.attempt('alice', '10.0.0.2', async () => {
      checked = true;
      return { ok: true, value: 'x' };
    });
    expect(refused).toMatchObject({
      outcome: 'throttled',
      scope: 'account',
      retryAfterSeconds: 1,
      first: true,
    });
    expect(checked).toBe(false);
    // The real user, elsewhere: checked at once.
    expect(await t.attempt('alice', '10.0.0.9', pass)).toMatchObject({ outcome: 'checked', ok: true });
    // Another account from the attacker's address: its own count.
    expect(await t.attempt('bob', '10.0.0.2', pass)).toMatchObject({ outcome: 'checked', ok: true });
  });

  it('doubles the lock with each further failure, up to the maximum, and says only the first refusal is new', async () => {
    const { t, clock } = throttle();
    for (let i = 0; i < 5; i++) await t.attempt('alice', 'a', fail);
    const locks: number[] = [];
    for (let i = 0; i < 14; i++) {
      const refused = await t.attempt('alice', 'a', fail);
      expect(refused.outcome).toBe('throttled');
      locks.push(refused.outcome === 'throttled' ? refused.retryAfterSeconds : 0);
      const again = await t.attempt('alice', 'a', fail);
      expect(again).toMatchObject({ outcome: 'throttled', first: false });
      clock.now += locks.at(-1)! * 1000;
      expect(await t.attempt('alice', 'a', fail)).toMatchObject({ outcome: 'checked' });
    }
    expect(locks.slice(0, 6)).toEqual([1, 2, 4, 8, 16, 32]);
    expect(Math.max(...locks)).toBe(15 * 60);
  });

  it('forgets failures after a success', async () => {
    const { t } = throttle();
    for (let i = 0; i < 4; i++) await t.attempt('alice', 'a', fail);
    await t.attempt('alice', 'a', pass);
    for (let i = 0; i < 4; i++) {
      expect(await t.attempt('alice', 'a', fail)).toMatchObject({ outcome: 'checked' });
    }
    expect(t.size.pairs).toBe(1);
  });

  it('spaces the checks of an address that fails for many accounts, then locks it for the rest of the window', async () => {
    const { t, clock } = throttle({ sourceSlowAfter: 5, sourceFailures: 10, windowMs: 60_000 });
    for (let i = 0; i < 5; i++) await t.attempt(`user${i}`, '10.0.0.2', fail);
    // One check a second from here on.
    expect(await t.attempt('user5', '10.0.0.2', fail)).toMatchObject({ outcome: 'checked' });
    expect(await t.attempt('user6', '10.0.0.2', fail)).toMatchObject({
      outcome: 'throttled',
      scope: 'source',
      retryAfterSeconds: 1,
    });
    expect(await t.attempt('user6', '10.0.0.3', pass)).toMatchObject({ outcome: 'checked' });
    for (let i = 6; i < 10; i++) {
      clock.now += 1000;
      expect(await t.attempt(`user${i}`, '10.0.0.2', fail)).toMatchObject({ outcome: 'checked' });
    }
    // Ten failures: locked until the window that began with the first one ends.
    clock.now += 1000;
    expect(await t.attempt('someone-new', '10.0.0.2', pass)).toMatchObject({
      outcome: 'throttled',
      scope: 'source',
      retryAfterSeconds: 55,
    });
    expect(await t.attempt('someone-new', '10.0.0.3', pass)).toMatchObject({ outcome: 'checked' });
    clock.now += 55_001;
    expect(await t.attempt('someone-new', '10.0.0.2', pass)).toMatchObject({ outcome: 'checked' });
  });

  it('runs at most the free failures at once for a burst on one account, refusing the rest unchecked', async () => {
    const { t } = throttle();
    let running = 0;
    let checks = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = async () => {
      checks++;
      running++;
      await gate;
      running--;
      return { ok: false, value: 'no' };
    };
    const burst = Array.from({ length: 100 }, () => t.attempt('alice', '10.0.0.2', slow));
    await new Promise((r) => setTimeout(r, 10));
    release();
    const results = await Promise.all(burst);
    expect(checks).toBe(5);
    expect(running).toBe(0);
    expect(results.filter((r) => r.outcome === 'throttled')).toHaveLength(95);
  });

  it('keeps at most a few checks pending per address, whatever the accounts', async () => {
    const { t } = throttle({ concurrency: 1, perSourcePending: 8 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const burst = Array.from({ length: 30 }, (_, i) =>
      t.attempt(`user${i}`, '10.0.0.2', async () => {
        await gate;
        return { ok: false, value: 'no' };
      }),
    );
    await new Promise((r) => setTimeout(r, 10));
    release();
    const results = await Promise.all(burst);
    expect(results.filter((r) => r.outcome === 'checked')).toHaveLength(8);
    expect(results.filter((r) => r.outcome === 'throttled' && r.scope === 'source')).toHaveLength(22);
  });

  it('serves waiting addresses in turn, so a flood from one delays another by one check at most', async () => {
    const { t } = throttle({ concurrency: 1, perSourcePending: 8 });
    const order: string[] = [];
    const check = (who: string) => async () => {
      order.push(who);
      await new Promise((r) => setTimeout(r, 1));
      return { ok: false, value: who };
    };
    const flood = Array.from({ length: 8 }, (_, i) => t.attempt(`user${i}`, 'attacker', check('attacker')));
    const real = t.attempt('alice', 'home', check('alice'));
    await Promise.all([...flood, real]);
    // The first attacker check was already running; alice goes next.
    expect(order.indexOf('alice')).toBeLessThanOrEqual(2);
  });

  it('leaves a password check slot to everyone else while one address floods', async () => {
    const { t } = throttle({ concurrency: 2, perSourceConcurrency: 1 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let attackerRunning = 0;
    let attackerMax = 0;
    const flood = Array.from({ length: 8 }, (_, i) =>
      t.attempt(`user${i}`, 'attacker', async () => {
        attackerMax = Math.max(attackerMax, ++attackerRunning);
        await gate;
        attackerRunning--;
        return { ok: false, value: 'no' };
      }),
    );
    // Alice's check starts at once, although the attacker's are still waiting on the gate.
    let aliceRan = false;
    await t.attempt('alice', 'home', async () => {
      aliceRan = true;
      return { ok: true, value: 'yes' };
    });
    expect(aliceRan).toBe(true);
    release();
    await Promise.all(flood);
    expect(attackerMax).toBe(1);
  });

  it('remembers a bounded number of pairs under a flood of names', async () => {
    const { t } = throttle({ maxEntries: 100, sourceFailures: 1_000_000 });
    for (let i = 0; i < 1000; i++) await t.attempt(`random-${i}`, `10.0.${i % 250}.1`, fail);
    expect(t.size.pairs).toBeLessThanOrEqual(100);
    expect(t.size.sources).toBeLessThanOrEqual(100);
  });
});
