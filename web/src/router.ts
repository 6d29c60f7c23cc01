import { useEffect, useState } from 'preact/hooks';

/**
 * Hash routes, so that the registry needs to serve only `/` and its assets:
 * `#/` repositories, `#/r/<name>` a repository's tags, `#/r/<name>/m/<reference>` a manifest,
 * `#/operations`, `#/sign-in`.
 */
export type Route =
  | { page: 'repositories' }
  | { page: 'repository'; name: string }
  | { page: 'manifest'; name: string; reference: string }
  | { page: 'operations' }
  | { page: 'sign-in' };

export function parseRoute(hash: string): Route {
  const path = decodeURIComponent(hash.replace(/^#/, '')) || '/';
  const manifest = /^\/r\/(.+)\/m\/([^/]+)$/.exec(path);
  if (manifest) return { page: 'manifest', name: manifest[1]!, reference: manifest[2]! };
  const repository = /^\/r\/(.+)$/.exec(path);
  if (repository) return { page: 'repository', name: repository[1]! };
  if (path === '/operations') return { page: 'operations' };
  if (path === '/sign-in') return { page: 'sign-in' };
  return { page: 'repositories' };
}

export const href = {
  repositories: () => '#/',
  repository: (name: string) => `#/r/${name}`,
  manifest: (name: string, reference: string) => `#/r/${name}/m/${reference}`,
  operations: () => '#/operations',
  signIn: () => '#/sign-in',
};

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const update = () => {
      setRoute(parseRoute(location.hash));
      // A new page: move focus to its heading, as a screen reader user expects after a link.
      requestAnimationFrame(() => document.querySelector<HTMLElement>('main h1')?.focus());
    };
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}
