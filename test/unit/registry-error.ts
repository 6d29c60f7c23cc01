import { expect } from 'vitest';
import { RegistryError, type ErrorCode } from '../../lib/oci/errors.ts';

/** The RegistryError `fn` throws; fails the test when it returns or throws anything else. */
export function registryErrorOf(fn: () => unknown): RegistryError {
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    return err as RegistryError;
  }
  throw new Error(`expected a RegistryError, got a result: ${JSON.stringify(result)?.slice(0, 200)}`);
}

/** Asserts that `fn` throws a RegistryError with this spec code (and status, when given). */
export function expectRegistryError(fn: () => unknown, code: ErrorCode, status?: number): RegistryError {
  const err = registryErrorOf(fn);
  expect(err.code).toBe(code);
  if (status !== undefined) expect(err.status).toBe(status);
  return err;
}
