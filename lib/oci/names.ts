import { RegistryError } from './errors.ts';
import { tryParseDigest, type ParsedDigest } from './digest.ts';

declare const nameBrand: unique symbol;
declare const tagBrand: unique symbol;
/** A repository name that matches the spec's grammar: safe to use as part of a storage key. */
export type RepositoryName = string & { readonly [nameBrand]: true };
/** A tag that matches the spec's grammar. */
export type Tag = string & { readonly [tagBrand]: true };

/** Repository names are limited like in CNCF Distribution, so host + name stays under clients' limits. */
export const MAX_NAME_LENGTH = 255;
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

export function parseName(value: string): RepositoryName {
  if (value.length === 0) throw new RegistryError('NAME_INVALID', 'repository name is empty');
  if (value.length > MAX_NAME_LENGTH) {
    throw new RegistryError(
      'NAME_INVALID',
      `repository name is ${value.length} characters long; the limit is ${MAX_NAME_LENGTH}`,
    );
  }
  if (!NAME.test(value)) {
    throw new RegistryError(
      'NAME_INVALID',
      'invalid repository name: use lowercase letters, digits and separators (. _ __ -) in path components joined by /',
      { detail: { name: value.slice(0, MAX_NAME_LENGTH) } },
    );
  }
  return value as RepositoryName;
}

export function isTag(value: string): value is Tag {
  return TAG.test(value);
}

export function parseTag(value: string): Tag {
  if (!isTag(value)) {
    throw new RegistryError(
      'TAG_INVALID',
      'invalid tag: up to 128 characters of letters, digits, _ . and -, not starting with . or -',
      { detail: { tag: value.slice(0, 200) } },
    );
  }
  return value;
}

/** A manifest reference: a tag or a digest. */
export type Reference = { kind: 'tag'; tag: Tag } | { kind: 'digest'; digest: ParsedDigest };

/**
 * Parses the `<reference>` of `/v2/<name>/manifests/<reference>`. A string with a colon is a digest
 * (tags cannot contain colons); everything else must be a valid tag.
 */
export function parseReference(value: string): Reference {
  if (value.includes(':')) {
    const digest = tryParseDigest(value);
    if (!digest) {
      throw new RegistryError(
        'DIGEST_INVALID',
        `"${value.slice(0, 80)}" is neither a valid tag nor a valid digest`,
      );
    }
    return { kind: 'digest', digest };
  }
  return { kind: 'tag', tag: parseTag(value) };
}
