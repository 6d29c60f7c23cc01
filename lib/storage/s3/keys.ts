/** Maps the port's keys to the bucket's and back, under an optional prefix (`team-a` -> `team-a/...`). */
export class KeySpace {
  private readonly prefix: string;

  constructor(prefix = '') {
    const trimmed = prefix.replace(/^\/+|\/+$/g, '');
    this.prefix = trimmed === '' ? '' : `${trimmed}/`;
  }

  toBucket(key: string): string {
    return this.prefix + key;
  }

  fromBucket(bucketKey: string): string {
    if (!bucketKey.startsWith(this.prefix))
      throw new Error(`bucket key ${bucketKey} is outside ${this.prefix}`);
    return bucketKey.slice(this.prefix.length);
  }
}
