import { html } from 'htm/preact';
import type { AppContext } from '../context.ts';
import { absoluteTime, formatBytes } from '../format.ts';
import { href } from '../router.ts';
import { ErrorBox, Loading, Time, useLoad } from '../ui.ts';
import { describeRetention } from './repository.ts';

/** For accounts with registry:catalog:*: version, storage, rules, the last GC run and bytes per repository. */
export function OperationsPage(props: { app: AppContext }) {
  const { app } = props;
  const ops = app.info.operations;
  const usage = useLoad(() => app.api.usage(), []);
  if (!ops) {
    return html`<section>
      <h1 tabindex="-1">Usage and operations</h1>
      <p>This page is for accounts with the <code>registry:catalog:*</code> grant.</p>
    </section>`;
  }
  const gc = ops.lastGc;
  return html`<section>
    <h1 tabindex="-1">Usage and operations</h1>
    <dl class="facts">
      <div>
        <dt>Version</dt>
        <dd>Berth ${ops.version}</dd>
      </div>
      <div>
        <dt>Storage</dt>
        <dd>${ops.storage}</dd>
      </div>
      ${
        app.info.expiresAt &&
        html`<div>
          <dt>Expires</dt>
          <dd><${Time} iso=${app.info.expiresAt} /></dd>
        </div>`
      }
    </dl>
    <h2>Garbage collection</h2>
    ${
      gc
        ? html`<p>
            ${'Last run finished '}<${Time}
              iso=${gc.finishedAt}
            />${` (${absoluteTime(gc.finishedAt)}): freed `}<strong>${formatBytes(gc.bytesFreed)}</strong>${`, deleted ${describeDeleted(gc.deleted)}${gc.restored > 0 ? `, put back ${gc.restored} that a push needed` : ''}.`}
          </p>`
        : html`<p class="muted">
            ${'No collection has finished yet (the janitor runs one daily on AWS; locally, '}<code
              >berth gc</code
            >).
          </p>`
    }
    <h2>Retention rules</h2>
    ${
      ops.retention.length > 0
        ? html`<ul>
            ${ops.retention.map((r) => html`<li>${describeRetention(r)}</li>`)}
          </ul>`
        : html`<p class="muted">None: every tag is kept.</p>`
    }
    <h2>Immutable tags</h2>
    ${
      ops.immutableTags.length > 0
        ? html`<p>${ops.immutableTags.map((r) => html`<code>${r}</code> `)}</p>`
        : html`<p class="muted">None.</p>`
    }
    <h2>Usage</h2>
    ${usage.loading && html`<${Loading} what="the usage report" />`}
    ${usage.error !== undefined && html`<${ErrorBox} error=${usage.error} />`}
    ${
      usage.data &&
      html`<p>
          ${formatBytes(usage.data.totalBytes)} in ${usage.data.totalBlobs} blobs (shared blobs counted once),
          as of ${absoluteTime(usage.data.generatedAt)}.
        </p>
        <table class="grid">
          <thead>
            <tr>
              <th scope="col">Repository</th>
              <th scope="col" class="num">Bytes</th>
              <th scope="col" class="num">Only here</th>
              <th scope="col" class="num">Blobs</th>
              <th scope="col" class="num">Manifests</th>
              <th scope="col" class="num">Tags</th>
            </tr>
          </thead>
          <tbody>
            ${[...usage.data.repositories]
              .sort((a, b) => b.bytes - a.bytes)
              .map(
                (r) =>
                  html`<tr key=${r.name}>
                    <th scope="row"><a href=${href.repository(r.name)}>${r.name}</a></th>
                    <td class="num">${formatBytes(r.bytes)}</td>
                    <td class="num">${formatBytes(r.exclusiveBytes)}</td>
                    <td class="num">${r.blobs}</td>
                    <td class="num">${r.manifests}</td>
                    <td class="num">${r.tags}</td>
                  </tr>`,
              )}
          </tbody>
        </table>`
    }
  </section>`;
}

function describeDeleted(deleted: Record<string, number>): string {
  const parts = Object.entries(deleted)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${n} ${kind}${n === 1 ? '' : 's'}`);
  return parts.join(', ') || 'nothing';
}
