/** Signed out: sign up / sign in. Signed in: the host's links — create, copy, open, delete. */
import { useEffect, useState } from 'preact/hooks';
import { deriveLinkKeys, encodeSecret, newLinkSecret, signLinkInfo } from '../../e2ee/keys.js';
import { api, ApiError, type LinkView } from '../api.js';
import { fullLink, linkSecrets } from '../secrets.js';

export function HomePage() {
  const [user, setUser] = useState<string | null | undefined>(undefined);
  useEffect(() => {
    api.me().then(
      (me) => setUser(me.username),
      () => setUser(null),
    );
  }, []);
  if (user === undefined) return <main class="page narrow"><p>Loading…</p></main>;
  if (user === null) return <AuthForm onSignedIn={setUser} />;
  return <LinksPage username={user} onSignedOut={() => setUser(null)} />;
}

function AuthForm({ onSignedIn }: { onSignedIn: (username: string) => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(kind: 'signUp' | 'signIn') {
    setBusy(true);
    setError('');
    try {
      const me = await api[kind](username.trim(), password);
      onSignedIn(me.username);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'Something went wrong.');
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="page narrow">
      <h1>linkcall</h1>
      <p class="lede">Video calls anyone can join from a link. End-to-end encrypted, nothing to install.</p>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void submit('signIn');
        }}
      >
        <label>
          Username
          <input name="username" autocomplete="username" value={username} onInput={(e) => setUsername(e.currentTarget.value)} required />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autocomplete="current-password"
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            required
          />
        </label>
        {error && <p role="alert" class="error">{error}</p>}
        <div class="row">
          <button type="submit" disabled={busy}>Sign in</button>
          <button type="button" class="secondary" disabled={busy} onClick={() => void submit('signUp')}>
            Sign up
          </button>
        </div>
      </form>
    </main>
  );
}

function LinksPage({ username, onSignedOut }: { username: string; onSignedOut: () => void }) {
  const [links, setLinks] = useState<LinkView[] | undefined>(undefined);
  const [secrets, setSecrets] = useState<Record<string, string>>({});
  const [newName, setNewName] = useState('');
  const [created, setCreated] = useState<{ link: LinkView; url: string } | undefined>(undefined);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState('');

  const reload = () =>
    api.links().then(
      async (r) => {
        const known: Record<string, string> = {};
        for (const l of r.links) {
          const secret = await linkSecrets.load(l.id);
          if (secret) known[l.id] = secret;
        }
        setSecrets(known);
        setLinks(r.links);
      },
      (e: ApiError) => setError(e.message),
    );
  useEffect(() => void reload(), []);

  /** The secret is made here, kept in this browser, and only ever travels in the link's fragment. */
  async function create() {
    setError('');
    try {
      const link = await api.createLink(newName.trim() || undefined);
      const secret = newLinkSecret();
      const encoded = encodeSecret(secret);
      await linkSecrets.save(link.id, encoded);
      const mac = await signLinkInfo(await deriveLinkKeys(secret), link.id, { name: link.name, hostName: username });
      await api.setLinkInfoMac(link.id, mac);
      setCreated({ link, url: fullLink(link.path, encoded) });
      setCopied(false);
      setNewName('');
      await reload();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'Could not create the link.');
    }
  }

  async function remove(link: LinkView) {
    setError('');
    try {
      await api.deleteLink(link.id);
      await linkSecrets.remove(link.id);
      if (created?.link.id === link.id) setCreated(undefined);
      await reload();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'Could not delete the link.');
    }
  }

  async function copy(text: string) {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(true);
    } catch {
      setError('Copying is blocked here. Select the link and copy it yourself.');
    }
  }

  return (
    <main class="page">
      <header class="row spread">
        <h1>Your links</h1>
        <div class="row">
          <span class="muted">Signed in as {username}</span>
          <button class="secondary" onClick={() => api.signOut().then(onSignedOut)}>Sign out</button>
        </div>
      </header>
      <section class="card stack" aria-label="New link">
        <label>
          Link name (optional)
          <input value={newName} maxLength={80} onInput={(e) => setNewName(e.currentTarget.value)} placeholder="e.g. Family call" />
        </label>
        <div class="row">
          <button onClick={() => void create()}>Create Link</button>
        </div>
        {created && (
          <div class="stack">
            <label>
              Call link
              <input readOnly value={created.url} onFocus={(e) => e.currentTarget.select()} />
            </label>
            <div class="row">
              <button onClick={() => void copy(created.url)}>Copy</button>
              {'share' in navigator && (
                <button class="secondary" onClick={() => navigator.share({ title: created.link.name, url: created.url }).catch(() => {})}>
                  Share
                </button>
              )}
              <a class="button secondary" href={created.url}>Open call</a>
              <span role="status">{copied ? 'Copied' : ''}</span>
            </div>
          </div>
        )}
      </section>
      {error && <p role="alert" class="error">{error}</p>}
      <section aria-label="Links">
        {links === undefined ? (
          <p>Loading…</p>
        ) : links.length === 0 ? (
          <p class="muted">No links yet. Create one and send it to the people you want to call.</p>
        ) : (
          <ul class="links">
            {links.map((link) => (
              <li key={link.id} class="card row spread">
                <div>
                  <strong>{link.name}</strong>
                  <div class="muted small">Created {new Date(link.createdAt).toLocaleString()}</div>
                  {!secrets[link.id] && <div class="muted small">Its secret is kept in the browser that created it.</div>}
                </div>
                <div class="row">
                  {secrets[link.id] && (
                    <>
                      <button class="secondary" aria-label={`Copy link ${link.name}`} onClick={() => void copy(fullLink(link.path, secrets[link.id]!))}>
                        Copy
                      </button>
                      <a class="button" href={fullLink(link.path, secrets[link.id]!)} aria-label={`Open ${link.name}`}>Open</a>
                    </>
                  )}
                  <button class="danger" aria-label={`Delete link ${link.name}`} onClick={() => void remove(link)}>
                    Delete link
                  </button>
                </div>
              </li>
            ))}
          </ul>
        )}
      </section>
    </main>
  );
}
