import { html } from 'htm/preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import type { RepositoryRow } from '../api.ts';
import type { AppContext } from '../context.ts';
import { absoluteTime, formatBytes } from '../format.ts';
import { href } from '../router.ts';
import { ErrorBox, Loading, Time } from '../ui.ts';

const PAGE = 50;

type SortKey = 'name' | 'tags' | 'size' | 'lastPush';

/**
 * The catalog: search by name (the server filters, a page at a time), sort what is loaded, load
 * more. Sorting the whole of a large catalog by size or time would mean reading every repository,
 * so sorting applies to the rows on the page; name order is the catalog's own.
 */
export function RepositoriesPage(props: { app: AppContext }) {
  const { api } = props.app;
  const [query, setQuery] = useState('');
  const [search, setSearch] = useState('');
  const [rows, setRows] = useState<RepositoryRow[]>([]);
  const [next, setNext] = useState<string | undefined>();
  const [sizesAt, setSizesAt] = useState<string | undefined>();
  const [error, setError] = useState<unknown>();
  const [loading, setLoading] = useState(true);
  const [sort, setSort] = useState<{ key: SortKey; descending: boolean }>({ key: 'name', descending: false });

  useEffect(() => {
    const t = setTimeout(() => setSearch(query.trim().toLowerCase()), 250);
    return () => clearTimeout(t);
  }, [query]);

  const load = async (last?: string) => {
    setLoading(true);
    setError(undefined);
    try {
      const page = await api.repositories({ n: PAGE, last, q: search || undefined });
      setRows((current) => (last ? [...current, ...page.repositories] : page.repositories));
      setNext(page.next);
      setSizesAt(page.sizesAt);
    } catch (err) {
      setError(err);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    void load();
  }, [search]);

  const sorted = useMemo(() => {
    const value = (r: RepositoryRow): string | number =>
      sort.key === 'name' ? r.name : sort.key === 'lastPush' ? (r.lastPush ?? '') : (r[sort.key] ?? -1);
    const out = [...rows].sort((a, b) => (value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0));
    return sort.descending ? out.reverse() : out;
  }, [rows, sort]);

  const header = (key: SortKey, label: string, numeric = false) => {
    const active = sort.key === key;
    const ariaSort = active ? (sort.descending ? 'descending' : 'ascending') : 'none';
    return html`<th scope="col" aria-sort=${ariaSort} class=${numeric ? 'num' : ''}>
      <button
        type="button"
        class="sort"
        onClick=${() => setSort({ key, descending: active ? !sort.descending : key !== 'name' })}
      >
        ${label}<span aria-hidden="true">${active ? (sort.descending ? ' ▼' : ' ▲') : ''}</span>
      </button>
    </th>`;
  };

  return html`<section>
    <h1 tabindex="-1">Repositories</h1>
    <div class="toolbar">
      <label for="repo-search">Search by name</label>
      <input
        id="repo-search"
        type="search"
        placeholder="e.g. team/app"
        value=${query}
        onInput=${(e: Event) => setQuery((e.target as HTMLInputElement).value)}
        autocomplete="off"
        spellcheck=${false}
      />
    </div>
    ${error !== undefined && html`<${ErrorBox} error=${error} />`}
    <table class="grid" aria-busy=${loading}>
      <caption class="offscreen">
        Repositories, ${rows.length} shown
      </caption>
      <thead>
        <tr>
          ${header('name', 'Name')} ${header('tags', 'Tags', true)} ${header('size', 'Size', true)}
          ${header('lastPush', 'Last push')}
        </tr>
      </thead>
      <tbody>
        ${sorted.map(
          (r) =>
            html`<tr key=${r.name}>
              <th scope="row"><a href=${href.repository(r.name)}>${r.name}</a></th>
              <td class="num">${r.tags}${r.tagsComplete ? '' : '+'}</td>
              <td class="num">${formatBytes(r.size)}</td>
              <td><${Time} iso=${r.lastPush} /></td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${loading && html`<${Loading} what="repositories" />`}
    ${
      !loading &&
      rows.length === 0 &&
      !error &&
      html`<p class="empty">
        ${search ? `No repository matches “${search}”.` : 'No repositories you may see yet. Push an image to start.'}
      </p>`
    }
    ${
      next !== undefined &&
      !loading &&
      html`<p><button type="button" onClick=${() => load(next)}>Load more</button></p>`
    }
    <p class="muted small">
      ${
        sizesAt
          ? `Sizes from the usage report of ${absoluteTime(sizesAt)} (blobs each repository links).`
          : 'Sizes appear once a usage report exists: each garbage collection writes one, as does `berth usage --save`.'
      }
    </p>
  </section>`;
}
