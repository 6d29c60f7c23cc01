import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { absoluteTime, KIND_LABELS, relativeTime, shortDigest } from './format.ts';

/** Copies text to the clipboard (a fallback for pages that are not a secure context). */
export async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'offscreen';
  document.body.append(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

/** A button that copies `text` and says so (to screen readers too, through a live region). */
export function CopyButton(props: { text: string; label: string; compact?: boolean }) {
  const [copied, setCopied] = useState(false);
  useEffect(() => {
    if (!copied) return;
    const t = setTimeout(() => setCopied(false), 1500);
    return () => clearTimeout(t);
  }, [copied]);
  const copy = async () => {
    await copyText(props.text);
    setCopied(true);
  };
  return html`<button
    type="button"
    class=${props.compact ? 'copy compact' : 'copy'}
    onClick=${copy}
    aria-label=${props.label}
    title=${props.label}
  >
    ${copied ? 'Copied' : 'Copy'}<span class="offscreen" aria-live="polite">${copied ? ' copied' : ''}</span>
  </button>`;
}

export function Digest(props: { digest?: string; copy?: boolean }) {
  if (!props.digest) return html`<span class="muted">—</span>`;
  return html`<span class="digest"
    ><code title=${props.digest}>${shortDigest(props.digest)}</code>${
      props.copy !== false &&
      html` <${CopyButton} text=${props.digest} label=${`Copy digest ${props.digest}`} compact />`
    }</span
  >`;
}

export function KindBadge(props: { kind?: string }) {
  const kind = props.kind ?? 'artifact';
  return html`<span class=${`badge kind-${kind}`}>${KIND_LABELS[kind] ?? kind}</span>`;
}

export function Time(props: { iso?: string }) {
  if (!props.iso) return html`<span class="muted">—</span>`;
  return html`<time datetime=${props.iso} title=${absoluteTime(props.iso)}>${relativeTime(props.iso)}</time>`;
}

export function Loading(props: { what: string }) {
  return html`<p class="muted" role="status">Loading ${props.what}…</p>`;
}

export function ErrorBox(props: { error: unknown; children?: ComponentChildren }) {
  const message = props.error instanceof Error ? props.error.message : String(props.error);
  return html`<div class="error" role="alert"><strong>Error:</strong> ${message}${props.children}</div>`;
}

/** A command to copy, shown as it will be pasted. */
export function Command(props: { command: string; label: string }) {
  return html`<div class="command">
    <code>${props.command}</code>
    <${CopyButton} text=${props.command} label=${props.label} />
  </div>`;
}

/**
 * A modal dialog (the native <dialog>: focus is trapped inside and Escape closes it); `onClose`
 * runs however it closes.
 */
export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const opener = document.activeElement as HTMLElement | null;
    dialog.showModal();
    return () => {
      if (dialog.open) dialog.close();
      opener?.focus();
    };
  }, []);
  return html`<dialog
    ref=${ref}
    aria-labelledby="dialog-title"
    onClose=${props.onClose}
    onCancel=${props.onClose}
  >
    <h2 id="dialog-title">${props.title}</h2>
    ${props.children}
  </dialog>`;
}

/** Data loaded for a component, reloaded when `deps` change. */
export function useLoad<T>(
  load: () => Promise<T>,
  deps: unknown[],
): {
  data?: T;
  error?: unknown;
  loading: boolean;
  reload: () => void;
} {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [round, setRound] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error: unknown) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, round]);
  return { ...state, reload: () => setRound((r) => r + 1) };
}
