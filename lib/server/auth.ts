import { Accounts } from '../auth/accounts.ts';
import { TokenService } from '../auth/tokens.ts';
import type { HttpAuth } from '../http/auth.ts';
import type { Logger } from '../logging/logger.ts';

/** Token authentication from an auth file (accounts and signing key), as `berth users` writes it. */
export async function loadAuth(path: string, ttlSeconds: number, logger: Logger): Promise<HttpAuth> {
  const accounts = await Accounts.load(path, logger);
  const tokens = await TokenService.fromJwk(accounts.signingKey, {
    issuer: 'berth',
    service: 'berth',
    ttlSeconds,
  });
  return { accounts, tokens };
}
