import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import type { ManifestDetails } from '../api.ts';
import type { AppContext } from '../context.ts';
import { DeleteDialog } from '../delete-dialog.ts';
import { formatBytes, shortDigest } from '../format.ts';
import { pullCommand } from '../pull.ts';
import { href } from '../router.ts';
import { Command, Digest, ErrorBox, KindBadge, Loading, Time, useLoad } from '../ui.ts';

/** One manifest: layers, config, platforms, referrers, the raw JSON, and delete. */
export function ManifestPage(props: { app: AppContext; name: string; reference: string }) {
  const { app, name, reference } = props;
  const details = useLoad(() => app.api.manifest(name, reference), [name, reference]);
  const summary = useLoad(() => app.api.summary(name), [name]);
  const [deleting, setDeleting] = useState(false);
  const d = details.data;
  const isTag = !reference.includes(':');
  return html`<section>
    <nav aria-label="Breadcrumb" class="crumbs">
      <a href=${href.repositories()}>Repositories</a> / <a href=${href.repository(name)}>${name}</a> /
    </nav>
    <h1 tabindex="-1">${isTag ? `${name}:${reference}` : `${name}@${shortDigest(reference)}`}</h1>
    ${details.loading && html`<${Loading} what="the manifest" />`}
    ${details.error !== undefined && html`<${ErrorBox} error=${details.error} />`}
    ${
      d &&
      html`<${Overview} app=${app} name=${name} reference=${reference} details=${d} />
        ${d.platforms && html`<${Platforms} name=${name} details=${d} />`}
        ${d.layers && html`<${Layers} details=${d} />`} ${d.config && html`<${Config} details=${d} />`}
        <${Referrers} name=${name} details=${d} />
        <details class="raw">
          <summary>Manifest JSON (${formatBytes(d.size)})</summary>
          <pre tabindex="0"><code>${pretty(d.manifest)}</code></pre>
        </details>
        ${
          summary.data?.access.includes('delete') &&
          html`<p>
            <button type="button" class="danger" onClick=${() => setDeleting(true)}>
              Delete manifest ${shortDigest(d.digest)}
            </button>
          </p>`
        }
        ${
          deleting &&
          html`<${DeleteDialog}
            app=${app}
            repo=${name}
            reference=${d.digest}
            retention=${summary.data?.retention}
            onClose=${() => setDeleting(false)}
            onDeleted=${() => {
              location.hash = href.repository(name);
            }}
          />`
        }`
    }
  </section>`;
}

function Overview(props: { app: AppContext; name: string; reference: string; details: ManifestDetails }) {
  const { details: d, name, reference, app } = props;
  const tag = reference.includes(':') ? undefined : reference;
  const s = d.summary;
  return html`<dl class="facts">
      <div>
        <dt>Kind</dt>
        <dd><${KindBadge} kind=${s.kind} /></dd>
      </div>
      <div>
        <dt>Digest</dt>
        <dd><${Digest} digest=${d.digest} /></dd>
      </div>
      <div>
        <dt>Media type</dt>
        <dd><code>${d.mediaType}</code></dd>
      </div>
      ${
        s.artifactType &&
        html`<div>
          <dt>Artifact type</dt>
          <dd><code>${s.artifactType}</code></dd>
        </div>`
      }
      <div>
        <dt>Compressed size</dt>
        <dd>${formatBytes(s.size)}</dd>
      </div>
      ${
        s.platforms &&
        html`<div>
          <dt>Platforms</dt>
          <dd>${s.platforms.join(', ')}</dd>
        </div>`
      }
      ${
        s.created &&
        html`<div>
          <dt>Created</dt>
          <dd><${Time} iso=${s.created} /></dd>
        </div>`
      }
      ${
        d.subject &&
        html`<div>
          <dt>Refers to</dt>
          <dd>
            <a href=${href.manifest(name, d.subject)}><code>${shortDigest(d.subject)}</code></a>
          </dd>
        </div>`
      }
    </dl>
    ${
      tag
        ? html`<${Command}
            command=${pullCommand(app.host, name, tag, s.kind, 'docker')}
            label="Copy the pull command"
          />`
        : html`<${Command}
            command=${`docker pull ${app.host}/${name}@${d.digest}`}
            label="Copy the pull command"
          />`
    }`;
}

function Platforms(props: { name: string; details: ManifestDetails }) {
  return html`<h2>Platforms</h2>
    <table class="grid">
      <thead>
        <tr>
          <th scope="col">Platform</th>
          <th scope="col">Manifest</th>
          <th scope="col" class="num">Size</th>
        </tr>
      </thead>
      <tbody>
        ${props.details.platforms!.map(
          (p) =>
            html`<tr key=${p.digest}>
              <th scope="row">
                <a href=${href.manifest(props.name, p.digest)}
                  >${p.attestation ? 'attestation' : (p.platform ?? 'unknown')}</a
                >
              </th>
              <td><${Digest} digest=${p.digest} /></td>
              <td class="num">${formatBytes(p.size)}</td>
            </tr>`,
        )}
      </tbody>
    </table>`;
}

function Layers(props: { details: ManifestDetails }) {
  const layers = props.details.layers!;
  return html`<h2>Layers (${layers.length})</h2>
    <table class="grid">
      <thead>
        <tr>
          <th scope="col" class="num">#</th>
          <th scope="col">Digest</th>
          <th scope="col">Media type</th>
          <th scope="col" class="num">Size</th>
        </tr>
      </thead>
      <tbody>
        ${layers.map(
          (l, i) =>
            html`<tr key=${`${i}-${l.digest}`}>
              <td class="num">${i + 1}</td>
              <td>
                <${Digest} digest=${l.digest} />${l.title && html` <span class="muted">${l.title}</span>`}
              </td>
              <td><code class="wrap">${l.mediaType}</code></td>
              <td class="num">${formatBytes(l.size)}</td>
            </tr>`,
        )}
      </tbody>
    </table>`;
}

function Config(props: { details: ManifestDetails }) {
  const c = props.details.config!;
  if (c.omitted)
    return html`<h2>Config</h2>
      <p class="muted">${c.omitted} (<code>${c.mediaType}</code>).</p>`;
  const list = (items: string[] | undefined) =>
    items && items.length > 0
      ? html`<code class="wrap">${items.map((i) => JSON.stringify(i)).join(' ')}</code>`
      : '—';
  return html`<h2>Config</h2>
    <dl class="facts">
      ${
        c.platform &&
        html`<div>
          <dt>Platform</dt>
          <dd>${c.platform}</dd>
        </div>`
      }
      <div>
        <dt>Entrypoint</dt>
        <dd>${list(c.entrypoint)}</dd>
      </div>
      <div>
        <dt>Command</dt>
        <dd>${list(c.cmd)}</dd>
      </div>
      ${
        c.workingDir &&
        html`<div>
          <dt>Working directory</dt>
          <dd><code>${c.workingDir}</code></dd>
        </div>`
      }
      ${
        c.user &&
        html`<div>
          <dt>User</dt>
          <dd><code>${c.user}</code></dd>
        </div>`
      }
      ${
        c.exposedPorts &&
        html`<div>
          <dt>Ports</dt>
          <dd>${c.exposedPorts.join(', ')}</dd>
        </div>`
      }
      ${
        c.volumes &&
        html`<div>
          <dt>Volumes</dt>
          <dd>${c.volumes.join(', ')}</dd>
        </div>`
      }
      ${
        c.author &&
        html`<div>
          <dt>Author</dt>
          <dd>${c.author}</dd>
        </div>`
      }
    </dl>
    ${
      c.env &&
      html`<h3>Environment</h3>
        <ul class="mono-list">
          ${c.env.map((e) => html`<li><code>${e}</code></li>`)}
        </ul>`
    }
    ${
      c.labels &&
      html`<h3>Labels</h3>
        <table class="grid">
          <thead>
            <tr>
              <th scope="col">Label</th>
              <th scope="col">Value</th>
            </tr>
          </thead>
          <tbody>
            ${Object.entries(c.labels).map(
              ([k, v]) =>
                html`<tr key=${k}>
                  <th scope="row"><code class="wrap">${k}</code></th>
                  <td class="wrap">${v}</td>
                </tr>`,
            )}
          </tbody>
        </table>`
    }
    ${
      c.history &&
      html`<h3>History</h3>
        <ol class="history">
          ${c.history.map(
            (h) =>
              html`<li class=${h.emptyLayer ? 'empty-layer' : ''}>
                <code class="wrap">${h.createdBy ?? h.comment ?? '(no command recorded)'}</code>
                ${h.emptyLayer && html` <span class="muted small">no layer</span>`}
              </li>`,
          )}
        </ol>`
    }`;
}

function Referrers(props: { name: string; details: ManifestDetails }) {
  const refs = props.details.referrers;
  return html`<h2>Referrers</h2>
    ${
      refs.length === 0
        ? html`<p class="muted">No signatures, SBOMs or attestations refer to this manifest.</p>`
        : html`<table class="grid">
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col">Artifact type</th>
                <th scope="col">Manifest</th>
                <th scope="col" class="num">Size</th>
              </tr>
            </thead>
            <tbody>
              ${refs.map(
                (r) =>
                  html`<tr key=${r.digest + (r.tag ?? '')}>
                    <td><${KindBadge} kind=${r.kind} /></td>
                    <td>
                      <code class="wrap">${r.artifactType ?? r.mediaType}</code
                      >${r.tag && html` <span class="muted small">(tag ${r.tag})</span>`}
                    </td>
                    <td>
                      <a href=${href.manifest(props.name, r.digest)}><code>${shortDigest(r.digest)}</code></a>
                    </td>
                    <td class="num">${formatBytes(r.size)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    ${props.details.referrersMore && html`<p class="muted small">More referrers exist than are shown.</p>`}`;
}

function pretty(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
