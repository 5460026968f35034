/**
 * The web UI at /ui/: a sign-in page, then one page per task. Paths are real (/ui/agents, /ui/audit…):
 * the hub serves this same document for each, and redirects to /ui/signin when there is no session.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import '@xterm/xterm/css/xterm.css';
import './style.css';
import { call, request, setCsrf, signInUrl, type Me } from './api.js';
import { ErrorBox } from './components.js';
import { SignIn } from './pages/signin.js';
import { pages, type Page } from './pages/index.js';

function currentPath(): string {
  return location.pathname.replace(/\/+$/, '') || '/ui';
}

function navigate(path: string): void {
  history.pushState(null, '', path);
  dispatchEvent(new PopStateEvent('popstate'));
}

function pageFor(path: string, me: Me): Page {
  const visible = pages.filter((p) => me.admin || !p.admin);
  // The start page: the fleet for admins, what I may reach for everyone else.
  return visible.find((p) => p.path === path) ?? visible.find((p) => p.path === (me.admin ? '/ui/agents' : '/ui/me'))!;
}

function Shell({ me }: { me: Me }) {
  const [path, setPath] = useState(currentPath());
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    const onPop = () => setPath(currentPath());
    addEventListener('popstate', onPop);
    return () => removeEventListener('popstate', onPop);
  }, []);
  const page = pageFor(path, me);
  useEffect(() => {
    document.title = `${page.title} · Warren`;
  }, [page]);
  const signOut = () =>
    void request('DELETE', '/ui/session').then(
      () => location.assign('/ui/signin'),
      (err: unknown) => setError(err),
    );
  const Component = page.component;
  return (
    <>
      <a class="skip" href="#content">
        Skip to content
      </a>
      <header>
        <span class="brand">Warren</span>
        <nav aria-label="Pages">
          {pages
            .filter((p) => (me.admin || !p.admin) && p.nav !== false)
            .map((p) => (
              <a
                key={p.path}
                href={p.path}
                aria-current={p === page ? 'page' : undefined}
                onClick={(e) => {
                  if (e.ctrlKey || e.metaKey || e.shiftKey) return;
                  e.preventDefault();
                  navigate(p.path);
                }}
              >
                {p.title}
              </a>
            ))}
        </nav>
        <span class="who" data-testid="who">
          {me.user}
          {me.admin ? ' (admin)' : ''}
        </span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="content" tabIndex={-1}>
        <h1>{page.title}</h1>
        <ErrorBox error={error} />
        <Component me={me} />
      </main>
    </>
  );
}

function App() {
  const [me, setMe] = useState<Me | undefined>();
  const signingIn = currentPath() === '/ui/signin';
  useEffect(() => {
    if (signingIn) return;
    call<Me>('GET', '/ui/session').then(
      (m) => (setCsrf(m.csrf), setMe(m)),
      () => location.assign(signInUrl()),
    );
  }, [signingIn]);
  if (signingIn) {
    return (
      <SignIn
        onSignedIn={(m) => {
          setCsrf(m.csrf);
          const next = new URLSearchParams(location.search).get('next');
          // Only a path inside the UI: never an open redirect.
          location.assign(next && /^\/ui(\/[\w/-]*)?(\?[\w=&%.-]*)?$/.test(next) && !next.startsWith('/ui/signin') ? next : '/ui/');
        }}
      />
    );
  }
  if (!me) return <p class="loading">Loading…</p>;
  return <Shell me={me} />;
}

render(<App />, document.getElementById('app')!);
