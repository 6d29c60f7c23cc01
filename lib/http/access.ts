import type { Route } from './route.ts';

/** What a request needs from the caller's token. */
export type Need =
  | { kind: 'token' }
  | { kind: 'repository'; name: string; action: 'pull' | 'push' | 'delete'; challenge: string }
  /** Registry-wide administration (usage reports): the `registry:catalog:*` grant. */
  | { kind: 'admin'; challenge: 'registry:catalog:*' };

/**
 * The access a route needs, and the scope a client should ask for when it lacks it. A mount names
 * its source repository too, so one token covers both (as CNCF Distribution challenges).
 */
export function needOf(route: Route, method: string, mountFrom?: string): Need {
  switch (route.kind) {
    case 'base':
    case 'catalog':
    case 'browse':
      // The catalog is filtered to what the caller may pull; any valid token may ask. So are the web
      // UI's repository list and registry information (administrative parts need registry:catalog:*).
      return { kind: 'token' };
    case 'tags':
    case 'referrers':
    case 'browse-repository':
    case 'browse-manifest':
      return repository(route.name, 'pull');
    case 'manifest':
    case 'blob':
      if (method === 'DELETE') return repository(route.name, 'delete');
      return repository(route.name, method === 'PUT' ? 'push' : 'pull');
    case 'uploads': {
      const need = repository(route.name, 'push');
      return mountFrom ? { ...need, challenge: `${need.challenge} repository:${mountFrom}:pull` } : need;
    }
    case 'upload':
    case 'direct':
      return repository(route.name, 'push');
    case 'usage':
      // It names and sizes every repository, as the full catalog names them: the same grant.
      return { kind: 'admin', challenge: 'registry:catalog:*' };
  }
}

type RepositoryNeed = Extract<Need, { kind: 'repository' }>;

function repository(name: string, action: 'pull' | 'push' | 'delete'): RepositoryNeed {
  // Pushing clients also pull (HEAD before upload), so they are asked for both at once, as docker does.
  const challenge = action === 'push' ? 'pull,push' : action;
  return { kind: 'repository', name, action, challenge: `repository:${name}:${challenge}` };
}
