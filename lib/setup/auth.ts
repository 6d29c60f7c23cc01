import { Accounts, type AccountsOptions } from '../auth/accounts.ts';
import type { AuthStore } from '../auth/auth-store.ts';
import { TokenService } from '../auth/tokens.ts';
import type { HttpAuth } from '../http/context.ts';
import type { Logger } from '../logging/logger.ts';

/**
 * Token authentication from an auth store (accounts and signing key: a file `berth users` writes,
 * or the deployed stack's secret). A new signing key in the store replaces the token service on
 * the next reload; tokens signed with the old key then fail and clients fetch new ones.
 */
export async function loadAuth(
  store: AuthStore,
  ttlSeconds: number,
  logger: Logger,
  accountOptions: AccountsOptions = {},
): Promise<HttpAuth> {
  const accounts = await Accounts.load(store, logger, accountOptions);
  const options = { issuer: 'berth', service: 'berth', ttlSeconds };
  let tokens = await TokenService.fromJwk(accounts.signingKey, options);
  let kid = JSON.stringify(accounts.signingKey);
  accounts.onReload(async (file) => {
    const next = JSON.stringify(file.signingKey);
    if (next === kid) return;
    tokens = await TokenService.fromJwk(file.signingKey, options);
    kid = next;
    logger.info('token signing key changed');
  });
  return {
    accounts,
    get tokens() {
      return tokens;
    },
  };
}
