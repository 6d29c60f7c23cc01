import type { Rng } from './rng.ts';
import {
  LOST,
  OCI_INDEX,
  OCI_MANIFEST,
  PART_SIZE,
  sha256,
  type Answer,
  type Event,
  type World,
} from './world.ts';

/*
 * What clients do in a schedule: push images and indexes in every upload style (docker's
 * PATCH-then-PUT, monolithic, chunked, a mount from another repository, a cancel racing the
 * completion), tag and re-tag, delete tags and manifests, pull, and walk away from uploads. Every
 * choice comes from the schedule's generator.
 */

export interface Blob {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly digest: string;
}

export interface Image {
  readonly blobs: readonly Blob[];
  readonly manifest: Uint8Array<ArrayBuffer>;
  readonly digest: string;
  readonly mediaType: string;
  /** An index's children. */
  readonly children?: readonly Image[];
}

export const REPOS = ['a', 'b', 'team/c'] as const;
export const TAGS = ['t1', 't2', 't3'] as const;

function bytesOf(rng: Rng, size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.int(0, 255);
  return out;
}

function blobOf(bytes: Uint8Array<ArrayBuffer>): Blob {
  return { bytes, digest: sha256(bytes) };
}

/** The schedule's content: a few shared layers, images made of them, and indexes of images. */
export function makePool(rng: Rng, options: { bigBlob: boolean }): { images: Image[]; blobs: Blob[] } {
  const layers = Array.from({ length: 5 }, () => blobOf(bytesOf(rng, rng.int(1, 3000))));
  if (options.bigBlob) {
    // More than a part: a multipart upload, completed from its parts.
    const big = new Uint8Array(PART_SIZE + rng.int(1, 200_000));
    big.set(bytesOf(rng, 4096));
    layers.push(blobOf(big));
  }
  const images: Image[] = [];
  for (let i = 0; i < 4; i++) {
    const config = blobOf(
      new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux', i, r: rng.int(0, 1e9) })),
    );
    const chosen = [rng.pick(layers), rng.pick(layers)].filter((l, j, all) => all.indexOf(l) === j);
    const manifest = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: config.digest,
          size: config.bytes.byteLength,
        },
        layers: chosen.map((l) => ({
          mediaType: 'application/vnd.oci.image.layer.v1.tar',
          digest: l.digest,
          size: l.bytes.byteLength,
        })),
      }),
    );
    images.push({ blobs: [config, ...chosen], manifest, digest: sha256(manifest), mediaType: OCI_MANIFEST });
  }
  const index = (children: Image[]): Image => {
    const manifest = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: children.map((c, k) => ({
          mediaType: c.mediaType,
          digest: c.digest,
          size: c.manifest.byteLength,
          platform: { architecture: k === 0 ? 'amd64' : 'arm64', os: 'linux' },
        })),
      }),
    );
    return { blobs: [], manifest, digest: sha256(manifest), mediaType: OCI_INDEX, children };
  };
  images.push(index([images[0]!, images[1]!]), index([images[2]!, images[3]!]));
  // A signature-like artifact whose subject is the first image: a referrer entry under it.
  const empty = blobOf(new TextEncoder().encode('{}'));
  const signature = blobOf(bytesOf(rng, rng.int(50, 500)));
  const subject = images[0]!;
  const artifact = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
      config: {
        mediaType: 'application/vnd.oci.empty.v1+json',
        digest: empty.digest,
        size: empty.bytes.byteLength,
      },
      layers: [
        { mediaType: 'application/octet-stream', digest: signature.digest, size: signature.bytes.byteLength },
      ],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.manifest.byteLength },
    }),
  );
  images.push({
    blobs: [empty, signature],
    manifest: artifact,
    digest: sha256(artifact),
    mediaType: OCI_MANIFEST,
  });
  return { images, blobs: [...layers, signature] };
}

type Outcome = Event['outcome'];

function outcomeOf(answer: Answer, ok: (status: number) => boolean): Outcome {
  if (answer === LOST) return 'unknown';
  if (ok(answer.status)) return 'ok';
  return answer.status >= 500 ? 'unknown' : 'failed';
}

export class Client {
  constructor(
    readonly id: string,
    private readonly world: World,
    private readonly rng: Rng,
    private readonly pool: { images: Image[] },
  ) {}

  private send(op: string, path: string, init?: RequestInit): Promise<Answer> {
    return this.world.pick().request(`${this.id}:${op}`, path, init);
  }

  /** Runs `count` random operations, one after another. */
  async run(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const repo = this.rng.pick(REPOS);
      const roll = this.rng.next();
      if (roll < 0.45) await this.push(repo, this.rng.pick(this.pool.images));
      else if (roll < 0.55) await this.deleteTag(repo, this.rng.pick(TAGS));
      else if (roll < 0.65) await this.deleteManifest(repo, this.rng.pick(this.pool.images));
      else if (roll < 0.8) await this.pull(repo, this.rng.pick(TAGS));
      else if (roll < 0.9) await this.abandon(repo);
      else await this.push(repo, this.rng.pick(this.pool.images), { byDigest: true });
    }
  }

  /** docker's push: children first for an index; each blob HEADed, uploaded when missing; the manifest. */
  async push(repo: string, image: Image, options: { byDigest?: boolean } = {}): Promise<boolean> {
    for (const child of image.children ?? []) {
      if (!(await this.push(repo, child, { byDigest: true }))) return false;
    }
    for (const blob of image.blobs) {
      const head = await this.send('head', `/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
      if (head === LOST) return false;
      if (head.status === 200) continue;
      if (!(await this.upload(repo, blob))) return false;
    }
    const tags = options.byDigest
      ? []
      : [this.rng.pick(TAGS), ...(this.rng.chance(0.2) ? [this.rng.pick(TAGS)] : [])];
    const unique = [...new Set(tags)];
    const reference = unique[0] ?? image.digest;
    const query = unique
      .slice(1)
      .map((t) => `tag=${t}`)
      .join('&');
    const events = (unique.length > 0 ? unique : [undefined]).map((tag) =>
      this.world.record({ client: this.id, op: 'put', repo, ...(tag && { tag }), digest: image.digest }),
    );
    const answer = await this.send(
      'manifest',
      `/v2/${repo}/manifests/${reference}${query ? `?${query}` : ''}`,
      {
        method: 'PUT',
        headers: { 'Content-Type': image.mediaType },
        body: image.manifest,
      },
    );
    const outcome = outcomeOf(answer, (s) => s === 201);
    for (const event of events) this.world.finish(event, outcome);
    return outcome === 'ok';
  }

  /** One blob, in a style chosen at random. True when the registry acknowledged it (201). */
  private async upload(repo: string, blob: Blob): Promise<boolean> {
    const styles = [
      'mono',
      'post-put',
      'patch-put',
      'chunks',
      'mount',
      'cancel-race',
      'patch-race',
      'direct',
      'checked',
    ] as const;
    const style = this.rng.pick(this.world.store.direct ? styles : styles.slice(0, -2));
    const { bytes, digest } = blob;
    if (style === 'mono') {
      const a = await this.send('upload', `/v2/${repo}/blobs/uploads/?digest=${digest}`, {
        method: 'POST',
        body: bytes,
      });
      return a !== LOST && a.status === 201;
    }
    let location: string | undefined;
    if (style === 'mount') {
      const from = this.rng.pick(REPOS.filter((r) => r !== repo));
      const a = await this.send('mount', `/v2/${repo}/blobs/uploads/?mount=${digest}&from=${from}`, {
        method: 'POST',
      });
      if (a === LOST) return false;
      if (a.status === 201) return true;
      location = a.status === 202 ? (a.headers.get('Location') ?? undefined) : undefined;
    } else {
      const a = await this.send('start', `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      if (a === LOST || a.status !== 202) return false;
      location = a.headers.get('Location') ?? undefined;
    }
    if (!location) return false;
    if (style === 'direct') return this.direct(repo, blob, location);
    if (style === 'checked') return this.checked(repo, blob, location);
    if (style === 'post-put') {
      const a = await this.send('put', `${location}?digest=${digest}`, { method: 'PUT', body: bytes });
      return a !== LOST && a.status === 201;
    }
    if (style === 'patch-race' && bytes.byteLength > 0) {
      // Two PATCHes of other bytes race on one session (a client that sent one again before the first
      // was answered): at most one may be acknowledged. A PATCH that writes no part takes no claim; its
      // commit, conditional on the state it started from, is what lets only one win.
      // Both say where their bytes go (Content-Range): one that runs after the other has committed
      // is refused too, so two acknowledgements can only mean two commits over one state.
      const other = new Uint8Array(bytes.byteLength).fill(0x5a);
      const headers = { 'Content-Range': `0-${bytes.byteLength - 1}` };
      const [mine, theirs] = await Promise.all([
        this.send('patch', location, { method: 'PATCH', body: bytes, headers }),
        this.send('patch', location, { method: 'PATCH', body: other, headers }),
      ]);
      const acknowledged = [mine, theirs].filter((a) => typeof a !== 'symbol' && a.status === 202).length;
      if (acknowledged > 1)
        throw new Error(
          `two racing PATCHes on upload ${location.split('/').pop()!.split('.')[0]} were both acknowledged`,
        );
      if (mine === LOST || mine.status !== 202) return false;
      const a = await this.send('put', `${mine.headers.get('Location')}?digest=${digest}`, { method: 'PUT' });
      return a !== LOST && a.status === 201;
    }
    if (style === 'chunks' && bytes.byteLength > 1) {
      const cut = this.rng.int(1, bytes.byteLength - 1);
      const first = await this.send('patch', location, {
        method: 'PATCH',
        body: bytes.slice(0, cut),
        headers: { 'Content-Range': `0-${cut - 1}` },
      });
      if (first === LOST || first.status !== 202) return false;
      const second = await this.send('patch', location, {
        method: 'PATCH',
        body: bytes.slice(cut),
        headers: { 'Content-Range': `${cut}-${bytes.byteLength - 1}` },
      });
      if (second === LOST || second.status !== 202) return false;
    } else {
      const a = await this.send('patch', location, { method: 'PATCH', body: bytes });
      if (a === LOST || a.status !== 202) return false;
    }
    if (style === 'cancel-race') {
      // The client gives up at the moment it completes: both requests race.
      const [put] = await Promise.all([
        this.send('put', `${location}?digest=${digest}`, { method: 'PUT' }),
        this.send('cancel', location, { method: 'DELETE' }),
      ]);
      return put !== LOST && put.status === 201;
    }
    const a = await this.send('put', `${location}?digest=${digest}`, { method: 'PUT' });
    return a !== LOST && a.status === 201;
  }

  /**
   * The direct-upload extension (berth relay's way): part URLs, the part sent straight to the store,
   * completion, and polling while the registry verifies in the background.
   */
  private async direct(repo: string, blob: Blob, location: string): Promise<boolean> {
    const id = location.split('/').pop()!;
    const base = `/v2/${repo}/_berth/v1/uploads/${id}`;
    const urls = await this.send('parts', `${base}/parts`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ parts: [1] }),
    });
    if (urls === LOST || urls.status !== 200) return false;
    const { parts } = JSON.parse(new TextDecoder().decode(urls.body)) as { parts: { url: string }[] };
    const url = new URL(parts[0]!.url);
    try {
      await this.world
        .s3()
        .multipart.uploadPart(
          url.pathname.slice(1),
          url.searchParams.get('uploadId')!,
          1,
          blob.bytes,
          blob.bytes.byteLength,
        );
    } catch {
      return false; // the store refused the part: a real client would retry it or give up
    }
    const complete = () =>
      this.send('complete', `${base}/complete`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ digest: blob.digest, size: blob.bytes.byteLength }),
      });
    // Now and then the client gives up at the moment it completes: both requests race.
    const done = this.rng.chance(0.1)
      ? (await Promise.all([complete(), this.send('cancel', location, { method: 'DELETE' })]))[0]
      : await complete();
    if (done === LOST) return false;
    if (done.status === 201) return true;
    if (done.status !== 202) return false;
    for (let poll = 0; poll < 20; poll++) {
      const status = await this.send('poll', base, {});
      if (status === LOST) return false;
      if (status.status === 202) continue;
      // Verified: the session is gone and the blob is there.
      const head = await this.send('head', `/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
      return head !== LOST && head.status === 200;
    }
    return false;
  }

  /**
   * The direct-upload extension's checked PUT (berth relay's way for a blob whose digest it knows):
   * the URL, the whole blob straight to the store (which checks its SHA-256, as S3 does), completion.
   * Now and then the client sends other bytes first (the store refuses them) or none at all, or
   * cancels the upload while completing it.
   */
  private async checked(repo: string, blob: Blob, location: string): Promise<boolean> {
    const ref = location.split('/').pop()!;
    const base = `/v2/${repo}/_berth/v1/uploads/${ref}`;
    const answer = await this.send('object', `${base}/object`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ digest: blob.digest, size: blob.bytes.byteLength }),
    });
    if (answer === LOST || answer.status !== 200) return false;
    const { headers } = JSON.parse(new TextDecoder().decode(answer.body)) as {
      headers: Record<string, string>;
    };
    const key = `data/${ref.split('.')[0]}`;
    const send = async (bytes: Uint8Array) => {
      try {
        await this.world.s3().put(key, bytes, { sha256Base64: headers['x-amz-checksum-sha256']! });
        return true;
      } catch {
        return false; // refused (other bytes), or the store failed: a real client would retry or give up
      }
    };
    const roll = this.rng.int(0, 9);
    if (roll === 0) {
      const other = new Uint8Array(blob.bytes.byteLength + 1);
      other.set(blob.bytes);
      if (await send(other)) throw new Error("the store took bytes that are not the digest's");
    }
    if (roll !== 1 && !(await send(blob.bytes))) return false;
    const complete = () =>
      this.send('complete', `${base}/complete`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ digest: blob.digest, size: blob.bytes.byteLength }),
      });
    if (roll === 2) {
      // The client gives up at the moment it completes: both requests race.
      const [done] = await Promise.all([complete(), this.send('cancel', location, { method: 'DELETE' })]);
      return done !== LOST && done.status === 201;
    }
    const done = await complete();
    return done !== LOST && done.status === 201;
  }

  async deleteTag(repo: string, tag: string): Promise<void> {
    const event = this.world.record({ client: this.id, op: 'deleteTag', repo, tag });
    const a = await this.send('delete', `/v2/${repo}/manifests/${tag}`, { method: 'DELETE' });
    this.world.finish(
      event,
      outcomeOf(a, (s) => s === 202),
    );
  }

  async deleteManifest(repo: string, image: Image): Promise<void> {
    const event = this.world.record({ client: this.id, op: 'deleteManifest', repo, digest: image.digest });
    const a = await this.send('delete', `/v2/${repo}/manifests/${image.digest}`, { method: 'DELETE' });
    this.world.finish(
      event,
      outcomeOf(a, (s) => s === 202),
    );
  }

  /** A pull: whatever it gets must be self-consistent (the bytes are what the digest says). */
  async pull(repo: string, tag: string): Promise<void> {
    const a = await this.send('pull', `/v2/${repo}/manifests/${tag}`, {
      headers: { Accept: `${OCI_MANIFEST}, ${OCI_INDEX}` },
    });
    if (a === LOST || a.status !== 200) return;
    const digest = a.headers.get('Docker-Content-Digest');
    if (digest !== sha256(a.body)) {
      throw new Error(`pull ${repo}:${tag} got bytes of ${sha256(a.body)} labelled ${digest}`);
    }
  }

  /** Starts an upload, sends some bytes, and goes away. */
  async abandon(repo: string): Promise<void> {
    const a = await this.send('start', `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    if (a === LOST || a.status !== 202) return;
    const location = a.headers.get('Location');
    if (location)
      await this.send('patch', location, { method: 'PATCH', body: new Uint8Array(this.rng.int(1, 500)) });
  }
}
