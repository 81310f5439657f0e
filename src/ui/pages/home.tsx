/** Signed out: sign up / sign in. Signed in: the host's links — create, share, rename, open, delete. */
import { useEffect, useState } from 'preact/hooks';
import { deriveLinkKeys, linkFragment, newLinkSecret, parseLinkFragment, signLinkInfo, toBase64url } from '../../e2ee/keys.js';
import { ShareLink } from '../components/share-link.js';
import { fromNow } from '../time.js';
import { api, ApiError, type LinkView } from '../api.js';
import { fullLink, linkSecrets, type StoredLink } from '../secrets.js';

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

const EXPIRY_CHOICES: [string, number][] = [
  ['Never', 0],
  ['In 1 hour', 3600_000],
  ['In 1 day', 86400_000],
  ['In 1 week', 7 * 86400_000],
  ['In 30 days', 30 * 86400_000],
];

function LinksPage({ username, onSignedOut }: { username: string; onSignedOut: () => void }) {
  const [links, setLinks] = useState<LinkView[] | undefined>(undefined);
  const [secrets, setSecrets] = useState<Record<string, StoredLink>>({});
  const [newName, setNewName] = useState('');
  const [expiry, setExpiry] = useState(0);
  const [created, setCreated] = useState<{ link: LinkView; url: string } | undefined>(undefined);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const reload = () =>
    api.links().then(
      async (r) => {
        const known: Record<string, StoredLink> = {};
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
    setBusy(true);
    try {
      const link = await api.createLink(newName.trim() || undefined, expiry ? Date.now() + expiry : undefined);
      const secret = newLinkSecret();
      // The host's signing key: its hash in the link lets every guest check who the host is.
      const { keyHash, newSigningKey } = await import('../../e2ee/mls.js');
      const hostKey = await newSigningKey();
      const fragment = linkFragment(secret, keyHash(hostKey.publicKey));
      await linkSecrets.save(link.id, { fragment, hostKey: { publicKey: toBase64url(hostKey.publicKey), signKey: toBase64url(hostKey.signKey) } });
      const mac = await signLinkInfo(await deriveLinkKeys(secret), link.id, { name: link.name, hostName: username });
      await api.setLinkInfoMac(link.id, mac);
      setCreated({ link, url: fullLink(link.path, fragment) });
      setNewName('');
      await reload();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'Could not create the link.');
    } finally {
      setBusy(false);
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

  /** A new name needs a new MAC, made with the link's secret, or guests would see the link as altered. */
  async function rename(link: LinkView, name: string): Promise<boolean> {
    setError('');
    const stored = secrets[link.id];
    const secret = stored && parseLinkFragment(stored.fragment)?.secret;
    if (!secret) return false;
    try {
      const mac = await signLinkInfo(await deriveLinkKeys(secret), link.id, { name, hostName: username });
      await api.renameLink(link.id, name, mac);
      if (created?.link.id === link.id) setCreated({ ...created, link: { ...created.link, name } });
      await reload();
      return true;
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'Could not rename the link.');
      return false;
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
      <section class="card stack" aria-labelledby="new-link-heading">
        <h2 id="new-link-heading">New link</h2>
        <div class="row align-end">
          <label class="grow">
            Link name (optional)
            <input value={newName} maxLength={80} onInput={(e) => setNewName(e.currentTarget.value)} placeholder="e.g. Family call" />
          </label>
          <label>
            Expires
            <select value={String(expiry)} onChange={(e) => setExpiry(Number(e.currentTarget.value))}>
              {EXPIRY_CHOICES.map(([label, ms]) => <option key={ms} value={String(ms)}>{label}</option>)}
            </select>
          </label>
        </div>
        <div class="row">
          <button onClick={() => void create()} disabled={busy}>Create Link</button>
        </div>
        {created && (
          <div class="stack">
            <label>
              Call link
              <input readOnly value={created.url} onFocus={(e) => e.currentTarget.select()} />
            </label>
            <div class="row">
              <a class="button secondary" href={created.url}>Open call</a>
            </div>
            <ShareLink url={created.url} name={created.link.name} qrOpen />
          </div>
        )}
      </section>
      {error && <p role="alert" class="error">{error}</p>}
      <section aria-labelledby="links-heading">
        <h2 id="links-heading" class="spaced">Links</h2>
        {links === undefined ? (
          <p>Loading…</p>
        ) : links.length === 0 ? (
          <p class="muted">No links yet. Create one and send it to the people you want to call.</p>
        ) : (
          <ul class="links">
            {links.map((link) => (
              <LinkRow
                key={link.id}
                link={link}
                url={secrets[link.id] && parseLinkFragment(secrets[link.id]!.fragment) ? fullLink(link.path, secrets[link.id]!.fragment) : undefined}
                onRename={(name) => rename(link, name)}
                onDelete={() => void remove(link)}
              />
            ))}
          </ul>
        )}
      </section>
    </main>
  );
}

function LinkRow({ link, url, onRename, onDelete }: { link: LinkView; url?: string; onRename: (name: string) => Promise<boolean>; onDelete: () => void }) {
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(link.name);
  const expired = link.expiresAt !== null && link.expiresAt <= Date.now();
  return (
    <li class="card stack">
      <div class="row spread">
        <div>
          {editing ? (
            <form
              class="row"
              onSubmit={(e) => {
                e.preventDefault();
                const clean = name.trim();
                if (clean) void onRename(clean).then((ok) => ok && setEditing(false));
              }}
            >
              <label>
                New name for {link.name}
                <input value={name} maxLength={80} required onInput={(e) => setName(e.currentTarget.value)} ref={(el) => el?.focus()} />
              </label>
              <button type="submit">Save</button>
              <button type="button" class="secondary" onClick={() => setEditing(false)}>Cancel</button>
            </form>
          ) : (
            <strong class="link-name">{link.name}</strong>
          )}
          <div class="muted small">
            Created {new Date(link.createdAt).toLocaleString()} · {link.lastUsedAt ? `Last used ${fromNow(link.lastUsedAt)}` : 'Not used yet'}
            {link.expiresAt !== null && (expired ? ' · Expired' : ` · Expires ${fromNow(link.expiresAt)}`)}
          </div>
          {!url && <div class="muted small">Its secret is kept in the browser that created it.</div>}
        </div>
        <div class="row">
          {url && (
            <>
              <a class="button" href={url} aria-label={`Open ${link.name}`}>Open</a>
              {!editing && (
                <button class="secondary" aria-label={`Rename ${link.name}`} onClick={() => { setName(link.name); setEditing(true); }}>
                  Rename
                </button>
              )}
            </>
          )}
          <button class="danger" aria-label={`Delete link ${link.name}`} onClick={onDelete}>
            Delete link
          </button>
        </div>
      </div>
      {url && !expired && <ShareLink url={url} name={link.name} labelSuffix={link.name} />}
    </li>
  );
}
