/**
 * `--proxy-upstream` values: a comma-separated list of `[<prefix>=]<url>`. A repository whose name
 * starts with `<prefix>/` is a read-only mirror of the upstream at `<url>` (the prefix is removed from
 * the name the upstream sees); an entry without a prefix mirrors every other repository, which is what
 * the Docker daemon's `registry-mirrors` needs (it sends Docker Hub names, `library/alpine`, as they are).
 */
export interface UpstreamSpec {
  /** Repository name prefix, without the trailing `/`; empty for the catch-all upstream. */
  readonly prefix: string;
  /** Origin of the upstream registry (scheme, host, port), without a trailing slash. */
  readonly url: string;
  /** Docker Hub: one-component names are official images, `library/<name>` upstream. */
  readonly dockerHub: boolean;
}

const PREFIX = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const DOCKER_HUB_HOSTS = new Set(['registry-1.docker.io', 'index.docker.io', 'docker.io']);

/** Parses the list; throws an Error whose message says what is wrong with which entry. */
export function parseUpstreams(value: string): UpstreamSpec[] {
  const specs: UpstreamSpec[] = [];
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    const hasPrefix = eq >= 0 && !entry.slice(0, eq).includes(':');
    const prefix = hasPrefix ? entry.slice(0, eq).replace(/\/+$/, '') : '';
    const urlText = hasPrefix ? entry.slice(eq + 1) : entry;
    if (hasPrefix && !PREFIX.test(prefix)) {
      throw new Error(`"${prefix}" is not a repository name prefix (lowercase path components joined by /)`);
    }
    let url: URL;
    try {
      url = new URL(urlText);
    } catch {
      throw new Error(`"${urlText}" is not a URL; give the upstream as https://host[:port]`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new Error(`upstream ${urlText} must be an http:// or https:// URL`);
    }
    if (url.username || url.password) {
      throw new Error(
        'an upstream URL cannot carry credentials; set BERTH_PROXY_USERNAME and BERTH_PROXY_PASSWORD instead',
      );
    }
    if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
      throw new Error(
        `upstream ${urlText} must be just scheme, host and port (registries serve /v2/ at the root)`,
      );
    }
    if (specs.some((s) => s.prefix === prefix)) {
      throw new Error(
        prefix ? `two upstreams for prefix "${prefix}"` : 'two upstreams without a prefix; give one a prefix',
      );
    }
    // Docker Hub's registry is registry-1.docker.io; "docker.io" is how users name it.
    const host = url.hostname === 'docker.io' ? 'registry-1.docker.io' : url.host;
    specs.push({ prefix, url: `${url.protocol}//${host}`, dockerHub: DOCKER_HUB_HOSTS.has(url.hostname) });
  }
  return specs;
}
