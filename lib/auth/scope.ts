/** One entry of a token request's `scope`, or of a token's `access` claim. */
export interface Access {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

const MAX_SCOPES = 32;

/**
 * Parses the `scope` parameters of a token request (the Docker token spec): each parameter may hold
 * several space-separated scopes `<type>:<name>:<actions>`. The name may itself contain colons
 * (`localhost:5000/app`), so the type ends at the first colon and the actions start after the last.
 * Malformed scopes are dropped: a token request never fails for them, it just grants nothing there.
 */
export function parseScopes(params: readonly string[]): Access[] {
  const out: Access[] = [];
  for (const param of params) {
    for (const scope of param.split(' ')) {
      if (out.length === MAX_SCOPES) return out;
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      if (first <= 0 || last <= first + 1 || last === scope.length - 1) continue;
      const actions = scope
        .slice(last + 1)
        .split(',')
        .filter((a) => /^[a-z*]+$/.test(a));
      if (actions.length > 0)
        out.push({ type: scope.slice(0, first), name: scope.slice(first + 1, last), actions });
    }
  }
  return out;
}

export function formatScope(access: Access): string {
  return `${access.type}:${access.name}:${access.actions.join(',')}`;
}
