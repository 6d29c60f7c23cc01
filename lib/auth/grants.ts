import type { Access } from './scope.ts';

export const REPOSITORY_ACTIONS = ['pull', 'push', 'delete'] as const;
export type RepositoryAction = (typeof REPOSITORY_ACTIONS)[number];

/** Actions on the repositories whose names match a pattern. */
export interface Grant {
  /** A repository name, or a pattern where `*` matches any run of characters, `/` included. */
  readonly pattern: string;
  readonly actions: readonly RepositoryAction[];
}

/** What an account may do. */
export interface Permissions {
  readonly grants: readonly Grant[];
  /** May list every repository name (`registry:catalog:*`). */
  readonly catalog: boolean;
}

export function matchesPattern(pattern: string, name: string): boolean {
  return new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`).test(name);
}

/** The actions the grants allow on one repository. */
export function allowedActions(grants: readonly Grant[], repository: string): Set<RepositoryAction> {
  const allowed = new Set<RepositoryAction>();
  for (const grant of grants) {
    if (matchesPattern(grant.pattern, repository)) for (const action of grant.actions) allowed.add(action);
  }
  return allowed;
}

/**
 * What a token may carry: the intersection of what was asked and what the account may do. A partial
 * grant is not an error; scopes with nothing allowed are left out.
 */
export function grantAccess(permissions: Permissions, requested: readonly Access[]): Access[] {
  const out: Access[] = [];
  for (const want of requested) {
    let granted: string[] = [];
    if (want.type === 'repository') {
      const allowed = allowedActions(permissions.grants, want.name);
      const asked = want.actions.includes('*') ? [...allowed] : want.actions;
      granted = asked.filter((a) => allowed.has(a as RepositoryAction));
    } else if (want.type === 'registry' && want.name === 'catalog' && permissions.catalog) {
      granted = want.actions.filter((a) => a === '*');
    }
    if (granted.length > 0)
      out.push({ type: want.type, name: want.name, actions: [...new Set(granted)].sort() });
  }
  return out;
}

/**
 * Parses a grant as the CLI takes it: `<pattern>:<actions>` (`team-a/*:pull,push`), or
 * `registry:catalog:*` for the catalog.
 */
export function parseGrant(text: string): Grant | 'catalog' {
  if (text === 'registry:catalog:*') return 'catalog';
  const colon = text.lastIndexOf(':');
  const pattern = text.slice(0, colon);
  const actions = text.slice(colon + 1).split(',');
  if (colon <= 0 || !/^[a-z0-9._/*-]+$/.test(pattern)) {
    throw new Error(
      `grant "${text}" must look like <repository pattern>:<actions>, e.g. 'team-a/*:pull,push'`,
    );
  }
  for (const action of actions) {
    if (!(REPOSITORY_ACTIONS as readonly string[]).includes(action)) {
      throw new Error(`grant "${text}": unknown action "${action}"; use pull, push and delete`);
    }
  }
  return { pattern, actions: actions as RepositoryAction[] };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
