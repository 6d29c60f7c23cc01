import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import type { RetentionRule, TagRow } from '../api.ts';
import type { AppContext } from '../context.ts';
import { DeleteDialog } from '../delete-dialog.ts';
import { formatBytes } from '../format.ts';
import { pullCommand, type PullTool } from '../pull.ts';
import { href } from '../router.ts';
import { CopyButton, Digest, ErrorBox, KindBadge, Loading, Time, useLoad } from '../ui.ts';

const PAGE = 50;

export function describeRetention(rule: RetentionRule): string {
  const parts: string[] = [];
  if (rule.keepLast !== undefined) parts.push(`keeps the newest ${rule.keepLast} tags`);
  if (rule.deleteOlderThanDays !== undefined)
    parts.push(`deletes tags older than ${rule.deleteOlderThanDays} days`);
  if (rule.keepTags?.length) parts.push(`always keeps ${rule.keepTags.join(', ')}`);
  if (rule.untaggedAfterDays !== undefined)
    parts.push(`deletes untagged manifests after ${rule.untaggedAfterDays} days`);
  return `${rule.repositories}: ${parts.join('; ') || 'no limits'}`;
}

/** A repository: what applies to it, and its tags with kind, platforms, size, times and commands. */
export function RepositoryPage(props: { app: AppContext; name: string }) {
  const { app, name } = props;
  const summary = useLoad(() => app.api.summary(name), [name]);
  const [tags, setTags] = useState<TagRow[]>([]);
  const [next, setNext] = useState<string | undefined>();
  const [pending, setPending] = useState(0);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<unknown>();
  const [tool, setTool] = useState<PullTool>('docker');
  const [deleting, setDeleting] = useState<string | undefined>();
  const [notice, setNotice] = useState<string | undefined>();

  const load = async (last?: string) => {
    setLoading(true);
    setError(undefined);
    try {
      const page = await app.api.tags(name, { n: PAGE, last });
      setTags((current) => (last ? [...current, ...page.tags] : page.tags));
      setNext(page.next);
      setPending(page.pending);
    } catch (err) {
      setError(err);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    setTags([]);
    void load();
  }, [name]);

  const s = summary.data;
  const mayDelete = s?.access.includes('delete') ?? false;

  return html`<section>
    <nav aria-label="Breadcrumb" class="crumbs"><a href=${href.repositories()}>Repositories</a> /</nav>
    <h1 tabindex="-1">${name}</h1>
    ${summary.error !== undefined && html`<${ErrorBox} error=${summary.error} />`}
    ${
      s &&
      html`<dl class="facts">
          <div>
            <dt>Tags</dt>
            <dd>${s.tags}${s.tagsComplete ? '' : '+'}</dd>
          </div>
          <div>
            <dt>Size</dt>
            <dd>${formatBytes(s.size)}</dd>
          </div>
          <div>
            <dt>Last push</dt>
            <dd><${Time} iso=${s.lastPush} /></dd>
          </div>
          <div>
            <dt>You may</dt>
            <dd>${s.access.join(', ') || 'nothing'}</dd>
          </div>
          ${
            s.mirror &&
            html`<div>
              <dt>Mirror</dt>
              <dd>read-only copy of an upstream registry</dd>
            </div>`
          }
        </dl>
        ${
          (s.retention || s.immutableTags.length > 0) &&
          html`<div class="policy">
            ${s.retention && html`<p><strong>Retention:</strong> ${describeRetention(s.retention)}</p>`}
            ${
              s.immutableTags.length > 0 &&
              html`<p>
                <strong>Immutable tags:</strong> ${s.immutableTags.map((r) => html`<code>${r}</code> `)}
                (pushes cannot move them)
              </p>`
            }
          </div>`
        }`
    }
    <div class="toolbar">
      <fieldset class="segmented">
        <legend>Pull with</legend>
        ${(['docker', 'podman'] as const).map(
          (t) =>
            html`<label
              ><input
                type="radio"
                name="tool"
                value=${t}
                checked=${tool === t}
                onChange=${() => setTool(t)}
              />
              ${t}</label
            >`,
        )}
      </fieldset>
    </div>
    ${notice && html`<p class="notice" role="status">${notice}</p>`}
    ${error !== undefined && html`<${ErrorBox} error=${error} />`}
    <table class="grid" aria-busy=${loading}>
      <caption class="offscreen">
        Tags of ${name}
      </caption>
      <thead>
        <tr>
          <th scope="col">Tag</th>
          <th scope="col">Digest</th>
          <th scope="col">Kind</th>
          <th scope="col">Platforms</th>
          <th scope="col" class="num">Size</th>
          <th scope="col">Created</th>
          <th scope="col">Pushed</th>
          <th scope="col">Pull</th>
          ${mayDelete && html`<th scope="col"><span class="offscreen">Actions</span></th>`}
        </tr>
      </thead>
      <tbody>
        ${tags.map((t) => {
          const command = pullCommand(app.host, name, t.name, t.summary?.kind, tool);
          return html`<tr key=${t.name}>
            <th scope="row">
              <a href=${href.manifest(name, t.name)}>${t.name}</a>
              ${t.immutable && html` <span class="badge immutable" title="Pushes cannot move this tag">immutable</span>`}
            </th>
            <td><${Digest} digest=${t.digest} /></td>
            <td>
              ${t.summary ? html`<${KindBadge} kind=${t.summary.kind} />` : html`<span class="muted">…</span>`}
            </td>
            <td class="platforms">${t.summary?.platforms?.join(', ') ?? ''}</td>
            <td class="num">${formatBytes(t.summary?.size)}</td>
            <td><${Time} iso=${t.summary?.created} /></td>
            <td><${Time} iso=${t.pushedAt} /></td>
            <td>
              <${CopyButton} text=${command} label=${`Copy pull command for ${t.name}: ${command}`} compact />
            </td>
            ${
              mayDelete &&
              html`<td>
                <button
                  type="button"
                  class="danger compact"
                  onClick=${() => setDeleting(t.name)}
                  aria-label=${`Delete tag ${t.name}`}
                >
                  Delete
                </button>
              </td>`
            }
          </tr>`;
        })}
      </tbody>
    </table>
    ${loading && html`<${Loading} what="tags" />`}
    ${!loading && tags.length === 0 && !error && html`<p class="empty">No tags.</p>`}
    ${
      pending > 0 &&
      !loading &&
      html`<p class="muted small">
        ${pending} tags were pushed before summaries were kept; their details are being read.
        <button type="button" class="link" onClick=${() => load()}>Refresh</button>
      </p>`
    }
    ${next !== undefined && !loading && html`<p><button type="button" onClick=${() => load(next)}>Load more</button></p>`}
    ${
      deleting &&
      html`<${DeleteDialog}
        app=${app}
        repo=${name}
        reference=${deleting}
        retention=${s?.retention}
        onClose=${() => setDeleting(undefined)}
        onDeleted=${() => {
          setNotice(`Deleted tag ${deleting}.`);
          setDeleting(undefined);
          summary.reload();
          void load();
        }}
      />`
    }
  </section>`;
}
