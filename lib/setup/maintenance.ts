import { environmentValue } from '../config/sources.ts';
import type { TeardownSettings } from '../teardown/teardown.ts';

/**
 * The teardown function's settings from its environment: the bucket and expiry are options of the
 * table (lib/config/options.ts); the stack's id and deletion role are not options anyone sets, the
 * stack passes them to this one function (infra/teardown.ts).
 */
export function teardownSettingsOf(env: Record<string, string | undefined>): TeardownSettings {
  const expiresAt = environmentValue(env, 'expiresAt');
  return {
    bucket: environmentValue(env, 's3.bucket') ?? '',
    ...(env.BERTH_STACK_ID && { stackId: env.BERTH_STACK_ID }),
    ...(env.BERTH_STACK_DELETION_ROLE && { deletionRoleArn: env.BERTH_STACK_DELETION_ROLE }),
    ...(expiresAt && { expiresAt: new Date(expiresAt) }),
  };
}

/** The deploy- and delete-time functions log at info, or at debug when the log level says so. */
export function maintenanceLogLevel(env: Record<string, string | undefined>): 'debug' | 'info' {
  return environmentValue(env, 'logLevel') === 'debug' ? 'debug' : 'info';
}
