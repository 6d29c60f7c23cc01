import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import type { Impact, RetentionRule } from './api.ts';
import type { AppContext } from './context.ts';
import { shortDigest } from './format.ts';
import { ErrorBox, Loading, Modal, useLoad } from './ui.ts';

/**
 * Confirms a delete after saying what it does: the tags it removes, the other tags that keep the
 * manifest, and what becomes untagged (and so collectable by garbage collection).
 */
export function DeleteDialog(props: {
  app: AppContext;
  repo: string;
  reference: string;
  retention?: RetentionRule;
  onClose: () => void;
  onDeleted: () => void;
}) {
  const { api } = props.app;
  const isTag = !props.reference.includes(':');
  const impact = useLoad(() => api.impact(props.repo, props.reference), [props.repo, props.reference]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const what = isTag ? `tag ${props.reference}` : `manifest ${shortDigest(props.reference)}`;
  const confirm = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await api.remove(props.repo, props.reference);
      props.onDeleted();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  const i = impact.data;
  const rule = props.retention;
  const collects =
    rule?.untaggedAfterDays !== undefined
      ? `The retention rule for ${rule.repositories} deletes untagged manifests after ${rule.untaggedAfterDays} days.`
      : 'Garbage collection with --delete-untagged (or a retention rule with untaggedAfterDays) deletes untagged manifests and their blobs.';
  return html`<${Modal} title=${`Delete ${what} from ${props.repo}?`} onClose=${props.onClose}>
    ${impact.loading && html`<${Loading} what="what this deletes" />`}
    ${impact.error !== undefined && html`<${ErrorBox} error=${impact.error} />`}
    ${i && html`<${ImpactView} impact=${i} isTag=${isTag} collects=${collects} />`}
    ${error !== undefined && html`<${ErrorBox} error=${error} />`}
    <div class="actions">
      <button type="button" onClick=${props.onClose}>Cancel</button>
      <button type="button" class="danger" disabled=${busy || !i} onClick=${confirm}>
        ${busy ? 'Deleting…' : `Delete ${what}`}
      </button>
    </div>
  <//>`;
}

/** What the delete removes and untags, as whole sentences (htm drops whitespace at line breaks). */
function ImpactView(props: { impact: Impact; isTag: boolean; collects: string }) {
  const i = props.impact;
  const codes = (items: string[]) => items.map((t, n) => html`${n > 0 ? ', ' : ' '}<code>${t}</code>`);
  const removes = i.removesTags.length === 0 ? 'no tag' : i.removesTags.length === 1 ? 'the tag' : 'the tags';
  const kept = new Set(i.stillReferenced);
  const role = (d: string) =>
    d === i.digest ? 'this manifest' : i.children > 0 ? 'platform manifest or referrer' : 'referrer';
  const keptNote = (d: string) =>
    role(d) === 'referrer'
      ? '; what it refers to stays, so it is kept'
      : '; a tagged index still lists it, so it is kept';
  return html`<div class="impact">
    <p>
      ${`Removes ${removes}`}${codes(i.removesTags)}${
        props.isTag ? '' : html`${' and the manifest '}<code>${shortDigest(i.digest)}</code>`
      }.
    </p>
    ${
      i.otherTags.length > 0 &&
      html`<p>
        ${`The manifest stays: ${i.otherTags.length === 1 ? 'tag' : 'tags'}`}${codes(i.otherTags)}${' still name it.'}
      </p>`
    }
    ${
      i.untagged.length > 0
        ? html`<p><strong>Becomes untagged:</strong></p>
            <ul class="untagged">
              ${i.untagged.map(
                (d) =>
                  html`<li>
                    <code title=${d}>${shortDigest(d)}</code
                    >${` (${role(d)}${kept.has(d) ? keptNote(d) : ''})`}
                  </li>`,
              )}
            </ul>
            <p class="muted small">${props.collects}</p>`
        : html`<p>Nothing else becomes untagged.</p>`
    }
    ${
      i.immutableTags.length > 0 &&
      html`<p class="warning">
        ${codes(i.immutableTags)}${` ${i.immutableTags.length === 1 ? 'is an immutable tag' : 'are immutable tags'}: pushes cannot move it, but an account with delete permission can delete it.`}
      </p>`
    }
    ${
      !i.complete &&
      html`<p class="warning">
        The repository has more tags than were checked; other tags may name these manifests.
      </p>`
    }
  </div>`;
}
