import { html } from 'htm/preact';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Api, type Info } from './api.ts';
import type { AppContext } from './context.ts';
import { absoluteTime } from './format.ts';
import { ManifestPage } from './pages/manifest.ts';
import { OperationsPage } from './pages/operations.ts';
import { RepositoriesPage } from './pages/repositories.ts';
import { RepositoryPage } from './pages/repository.ts';
import { SignInPage } from './pages/sign-in.ts';
import { href, useRoute, type Route } from './router.ts';
import { Session } from './session.ts';
import { Command, ErrorBox, Loading, Time } from './ui.ts';

const session = new Session();
const api = new Api(session);

function App() {
  const route = useRoute();
  const [info, setInfo] = useState<Info | undefined>();
  const [error, setError] = useState<unknown>();
  const [round, setRound] = useState(0);

  useEffect(() => session.onChange(() => setRound((r) => r + 1)), []);
  useEffect(() => {
    let live = true;
    (async () => {
      await session.detect();
      const loaded = await api.info();
      if (live) {
        setInfo(loaded);
        setError(undefined);
      }
    })().catch((err: unknown) => live && setError(err));
    return () => {
      live = false;
    };
  }, [round]);

  if (error !== undefined && !info) return html`<main id="main"><${ErrorBox} error=${error} /></main>`;
  if (!info) return html`<main id="main"><${Loading} what="the registry" /></main>`;
  const app: AppContext = { api, session, info, host: location.host };
  return html`<a class="skip" href="#main" onClick=${skip}>Skip to content</a>
    <${Header} app=${app} route=${route} />
    ${info.expiresAt && html`<${Expiry} at=${info.expiresAt} />`}
    <main id="main">
      ${page(app, route, () => {
        location.hash = href.repositories();
      })}
    </main>
    <footer><${LoginHelp} app=${app} /></footer>`;
}

function skip(e: Event) {
  e.preventDefault();
  document.querySelector<HTMLElement>('main h1')?.focus();
}

function page(app: AppContext, route: Route, signedIn: () => void) {
  switch (route.page) {
    case 'repositories':
      return html`<${RepositoriesPage} app=${app} />`;
    case 'repository':
      return html`<${RepositoryPage} key=${route.name} app=${app} name=${route.name} />`;
    case 'manifest':
      return html`<${ManifestPage}
        key=${`${route.name}@${route.reference}`}
        app=${app}
        name=${route.name}
        reference=${route.reference}
      />`;
    case 'operations':
      return html`<${OperationsPage} app=${app} />`;
    case 'sign-in':
      return html`<${SignInPage} app=${app} onSignedIn=${signedIn} />`;
  }
}

function Header(props: { app: AppContext; route: Route }) {
  const { info, session } = props.app;
  const current = (page: Route['page']) => (props.route.page === page ? 'page' : undefined);
  return html`<header class="top">
    <a class="brand" href=${href.repositories()}>
      <img src="/ui/assets/icon.svg" alt="" width="24" height="24" />
      <span>Berth</span>${info.name && html` <span class="registry-name">${info.name}</span>`}
    </a>
    <nav aria-label="Main">
      <a href=${href.repositories()} aria-current=${current('repositories')}>Repositories</a>
      ${info.admin && html`<a href=${href.operations()} aria-current=${current('operations')}>Usage and operations</a>`}
    </nav>
    <div class="account">
      ${
        session.mode === 'open'
          ? html`<span class="muted small">No authentication</span>`
          : session.user
            ? html`<span>Signed in as <strong>${session.user}</strong></span>
                <button
                  type="button"
                  onClick=${() => {
                    session.signOut();
                    location.hash = href.repositories();
                  }}
                >
                  Sign out
                </button>`
            : html`<span class="muted small">Browsing anonymously</span>
                <a class="button primary" href=${href.signIn()}>Sign in</a>`
      }
    </div>
  </header>`;
}

function Expiry(props: { at: string }) {
  return html`<div class="banner" role="note">
    ${'This is an ephemeral registry: it deletes itself and everything in it '}<${Time}
      iso=${props.at}
    />${` (${absoluteTime(props.at)}).`}
  </div>`;
}

/** How to reach this registry from a terminal. */
function LoginHelp(props: { app: AppContext }) {
  const { host, session, info } = props.app;
  if (!info.authentication) {
    return html`<p class="small">
      Push to this registry: <code>${`docker push ${host}/<repository>:<tag>`}</code>
    </p>`;
  }
  return html`<div class="small login-help">
    <p>Log in from a terminal (the same account, or a robot):</p>
    <${Command}
      command=${`docker login ${host}${session.user ? ` -u ${session.user}` : ''}`}
      label="Copy the docker login command"
    />
  </div>`;
}

render(html`<${App} />`, document.getElementById('app')!);
