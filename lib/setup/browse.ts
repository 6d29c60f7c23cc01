import type { Config } from '../config/config.ts';
import type { BrowseSettings } from '../browse/info.ts';
import type { ImmutableRule, RetentionRule } from '../registry/tag-policy.ts';

/** The web UI's view of a configuration (the local server, the registry function). */
export function browseSettingsOf(
  config: Pick<Config, 'registryName' | 'expiresAt'>,
  rules: { retention: readonly RetentionRule[]; immutable: readonly ImmutableRule[] },
): Partial<BrowseSettings> {
  return {
    ...(config.registryName && { name: config.registryName }),
    ...(config.expiresAt && { expiresAt: new Date(config.expiresAt).toISOString() }),
    retention: rules.retention,
    immutable: rules.immutable,
  };
}
