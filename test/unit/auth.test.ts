import { SignJWT, UnsecuredJWT, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { grantAccess, matchesPattern, parseGrant } from '../../lib/auth/grants.ts';
import { DUMMY_HASH, hashPassword, verifyPassword } from '../../lib/auth/passwords.ts';
import { parseScopes } from '../../lib/auth/scope.ts';
import { TokenService, generateSigningKey } from '../../lib/auth/tokens.ts';

const options = { issuer: 'berth', service: 'berth', ttlSeconds: 300 };

describe('scopes', () => {
  it('splits space-separated scopes and keeps host:port in names', () => {
    expect(
      parseScopes(['repository:localhost:5000/app:pull,push registry:catalog:*', 'repository:a/b:pull']),
    ).toEqual([
      { type: 'repository', name: 'localhost:5000/app', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
      { type: 'repository', name: 'a/b', actions: ['pull'] },
    ]);
  });

  it('drops malformed scopes instead of failing the request', () => {
    expect(
      parseScopes(['repository', 'repository:app', ':app:pull', 'repository::pull', 'repository:app:']),
    ).toEqual([]);
  });
});

describe('grants', () => {
  it('matches patterns with * across slashes and nothing else', () => {
    expect(matchesPattern('team-a/*', 'team-a/x/y')).toBe(true);
    expect(matchesPattern('team-a/*', 'team-ab/x')).toBe(false);
    expect(matchesPattern('*', 'anything/at/all')).toBe(true);
    expect(matchesPattern('a.b', 'axb')).toBe(false);
  });

  it('grants the intersection of what is asked and allowed, and nothing for the catalog unless granted', () => {
    const permissions = {
      grants: [parseGrant('team-a/*:pull,push'), parseGrant('*:pull')].filter((g) => g !== 'catalog'),
      catalog: false,
    };
    expect(
      grantAccess(
        permissions,
        parseScopes(['repository:team-a/x:pull,push,delete repository:b:push,pull registry:catalog:*']),
      ),
    ).toEqual([
      { type: 'repository', name: 'team-a/x', actions: ['pull', 'push'] },
      { type: 'repository', name: 'b', actions: ['pull'] },
    ]);
    expect(grantAccess({ grants: [], catalog: true }, parseScopes(['registry:catalog:*']))).toEqual([
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  it('refuses grants with unknown actions or malformed patterns', () => {
    expect(() => parseGrant('team-a/*:pull,admin')).toThrow(/unknown action/);
    expect(() => parseGrant('Team A:pull')).toThrow(/must look like/);
    expect(parseGrant('registry:catalog:*')).toBe('catalog');
  });
});

describe('passwords', () => {
  it('verifies the right password only, with a fresh salt each time', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('correct horse!', a)).toBe(false);
    expect(await verifyPassword('anything', DUMMY_HASH)).toBe(false);
    expect(await verifyPassword('anything', 'md5$abc')).toBe(false);
  });
});

describe('tokens', () => {
  it('verifies its own tokens and returns the access they carry', async () => {
    const service = await TokenService.fromJwk(await generateSigningKey(), options);
    const { token } = await service.issue('alice', [{ type: 'repository', name: 'a', actions: ['pull'] }]);
    expect(await service.verify(token)).toMatchObject({
      subject: 'alice',
      access: [{ type: 'repository', name: 'a', actions: ['pull'] }],
    });
  });

  it('rejects tokens signed by another key, for another audience, expired, not yet valid, unsigned or tampered', async () => {
    const key = await generateSigningKey();
    const service = await TokenService.fromJwk(key, options);
    const other = await TokenService.fromJwk(await generateSigningKey(), options);
    const otherAudience = await TokenService.fromJwk(key, { ...options, service: 'elsewhere' });
    expect(await service.verify((await other.issue('alice', [])).token)).toBeUndefined();
    expect(await service.verify((await otherAudience.issue('alice', [])).token)).toBeUndefined();

    const signingKey = await importJWK({ ...key, alg: 'ES256' }, 'ES256');
    const now = Math.floor(Date.now() / 1000);
    const forge = (exp: number, nbf: number) =>
      new SignJWT({ access: [] })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer('berth')
        .setAudience('berth')
        .setSubject('alice')
        .setIssuedAt(now)
        .setJti('x')
        .setExpirationTime(exp)
        .setNotBefore(nbf)
        .sign(signingKey);
    expect(await service.verify(await forge(now + 60, now - 5))).toBeDefined();
    expect(await service.verify(await forge(now - 60, now - 120))).toBeUndefined();
    expect(await service.verify(await forge(now + 600, now + 300))).toBeUndefined();

    const unsigned = new UnsecuredJWT({ access: [{ type: 'repository', name: 'a', actions: ['push'] }] })
      .setIssuer('berth')
      .setAudience('berth')
      .setSubject('alice')
      .setIssuedAt()
      .setExpirationTime('5m')
      .encode();
    expect(await service.verify(unsigned)).toBeUndefined();

    const { token } = await service.issue('alice', [{ type: 'repository', name: 'a', actions: ['pull'] }]);
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as {
      access: { actions: string[] }[];
    };
    claims.access[0]!.actions.push('push');
    const tampered = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
    expect(await service.verify(tampered)).toBeUndefined();
  });
});
