import './zod-config.js'; // must stay first: see the file
import { render } from 'preact';
import type { ComponentType } from 'preact';
import { useEffect, useReducer, useState } from 'preact/hooks';
import { initialLanguage, onLanguageChange, setLanguage, t } from './i18n/locale.js';
import { HomePage } from './pages/home.js';
import { JoinPage } from './pages/join.js';
import './styles.css';

function App() {
  // A new language redraws every page from the top, in place: nothing typed is lost.
  const [, redraw] = useReducer((n: number) => n + 1, 0);
  useEffect(() => onLanguageChange(() => redraw(0)), []);
  const path = location.pathname;
  const join = /^\/join\/([^/]+)\/?$/.exec(path);
  if (join) return <JoinPage linkId={decodeURIComponent(join[1]!)} />;
  if (path === '/') return <HomePage />;
  if (path === '/check') return <Lazy load={() => import('./pages/check.js').then((m) => m.CheckPage)} />;
  return (
    <main class="page narrow">
      <h1>{t('app.notFound')}</h1>
      <p role="alert">{t('app.notFoundText')}</p>
      <a href="/">{t('app.goHome')}</a>
    </main>
  );
}

/** A page whose code is its own chunk, fetched only when that page is opened. */
function Lazy({ load }: { load: () => Promise<ComponentType> }) {
  const [Page, setPage] = useState<ComponentType | undefined>(undefined);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    load().then((p) => setPage(() => p), () => setFailed(true));
  }, []);
  if (failed) return <main class="page narrow"><p role="alert">{t('app.somethingWrong')}</p></main>;
  return Page ? <Page /> : <main class="page narrow"><p>{t('app.loading')}</p></main>;
}

// The catalog first, so the first drawing is already in the person's language.
void setLanguage(initialLanguage())
  .catch(() => setLanguage('en'))
  .then(() => render(<App />, document.getElementById('app')!));
