import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import type { AppContext } from '../context.ts';
import { href } from '../router.ts';
import { ErrorBox } from '../ui.ts';

/** Username and password, or a robot's name and secret, exchanged at /token for a session. */
export function SignInPage(props: { app: AppContext; onSignedIn: () => void }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  if (props.app.session.mode === 'open') {
    return html`<section>
      <h1 tabindex="-1">Sign in</h1>
      <p>This registry runs without authentication: everyone on this machine may browse, push and delete.</p>
      <p><a href=${href.repositories()}>Browse repositories</a></p>
    </section>`;
  }
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await props.app.session.signIn(user.trim(), password);
      setPassword('');
      props.onSignedIn();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return html`<section class="narrow">
    <h1 tabindex="-1">Sign in</h1>
    <p>Use the account you <code>docker login</code> with, or a robot's name and secret.</p>
    <form onSubmit=${submit} class="stack">
      <label for="user">Name</label>
      <input
        id="user"
        name="username"
        autocomplete="username"
        required
        value=${user}
        onInput=${(e: Event) => setUser((e.target as HTMLInputElement).value)}
      />
      <label for="password">Password or secret</label>
      <input
        id="password"
        name="password"
        type="password"
        autocomplete="current-password"
        required
        value=${password}
        onInput=${(e: Event) => setPassword((e.target as HTMLInputElement).value)}
      />
      ${error !== undefined && html`<${ErrorBox} error=${error} />`}
      <button type="submit" class="primary" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
    </form>
    <p class="muted small">
      Only a session token is kept, in this tab, for at most 8 hours; your password is never stored. Without
      signing in you see what anonymous users may pull.
    </p>
  </section>`;
}
