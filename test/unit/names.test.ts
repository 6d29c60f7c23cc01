import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_NAME_LENGTH, isTag, parseName, parseReference, parseTag } from '../../lib/oci/names.ts';
import { expectRegistryError } from './registry-error.ts';

// The OCI distribution spec's grammars, written out again here so that the tests check the code
// against the spec rather than against itself.
const SPEC_NAME = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
const SPEC_TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

const alnum = fc.string({
  unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'),
  minLength: 1,
  maxLength: 8,
});
const separator = fc.oneof(
  fc.constant('.'),
  fc.constant('_'),
  fc.constant('__'),
  fc.integer({ min: 1, max: 3 }).map((n) => '-'.repeat(n)),
);
const component = fc
  .tuple(alnum, fc.array(fc.tuple(separator, alnum), { maxLength: 4 }))
  .map(([first, rest]) => first + rest.map(([sep, part]) => sep + part).join(''));
/** Built component by component, so that names with several path components are common. */
const builtName = fc
  .array(component, { minLength: 1, maxLength: 6 })
  .map((parts) => parts.join('/'))
  .filter((name) => name.length <= MAX_NAME_LENGTH);
/** Straight from the spec's regular expression. */
const specName = fc.stringMatching(SPEC_NAME, { maxLength: MAX_NAME_LENGTH });
const validName = fc.oneof(builtName, specName);

const validTag = fc.stringMatching(SPEC_TAG);

/** `value` with `insert` spliced in at some position (start and end included). */
function spliced(value: fc.Arbitrary<string>, insert: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc
    .tuple(value, insert, fc.nat())
    .map(([v, ins, at]) => v.slice(0, at % (v.length + 1)) + ins + v.slice(at % (v.length + 1)));
}

describe('parseName', () => {
  it('accepts every name of the spec grammar up to 255 characters, unchanged', () => {
    fc.assert(
      fc.property(validName, (name) => {
        expect(SPEC_NAME.test(name)).toBe(true);
        expect(parseName(name)).toBe(name);
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    'a',
    'library/ubuntu',
    'a.b_c__d-e---f',
    'my-org/team.app/sub_component/x',
    '0/1/2',
    'obj.obj/x.d', // the filesystem store's own suffixes are ordinary name characters
    'blobs/manifests/tags', // route words are valid components
  ])('accepts %s', (name) => {
    expect(parseName(name)).toBe(name);
  });

  it('accepts a name of exactly 255 characters and refuses 256', () => {
    const longest = `${'a'.repeat(127)}/${'b'.repeat(127)}`;
    expect(longest).toHaveLength(255);
    expect(parseName(longest)).toBe(longest);
    const err = expectRegistryError(() => parseName(`${longest}c`), 'NAME_INVALID', 400);
    expect(err.message).toContain('255');
  });

  it('refuses grammar-valid names longer than 255 characters', () => {
    const longName = fc
      .array(component, { minLength: 1, maxLength: 80 })
      .map((parts) => parts.join('/'))
      .filter((name) => name.length > MAX_NAME_LENGTH);
    const padded = fc.tuple(builtName, fc.integer({ min: 1, max: 300 })).map(([name, extra]) => {
      const pad = 'x'.repeat(Math.max(extra, MAX_NAME_LENGTH - name.length));
      return `${name}/${pad}`;
    });
    fc.assert(
      fc.property(fc.oneof(longName, padded), (name) => {
        expect(SPEC_NAME.test(name)).toBe(true);
        expectRegistryError(() => parseName(name), 'NAME_INVALID', 400);
      }),
    );
  });

  it('refuses the empty name', () => {
    expectRegistryError(() => parseName(''), 'NAME_INVALID', 400);
  });

  const mutations: [string, fc.Arbitrary<string>][] = [
    ['an upper-case letter', spliced(validName, fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'))],
    ['".."', spliced(validName, fc.constant('..'))],
    ['"//"', spliced(validName, fc.constant('//'))],
    ['"%2e" (an escaped dot)', spliced(validName, fc.constantFrom('%2e', '%2E', '%2f'))],
    ['"___" or "_-"', spliced(validName, fc.constantFrom('___', '_-', '-_', '.-', '-.'))],
    [
      'a character outside the grammar',
      spliced(validName, fc.constantFrom(':', '@', ' ', '+', '\\', '\0', '\n', 'é', '*', '?', '#')),
    ],
    [
      'a leading separator',
      fc.tuple(fc.constantFrom('.', '_', '__', '-', '/'), validName).map(([s, n]) => s + n),
    ],
    [
      'a trailing separator',
      fc.tuple(validName, fc.constantFrom('.', '_', '__', '-', '/')).map(([n, s]) => n + s),
    ],
  ];

  it.each(mutations)('refuses a valid name with %s', (_label, mutated) => {
    fc.assert(
      fc.property(mutated, (name) => {
        expect(SPEC_NAME.test(name) && name.length <= MAX_NAME_LENGTH).toBe(false);
        expectRegistryError(() => parseName(name), 'NAME_INVALID', 400);
      }),
      { numRuns: 300 },
    );
  });

  it.each(['..', '.', 'a/../b', '../a', 'a/./b', 'a/', '/a', 'a//b', '%2e%2e', 'a/%2e%2e/b', 'A', 'a b'])(
    'refuses %s',
    (name) => {
      expectRegistryError(() => parseName(name), 'NAME_INVALID', 400);
    },
  );
});

describe('parseTag', () => {
  it('accepts every tag of the spec grammar, unchanged', () => {
    fc.assert(
      fc.property(validTag, (tag) => {
        expect(isTag(tag)).toBe(true);
        expect(parseTag(tag)).toBe(tag);
      }),
      { numRuns: 500 },
    );
  });

  it.each(['latest', 'v1.2.3', '_', 'A', '1.0-rc_1', 'sha256-abc.sig', 'x'.repeat(128)])(
    'accepts %s',
    (tag) => {
      expect(parseTag(tag)).toBe(tag);
    },
  );

  it('refuses tags of 129 characters or more', () => {
    fc.assert(
      fc.property(
        fc
          .tuple(validTag, fc.stringMatching(/^[a-zA-Z0-9._-]{129,300}$/))
          .map(([t, more]) => (t + more).slice(0, 129 + (more.length % 50))),
        (tag) => {
          expect(tag.length).toBeGreaterThan(128);
          expect(isTag(tag)).toBe(false);
          expectRegistryError(() => parseTag(tag), 'TAG_INVALID', 400);
        },
      ),
    );
  });

  it('refuses tags starting with "." or "-"', () => {
    fc.assert(
      fc.property(
        fc.tuple(fc.constantFrom('.', '-'), fc.stringMatching(/^[a-zA-Z0-9._-]{0,127}$/)),
        ([first, rest]) => {
          expectRegistryError(() => parseTag(first + rest), 'TAG_INVALID', 400);
        },
      ),
    );
  });

  it('refuses tags with a character outside the grammar', () => {
    fc.assert(
      fc.property(spliced(validTag, fc.constantFrom('/', ':', '@', ' ', '+', '%', '\n', 'ü', '~')), (tag) => {
        expectRegistryError(() => parseTag(tag), 'TAG_INVALID', 400);
      }),
    );
  });

  it('refuses the empty tag', () => {
    expectRegistryError(() => parseTag(''), 'TAG_INVALID', 400);
  });
});

describe('parseReference', () => {
  const hex64 = 'a'.repeat(64);

  it('reads a valid digest as a digest', () => {
    const ref = parseReference(`sha256:${hex64}`);
    expect(ref.kind).toBe('digest');
    expect(ref.kind === 'digest' && ref.digest.hex).toBe(hex64);
  });

  it('reads anything without a colon as a tag, even a bare hex string', () => {
    expect(parseReference('latest')).toEqual({ kind: 'tag', tag: 'latest' });
    expect(parseReference(hex64)).toEqual({ kind: 'tag', tag: hex64 });
  });

  it('refuses an invalid tag with TAG_INVALID', () => {
    expectRegistryError(() => parseReference('-bad'), 'TAG_INVALID', 400);
    expectRegistryError(() => parseReference('x'.repeat(129)), 'TAG_INVALID', 400);
  });

  it('treats any reference with a colon as a digest: an invalid one is DIGEST_INVALID, never TAG_INVALID', () => {
    const withColon = spliced(validTag, fc.constant(':')).filter(
      (value) => !/^sha(256|512):[a-f0-9]+$/.test(value),
    );
    fc.assert(
      fc.property(withColon, (value) => {
        expectRegistryError(() => parseReference(value), 'DIGEST_INVALID', 400);
      }),
    );
    expectRegistryError(() => parseReference('latest:foo'), 'DIGEST_INVALID', 400);
    expectRegistryError(() => parseReference(`sha256:${'A'.repeat(64)}`), 'DIGEST_INVALID', 400);
    expectRegistryError(() => parseReference('md5:d41d8cd98f00b204e9800998ecf8427e'), 'DIGEST_INVALID', 400);
  });
});
