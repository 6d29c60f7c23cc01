import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/config.ts';
import { parseUpstreams } from '../../lib/mirror/spec.ts';

describe('--proxy-upstream', () => {
  it('reads a catch-all upstream and prefixed ones, and knows Docker Hub by its host', () => {
    expect(parseUpstreams('https://registry-1.docker.io, ghcr=https://ghcr.io/')).toEqual([
      { prefix: '', url: 'https://registry-1.docker.io', dockerHub: true },
      { prefix: 'ghcr', url: 'https://ghcr.io', dockerHub: false },
    ]);
    expect(parseUpstreams('hub/=https://docker.io')).toEqual([
      { prefix: 'hub', url: 'https://registry-1.docker.io', dockerHub: true },
    ]);
  });

  it('refuses what it cannot use, saying why, without echoing credentials', () => {
    expect(() => parseUpstreams('ftp://example.com')).toThrow(/http:\/\/ or https:\/\//);
    expect(() => parseUpstreams('https://example.com/v2')).toThrow(/just scheme, host and port/);
    expect(() => parseUpstreams('Hub=https://example.com')).toThrow(/not a repository name prefix/);
    expect(() => parseUpstreams('https://a.example, https://b.example')).toThrow(
      /two upstreams without a prefix/,
    );
    expect(() => parseUpstreams('https://me:hunter2@example.com')).toThrow(/cannot carry credentials/);
    expect(() => parseUpstreams('https://me:hunter2@example.com')).not.toThrow(/hunter2/);
  });

  it('is checked with the rest of the configuration', () => {
    expect(() => parseConfig({ proxyUpstream: 'nonsense' })).toThrow(/proxyUpstream/);
    expect(() => parseConfig({ proxyUpstream: 'https://registry-1.docker.io', proxyUsername: 'me' })).toThrow(
      /BERTH_PROXY_PASSWORD/,
    );
    expect(parseConfig({ proxyUpstream: 'https://registry-1.docker.io' }).proxyTagTtlSeconds).toBe(300);
  });
});
