/** The command that pulls `repo:tag` from `host` with the tool that fits what it is. */
export type PullTool = 'docker' | 'podman';

export function pullCommand(
  host: string,
  repo: string,
  tag: string,
  kind: string | undefined,
  tool: PullTool,
): string {
  if (kind === 'helm') return `helm pull oci://${host}/${repo} --version ${tag}`;
  if (
    kind === 'signature' ||
    kind === 'attestation' ||
    kind === 'sbom' ||
    kind === 'artifact' ||
    kind === 'cache'
  ) {
    return `oras pull ${host}/${repo}:${tag}`;
  }
  return `${tool} pull ${host}/${repo}:${tag}`;
}
