import './zod-config.js'; // must stay first: see the file
import { render } from 'preact';
import { useEffect, useReducer } from 'preact/hooks';
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
  return (
    <main class="page narrow">
      <h1>{t('app.notFound')}</h1>
      <p role="alert">{t('app.notFoundText')}</p>
      <a href="/">{t('app.goHome')}</a>
    </main>
  );
}

// The catalog first, so the first drawing is already in the person's language.
void setLanguage(initialLanguage())
  .catch(() => setLanguage('en'))
  .then(() => render(<App />, document.getElementById('app')!));
