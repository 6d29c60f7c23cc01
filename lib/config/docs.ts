import { configSchema } from './config.ts';
import { OPTION_LIST, type Command, type Option } from './options.ts';

// The help of the commands and the README's configuration table, written from the option table
// (lib/config/options.ts), so that neither can drift from what the code accepts.

type Listed = Option & { readonly path: string };

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const WIDTH = 100;
const HELP_COLUMN = 24;

/** The schema's own defaults, by config path. */
function defaults(): Map<string, unknown> {
  const parsed = configSchema().parse({}) as Record<string, unknown>;
  const values = new Map<string, unknown>();
  for (const option of OPTION_LIST) {
    values.set(
      option.path,
      option.path.split('.').reduce<unknown>((at, key) => (at as Record<string, unknown>)?.[key], parsed),
    );
  }
  return values;
}

/** The default as people read it; `code` marks values that are typed as they are. */
function defaultOf(option: Listed, values: Map<string, unknown>): { text: string; code: boolean } {
  if (option.defaultDoc !== undefined) return { text: option.defaultDoc, code: false };
  const value = values.get(option.path);
  if (value === undefined) return { text: '', code: false };
  if (typeof value === 'boolean') return { text: value ? 'on' : 'off', code: false };
  if (typeof value === 'number' && value >= MiB && value % MiB === 0) {
    return { text: value % GiB === 0 ? `${value / GiB} GiB` : `${value / MiB} MiB`, code: false };
  }
  return { text: String(value), code: true };
}

function flagOf(option: Listed, command: Command): string | undefined {
  const flag = option.flag;
  if (!flag || !(flag.commands ?? ['serve']).includes(command)) return undefined;
  return `--${flag.name}${flag.arg ? ` ${flag.arg}` : ''}`;
}

/** Markdown to plain text: the help shows `x` as x. */
function plain(text: string): string {
  return text.replaceAll('`', '');
}

/** Words wrapped to WIDTH, every line after the first indented by `indent`; `first` is the start of the first line. */
function wrap(first: string, text: string, indent: number): string {
  const lines: string[] = [];
  let line = first.length >= indent ? `${first}  ` : first.padEnd(indent);
  let empty = true;
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (!empty && line.length + 1 + word.length > WIDTH) {
      lines.push(line.trimEnd());
      line = ' '.repeat(indent);
      empty = true;
    }
    line += empty ? word : ` ${word}`;
    empty = false;
  }
  lines.push(line.trimEnd());
  return lines.join('\n');
}

function envText(option: Listed): string {
  // The variable that wins first (BERTH_PORT over PORT).
  return [...option.env].reverse().join(', ');
}

/** One help entry per configuration flag of `command`: the flag, its meaning, variable and default. */
export function flagHelp(command: Command, only?: (option: Listed) => boolean): string {
  const values = defaults();
  const entries: string[] = [];
  for (const option of OPTION_LIST) {
    const flag = flagOf(option, command);
    if (!flag || (only && !only(option))) continue;
    const value = defaultOf(option, values);
    const env = option.flag?.negates ? `${option.env.at(-1)}=off` : envText(option);
    const text = `${plain(option.doc)} [${env}]${value.text && !option.flag?.negates ? ` (default ${value.text})` : ''}`;
    entries.push(wrap(`  ${flag}`, text, HELP_COLUMN));
  }
  return entries.join('\n');
}

/** The options no flag of `command` sets, one entry each: the variable, its default and meaning. */
export function environmentHelp(command: Command): string {
  const values = defaults();
  return OPTION_LIST.filter((option) => !flagOf(option, command))
    .map((option) => {
      const value = defaultOf(option, values);
      return wrap(`  ${envText(option)}${value.text ? ` (${value.text})` : ''}`, plain(option.doc), 40);
    })
    .join('\n');
}

const README_HEADER = ['Flag', 'Environment', 'Default', 'Meaning'];

/** The README's configuration table (Markdown, columns padded as prettier pads them). */
export function readmeTable(): string {
  const values = defaults();
  const rows = OPTION_LIST.map((option) => {
    const commands = option.flag?.commands ?? ['serve'];
    const flag = option.flag
      ? `\`--${option.flag.name}\`${commands.includes('serve') ? '' : ` (${commands.join(', ')})`}`
      : '';
    const value = defaultOf(option, values);
    return [
      flag,
      option.env
        .slice()
        .reverse()
        .map((name) => `\`${name}\``)
        .join(', '),
      value.code ? `\`${value.text}\`` : value.text,
      option.doc,
    ];
  });
  const all = [README_HEADER, ...rows];
  const widths = README_HEADER.map((_, i) => Math.max(...all.map((row) => [...row[i]!].length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, i) => cell + ' '.repeat(widths[i]! - [...cell].length)).join(' | ')} |`;
  return [line(README_HEADER), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join(
    '\n',
  );
}

export const README_BEGIN =
  '<!-- options:begin (generated from lib/config/options.ts: npm run docs:options) -->';
export const README_END = '<!-- options:end -->';

/** The README with its configuration table written anew between the markers. */
export function withReadmeTable(readme: string): string {
  const begin = readme.indexOf(README_BEGIN);
  const end = readme.indexOf(README_END);
  if (begin < 0 || end < begin)
    throw new Error(`README.md lacks the markers ${README_BEGIN} ... ${README_END}`);
  return `${readme.slice(0, begin + README_BEGIN.length)}\n\n${readmeTable()}\n\n${readme.slice(end)}`;
}
