import './zod-config.js'; // must stay first: see the file
import { render } from 'preact';
import { HomePage } from './pages/home.js';
import { JoinPage } from './pages/join.js';
import './styles.css';

function App() {
  const path = location.pathname;
  const join = /^\/join\/([^/]+)\/?$/.exec(path);
  if (join) return <JoinPage linkId={decodeURIComponent(join[1]!)} />;
  if (path === '/') return <HomePage />;
  return (
    <main class="page narrow">
      <h1>Page not found</h1>
      <p role="alert">There is nothing at this address.</p>
      <a href="/">Go to linkcall</a>
    </main>
  );
}

render(<App />, document.getElementById('app')!);
