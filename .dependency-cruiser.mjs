// The import graph runs one way: entry points -> composition (lib/setup) -> config -> runtimes -> http ->
// features -> registry -> the leaves. lib/setup is the one composition root: it alone (with the entry
// points) reads the parsed configuration and hands the runtimes what they need, so nothing below it
// imports lib/config. `npm run lint` runs this check (depcruise); docs/architecture.md
// draws the same layers. A folder may import its own files and anything in a layer below it, never a
// layer above. Tests, bench/ and build/ are not checked: they may reach anything they exercise.

/** Top to bottom. Each layer is a list of path patterns (regular expressions from the repository root). */
const LAYERS = [
  { name: 'entry points', paths: ['^bin/', '^functions/', '^infra/'] },
  { name: 'composition', paths: ['^lib/setup/'] },
  { name: 'configuration', paths: ['^lib/config/'] },
  { name: 'Lambda runtime and local gateway', paths: ['^lib/lambda/', '^lib/gateway/'] },
  { name: 'local server and relay', paths: ['^lib/server/', '^lib/relay/'] },
  { name: 'http', paths: ['^lib/http/'] },
  {
    name: 'features',
    paths: ['^lib/browse/', '^lib/fsck/', '^lib/mirror/', '^lib/push/', '^lib/teardown/'],
  },
  { name: 'garbage collection', paths: ['^lib/gc/'] },
  { name: 'registry', paths: ['^lib/registry/'] },
  { name: 'auth and registry client', paths: ['^lib/auth/', '^lib/client/'] },
  {
    name: 'leaves',
    paths: ['^lib/oci/', '^lib/storage/', '^lib/util/', '^lib/logging/', '^lib/web/', '^lib/version[.]ts$'],
  },
];

const either = (paths) => `(${paths.join('|')})`;

/** One rule per layer: nothing in it imports a layer above it. */
const noUpwardImports = LAYERS.slice(1).map((layer, index) => ({
  name: `no-upward-import-from-${layer.name.replaceAll(' ', '-')}`,
  comment: `${layer.name} must not import a layer above it (${LAYERS.slice(0, index + 1)
    .map((above) => above.name)
    .join(', ')}): move the shared code down, or the caller up`,
  severity: 'error',
  from: { path: either(layer.paths) },
  to: { path: either(LAYERS.slice(0, index + 1).flatMap((above) => above.paths)) },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    ...noUpwardImports,
    {
      name: 'config-reads-leaf-specs-only',
      comment:
        'lib/config validates options with the parsers of the features they configure; it may import those ' +
        'leaf specs and nothing else of lib/, so that the configuration (bundled for every Lambda) stays small',
      severity: 'error',
      from: { path: '^lib/config/' },
      to: {
        path: '^lib/',
        pathNot: [
          '^lib/config/',
          '^lib/mirror/spec[.]ts$',
          '^lib/registry/tag-policy[.]ts$',
          '^lib/http/cors[.]ts$',
          '^lib/gc/duration[.]ts$',
        ],
      },
    },
    {
      name: 'routes-and-mirror-go-through-the-registry',
      comment:
        'lib/http and lib/mirror reach the store only through the registry (docs/architecture.md, "Who touches ' +
        'storage"): they build no storage keys, list no layout and use no driver; the port\'s types and errors are fine',
      severity: 'error',
      from: { path: '^lib/(http|mirror)/' },
      to: { path: '^lib/(registry/(keys|layout)[.]ts$|storage/)', pathNot: '^lib/storage/port[.]ts$' },
    },
    {
      name: 'registry-raises-domain-errors',
      comment:
        'lib/registry raises the failures of lib/registry/errors.ts, which carry no HTTP status or URL; ' +
        'lib/http/errors.ts maps them to the spec errors of lib/oci/errors.ts, in one place',
      severity: 'error',
      from: { path: '^lib/registry/' },
      to: { path: '^lib/oci/errors[.]ts$' },
    },
    {
      name: 'no-circular',
      comment: 'files that import each other (types included) cannot be read or moved one at a time',
      severity: 'error',
      from: { path: '^(lib|bin|functions|infra)/' },
      to: { circular: true },
    },
    {
      name: 'no-unresolvable',
      comment: 'an import that names no file: a typo, or a file moved without its importers',
      severity: 'error',
      from: { path: '^(lib|bin|functions|infra)/' },
      to: { couldNotResolve: true, dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    includeOnly: '^(lib|bin|functions|infra)/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.json'],
    },
  },
};
