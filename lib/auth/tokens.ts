import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, importJWK, jwtVerify, type JWK } from 'jose';
import type { Access } from './scope.ts';

const ALG = 'ES256';

export interface TokenClaims {
  readonly subject: string;
  readonly access: readonly Access[];
  readonly expiresAt: Date;
  /** The generation of the account the token was issued to (`gen`); none for anonymous tokens. */
  readonly generation?: string;
}

/** Issues and verifies registry bearer tokens (JWT, ES256), as the Docker token spec describes. */
export class TokenService {
  private constructor(
    private readonly privateKey: CryptoKey,
    private readonly publicKey: CryptoKey,
    private readonly kid: string,
    readonly issuer: string,
    readonly service: string,
    readonly ttlSeconds: number,
  ) {}

  static async fromJwk(
    jwk: JWK,
    options: { issuer: string; service: string; ttlSeconds: number },
  ): Promise<TokenService> {
    const privateKey = (await importJWK({ ...jwk, alg: ALG }, ALG)) as CryptoKey;
    const { d: _d, ...publicJwk } = jwk;
    const publicKey = (await importJWK({ ...publicJwk, alg: ALG }, ALG)) as CryptoKey;
    return new TokenService(
      privateKey,
      publicKey,
      jwk.kid ?? 'berth',
      options.issuer,
      options.service,
      options.ttlSeconds,
    );
  }

  /**
   * An access token for `subject` (an account, or '' for anonymous access). `generation` names the
   * account's incarnation (lib/auth/accounts.ts): a token issued before a removal and re-creation
   * under the same name does not pass for the new account.
   */
  async issue(
    subject: string,
    access: readonly Access[],
    generation?: string,
  ): Promise<{ token: string; issuedAt: Date; expiresIn: number }> {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({
      access: access.map((a) => ({ type: a.type, name: a.name, actions: [...a.actions] })),
      ...(generation !== undefined ? { gen: generation } : {}),
    })
      .setProtectedHeader({ alg: ALG, kid: this.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setSubject(subject)
      .setAudience(this.service)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + this.ttlSeconds)
      .setJti(randomUUID())
      .sign(this.privateKey);
    return { token, issuedAt: new Date(now * 1000), expiresIn: this.ttlSeconds };
  }

  /**
   * A refresh token (`offline_token=true`, `access_type=offline`): docker stores it in place of
   * the password and trades it for access tokens. It names the account and a fingerprint of its
   * password hash, so a new password, a removal or a re-creation under the same name voids it;
   * its audience differs from access tokens', so neither passes for the other.
   */
  async issueRefresh(subject: string, fingerprint: string, expiresAt: Date): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ fpr: fingerprint })
      .setProtectedHeader({ alg: ALG, kid: this.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setSubject(subject)
      .setAudience(this.refreshAudience)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .setJti(randomUUID())
      .sign(this.privateKey);
  }

  /** The subject and fingerprint of a refresh token we issued and that is valid now. */
  async verifyRefresh(token: string): Promise<{ subject: string; fingerprint: string } | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.publicKey, {
        algorithms: [ALG],
        issuer: this.issuer,
        audience: this.refreshAudience,
        requiredClaims: ['exp', 'nbf', 'iat', 'sub', 'jti'],
      });
      if (typeof payload.fpr !== 'string' || !payload.sub) return undefined;
      return { subject: payload.sub, fingerprint: payload.fpr };
    } catch {
      return undefined;
    }
  }

  private get refreshAudience(): string {
    return `${this.service}#refresh`;
  }

  /** The token's claims, or undefined for any token we did not issue or that is not valid now. */
  async verify(token: string): Promise<TokenClaims | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.publicKey, {
        algorithms: [ALG],
        issuer: this.issuer,
        audience: this.service,
        requiredClaims: ['exp', 'nbf', 'iat', 'sub', 'jti'],
      });
      const access = Array.isArray(payload.access) ? payload.access.filter(isAccess) : [];
      return {
        subject: payload.sub ?? '',
        access,
        expiresAt: new Date((payload.exp ?? 0) * 1000),
        ...(typeof payload.gen === 'string' ? { generation: payload.gen } : {}),
      };
    } catch {
      return undefined;
    }
  }
}

/** A fresh ES256 signing key as a private JWK, for the auth file. */
export async function generateSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair(ALG, { extractable: true });
  return { ...(await exportJWK(privateKey)), alg: ALG, kid: randomUUID().slice(0, 8) };
}

function isAccess(value: unknown): value is Access {
  const a = value as Access;
  return (
    typeof a === 'object' &&
    a !== null &&
    typeof a.type === 'string' &&
    typeof a.name === 'string' &&
    Array.isArray(a.actions) &&
    a.actions.every((x) => typeof x === 'string')
  );
}
