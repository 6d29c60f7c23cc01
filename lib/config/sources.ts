import type { ConfigInput } from './config.ts';

/** The environment variables Berth reads, and the config field each sets. */
export const ENV_VARS: Record<string, keyof ConfigInput> = {
  PORT: 'port',
  BERTH_PORT: 'port',
  BERTH_HOST: 'host',
  BERTH_DATA_DIR: 'dataDir',
  BERTH_LOG_LEVEL: 'logLevel',
  BERTH_STORAGE: 'storage',
  BERTH_MAX_BLOB_SIZE: 'maxBlobSize',
  BERTH_PART_SIZE: 'partSize',
  BERTH_MOUNT_WITHOUT_FROM: 'mountWithoutFrom',
  BERTH_UPLOAD_TTL: 'uploadTtlSeconds',
  BERTH_SHUTDOWN_GRACE: 'shutdownGraceSeconds',
};

const BOOLEAN_FIELDS = new Set<keyof ConfigInput>(['mountWithoutFrom']);

/** Builds config input from the environment, then flags on top (flags win). */
export function configInput(
  env: Record<string, string | undefined>,
  flags: Partial<Record<keyof ConfigInput, string | boolean>>,
): ConfigInput {
  const input: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(ENV_VARS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    input[field] = BOOLEAN_FIELDS.has(field) ? parseBoolean(value) : value;
  }
  for (const [field, value] of Object.entries(flags)) {
    if (value !== undefined) input[field] = value;
  }
  return input as ConfigInput;
}

function parseBoolean(value: string): boolean | string {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  return value;
}
