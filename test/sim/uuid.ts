import { Rng } from './rng.ts';

/**
 * The simulation's randomUUID (test/sim/simulation.test.ts mocks node:crypto's with it): session ids,
 * etags of the memory store, lease tokens and run ids come from the schedule's seed, so that listing
 * orders, and therefore the schedule, replay exactly.
 */
let rng = new Rng(1);

export function seedUuids(seed: number): void {
  rng = new Rng(seed);
}

export function nextUuid(): `${string}-${string}-${string}-${string}-${string}` {
  return rng.uuid() as `${string}-${string}-${string}-${string}-${string}`;
}
