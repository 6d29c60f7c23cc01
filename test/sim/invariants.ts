import type { FsckReport } from '../../lib/fsck/report.ts';
import { referencesOf } from '../../lib/gc/references.ts';
import { keys, meta, parse } from '../../lib/registry/keys.ts';
import { listKeys, scanRepos } from '../../lib/registry/layout.ts';
import type { StorageDriver } from '../../lib/storage/port.ts';
import type { Blob } from './clients.ts';
import { LOST, OCI_INDEX, OCI_MANIFEST, sha256, type Container, type Event } from './world.ts';

/*
 * What must hold after a schedule, once the janitor and garbage collection have run to completion
 * (../shared/SIMULATION.md, "Invariants"). Each check returns the breaches it found, in words.
 */

async function get(c: Container, path: string, init?: RequestInit) {
  const a = await c.request('check', path, init);
  if (a === LOST) throw new Error('the checking container died');
  return a;
}

/**
 * Every tag resolves to a manifest that exists by digest, whose bytes hash to that digest, and
 * everything it names (children, config, layers) pulls with the right digest and size.
 */
export async function tagsPull(
  c: Container,
  storage: StorageDriver,
  history: readonly Event[],
): Promise<string[]> {
  const problems: string[] = [];
  // A client may delete a manifest an index names (the registry allows it, as Distribution does):
  // the index is then broken by request, not by the registry.
  const deleted = new Set(
    history.filter((e) => e.op === 'deleteManifest').map((e) => `${e.repo}@${e.digest}`),
  );
  for await (const repo of scanRepos(storage)) {
    for (const tag of repo.tags) {
      const ref = `${repo.name}:${tag}`;
      const res = await get(c, `/v2/${repo.name}/manifests/${tag}`, {
        headers: { Accept: `${OCI_MANIFEST}, ${OCI_INDEX}` },
      });
      if (res.status !== 200) {
        problems.push(`tag ${ref} is listed but GET by tag is ${res.status}`);
        continue;
      }
      const digest = res.headers.get('Docker-Content-Digest')!;
      if (sha256(res.body) !== digest)
        problems.push(`tag ${ref}: bytes hash to ${sha256(res.body)}, not ${digest}`);
      problems.push(...(await manifestPulls(c, repo.name, digest, ref, deleted)));
    }
  }
  return problems;
}

async function manifestPulls(
  c: Container,
  repo: string,
  digest: string,
  via: string,
  deleted: ReadonlySet<string>,
  child = false,
): Promise<string[]> {
  const problems: string[] = [];
  const res = await get(c, `/v2/${repo}/manifests/${digest}`, {
    headers: { Accept: `${OCI_MANIFEST}, ${OCI_INDEX}` },
  });
  if (res.status === 404 && child && deleted.has(`${repo}@${digest}`)) return [];
  if (res.status !== 200) return [`${via}: manifest ${digest} is ${res.status} by digest`];
  const refs = referencesOf(res.body);
  for (const d of refs.children)
    problems.push(...(await manifestPulls(c, repo, d, `${via} > ${d}`, deleted, true)));
  const json = JSON.parse(new TextDecoder().decode(res.body)) as {
    config?: { digest: string; size: number };
    layers?: { digest: string; size: number }[];
  };
  for (const d of [...(json.config ? [json.config] : []), ...(json.layers ?? [])]) {
    const blob = await get(c, `/v2/${repo}/blobs/${d.digest}`);
    if (blob.status !== 200) problems.push(`${via}: blob ${d.digest} is ${blob.status}`);
    else if (sha256(blob.body) !== d.digest || blob.body.byteLength !== d.size) {
      problems.push(
        `${via}: blob ${d.digest} serves ${blob.body.byteLength} bytes hashing to ${sha256(blob.body)}`,
      );
    }
  }
  return problems;
}

/** No blob is visible without its data: every link that HEADs 200 GETs the right bytes. */
export async function linksServe(c: Container, storage: StorageDriver): Promise<string[]> {
  const problems: string[] = [];
  for await (const repo of scanRepos(storage)) {
    for (const digest of repo.links) {
      const head = await get(c, `/v2/${repo.name}/blobs/${digest}`, { method: 'HEAD' });
      if (head.status !== 200) continue;
      const body = await get(c, `/v2/${repo.name}/blobs/${digest}`);
      if (body.status !== 200 || sha256(body.body) !== digest) {
        problems.push(
          `blob ${digest} in ${repo.name}: HEAD 200 but GET ${body.status}${body.status === 200 ? ' with other bytes' : ''}`,
        );
      }
    }
  }
  return problems;
}

/**
 * A blob is never re-stored as "already present" when its data is missing: pushing each one again
 * (docker's way: HEAD, upload if missing) into a fresh repository makes it pull.
 */
export async function repushes(c: Container, blobs: readonly Blob[]): Promise<string[]> {
  const problems: string[] = [];
  for (const blob of blobs) {
    const repo = 'zz-repush';
    const start = await get(c, `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    const location = start.headers.get('Location');
    if (start.status !== 202 || !location) {
      problems.push(`re-push of ${blob.digest}: POST ${start.status}`);
      continue;
    }
    const patch = await get(c, location, { method: 'PATCH', body: blob.bytes });
    const put = await get(c, `${location}?digest=${blob.digest}`, { method: 'PUT' });
    if (patch.status !== 202 || put.status !== 201) {
      problems.push(`re-push of ${blob.digest}: PATCH ${patch.status}, PUT ${put.status}`);
      continue;
    }
    const pulled = await get(c, `/v2/${repo}/blobs/${blob.digest}`);
    if (pulled.status !== 200 || sha256(pulled.body) !== blob.digest) {
      problems.push(`re-pushed blob ${blob.digest} does not pull (${pulled.status})`);
    }
  }
  return problems;
}

/**
 * Once the janitor and a collection with no grace period ran to completion: nothing is left that no
 * session, manifest or collection accounts for, and the catalog lists exactly the repositories
 * holding a tag or a manifest.
 */
export async function nothingUnaccounted(storage: StorageDriver): Promise<string[]> {
  const problems: string[] = [];
  const all = async (prefix: string) => {
    const found: string[] = [];
    for await (const page of listKeys(storage, prefix)) found.push(...page);
    return found;
  };
  for (const key of await all('uploads/')) problems.push(`left behind: ${key}`);
  for (const key of await all('gc/')) {
    if (![keys.clock, keys.uploadStateKey, 'gc/last-run.json', 'gc/usage.json'].includes(key))
      problems.push(`left behind: ${key}`);
  }
  for await (const upload of storage.multipart.listOpen(''))
    problems.push(`open multipart upload: ${upload.key}`);
  // What every kept manifest (and tag copy) references, per repository and overall.
  const referenced = new Set<string>();
  const content = new Set<string>();
  for await (const repo of scanRepos(storage)) {
    const needed = new Set<string>();
    const sources = [
      ...repo.manifests.map((d) => keys.manifest(repo.name as never, parseDigest(d))),
      ...repo.tags.map((t) => `repos/${repo.name}/_tags/${t}`),
    ];
    for (const key of sources) {
      const object = await storage.get(key);
      if (!object) continue;
      const refs = referencesOf(object.body);
      for (const blob of refs.blobs) needed.add(blob);
    }
    if (repo.tags.length > 0 || repo.manifests.length > 0) content.add(repo.name);
    for (const digest of repo.links) {
      if (!needed.has(digest))
        problems.push(`link ${digest} in ${repo.name} that no manifest of it references`);
    }
    for (const blob of needed) referenced.add(blob);
    const manifests = new Set(repo.manifests);
    for (const entry of repo.referrers) {
      if (!manifests.has(entry.digest)) problems.push(`referrer entry ${entry.key} names no manifest`);
    }
  }
  const named = new Set<string>();
  for (const key of await all('blobs/')) {
    const digest = parse.blobKey(key);
    const info = await storage.head(key);
    const dataKey = info?.metadata[meta.dataKey];
    if (dataKey) {
      named.add(dataKey);
      if ((await storage.head(dataKey))?.size !== Number(info!.metadata[meta.size])) {
        problems.push(`blob ${digest} names data ${dataKey} that is missing or of another size`);
      }
    }
    if (digest && !referenced.has(digest)) problems.push(`blob ${digest} that no manifest references`);
  }
  for (const key of await all('data/'))
    if (!named.has(key)) problems.push(`data object ${key} that no blob names`);
  const catalog = new Set((await all('catalog/')).map((k) => parse.catalogKey(k)!));
  for (const repo of content)
    if (!catalog.has(repo)) problems.push(`repository ${repo} is missing from the catalog`);
  for (const repo of catalog)
    if (!content.has(repo)) problems.push(`catalog lists ${repo}, which holds nothing`);
  return problems;
}

function parseDigest(digest: string) {
  const [algorithm, hex] = digest.split(':') as ['sha256', string];
  return { algorithm, hex, digest } as never;
}

/**
 * Acknowledged operations on tags against the final state. An operation decides a tag's final state
 * when every other operation that could change that tag ended before it began, and it was
 * acknowledged: an acknowledged PUT leaves the tag naming its manifest; an acknowledged DELETE of the
 * tag, or of the manifest it named, leaves it absent. Operations that overlapped are not judged
 * (either order is a valid outcome), nor are those whose answer was lost or an error.
 */
export async function acknowledgedTags(c: Container, history: readonly Event[]): Promise<string[]> {
  const problems: string[] = [];
  const byTag = new Map<string, Event[]>();
  // A retention rule deletes tags of team/* by design: those are not judged when one ran.
  const retained = history.some((e) => e.op === 'retention');
  const puts = history.filter((e) => e.op === 'put' && e.tag && !(retained && e.repo.startsWith('team/')));
  for (const e of puts) byTag.set(`${e.repo}:${e.tag}`, [...(byTag.get(`${e.repo}:${e.tag}`) ?? []), e]);
  for (const e of history.filter((e) => e.op === 'deleteTag' && !(retained && e.repo.startsWith('team/')))) {
    byTag.set(`${e.repo}:${e.tag}`, [...(byTag.get(`${e.repo}:${e.tag}`) ?? []), e]);
  }
  for (const [ref, events] of byTag) {
    const [repo, tag] = ref.split(':') as [string, string];
    const digests = new Set(events.filter((e) => e.op === 'put').map((e) => e.digest));
    // A DELETE of a manifest this tag ever named could have removed the tag. Refused operations
    // changed nothing and do not count.
    const touching = [
      ...events,
      ...history.filter((e) => e.op === 'deleteManifest' && e.repo === repo && digests.has(e.digest)),
    ].filter((e) => e.outcome !== 'failed');
    if (touching.length === 0) continue;
    const last = touching.reduce((a, b) => (b.start > a.start ? b : a));
    if (last.outcome !== 'ok' || touching.some((e) => e !== last && e.end >= last.start)) continue;
    // A manifest DELETE removes the tag only if the tag named that manifest then: judged only when
    // the tag never named another.
    if (last.op === 'deleteManifest' && digests.size !== 1) continue;
    const res = await get(c, `/v2/${repo}/manifests/${tag}`, { method: 'HEAD' });
    if (last.op === 'put') {
      const now = res.status === 200 ? res.headers.get('Docker-Content-Digest') : `absent (${res.status})`;
      if (now !== last.digest)
        problems.push(`tag ${ref} was last pushed as ${last.digest} (acknowledged) but is ${now}`);
    } else if (res.status !== 404) {
      problems.push(`tag ${ref} was deleted (${last.op}, acknowledged) but is ${res.status}`);
    }
  }
  return problems;
}

/**
 * `berth fsck` (its library entry point) on the final store finds nothing broken or inconsistent.
 * As in tagsPull, an index whose entry a client deleted (the registry allows it, as Distribution
 * does) is broken by request: fsck rightly reports it, and it is no breach.
 */
export function fsckAgrees(report: FsckReport, history: readonly Event[]): string[] {
  const deleted = new Set(
    history.filter((e) => e.op === 'deleteManifest').map((e) => `${e.repo}@${e.digest}`),
  );
  return report.findings
    .filter((f) => f.severity !== 'leftover')
    .filter((f) => !(f.kind === 'index-entry-missing' && deleted.has(`${f.repository}@${f.digest}`)))
    .map((f) => `fsck: ${f.severity} ${f.kind}: ${f.message}`);
}
