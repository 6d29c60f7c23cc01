// `npm run docs:options`: writes the README's configuration table anew from the option table
// (lib/config/options.ts). test/unit/options.test.ts fails while the two differ.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withReadmeTable } from '../lib/config/docs.ts';

const readme = fileURLToPath(new URL('../README.md', import.meta.url));
const before = readFileSync(readme, 'utf8');
const after = withReadmeTable(before);
if (after === before) {
  process.stdout.write('README.md: the configuration table is current\n');
} else {
  writeFileSync(readme, after);
  process.stdout.write('README.md: configuration table rewritten from lib/config/options.ts\n');
}
