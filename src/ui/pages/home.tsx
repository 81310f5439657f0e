/** Signed out: sign up / sign in. Signed in: the host's links — create, share, rename, open, delete. */
import { useEffect, useState } from 'preact/hooks';
import { linkNameOrBlank, MAX_LINK_NAME_LENGTH, parseLinkName } from '../../protocol/names.js';
import { deriveLinkKeys, linkFragment, newLinkSecret, parseLinkFragment, signLinkInfo, toBase64url } from '../../e2ee/keys.js';
import { ShareLink } from '../components/share-link.js';
import { fromNow } from '../time.js';
import { api, ApiError, type LinkView } from '../api.js';
import { LanguagePicker } from '../components/language-picker.js';
import { dateTime, errorText, t, tx, type MessageKey } from '../i18n/locale.js';
import { fullLink, linkSecrets, type StoredLink } from '../secrets.js';

export function HomePage() {
  const [user, setUser] = useState<string | null | undefined>(undefined);
  useEffect(() => {
    api.me().then(
      (me) => setUser(me.username),
      () => setUser(null),
    );
  }, []);
  if (user === undefined) return <main class="page narrow"><p>{t('app.loading')}</p></main>;
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
      setError(err instanceof ApiError ? errorText(err.code) : t('app.somethingWrong'));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="page narrow">
      <header class="row spread">
        <h1>{t('app.title')}</h1>
        <LanguagePicker />
      </header>
      <p class="lede">{t('home.tagline')}</p>
      <p class="small"><a href="/check">{t('check.link')}</a></p>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void submit('signIn');
        }}
      >
        <label>
          {t('home.username')}
          <input name="username" autocomplete="username" value={username} onInput={(e) => setUsername(e.currentTarget.value)} required />
        </label>
        <label>
          {t('home.password')}
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
          <button type="submit" disabled={busy}>{t('home.signIn')}</button>
          <button type="button" class="secondary" disabled={busy} onClick={() => void submit('signUp')}>
            {t('home.signUp')}
          </button>
        </div>
      </form>
    </main>
  );
}

const EXPIRY_CHOICES: [MessageKey, number, number][] = [
  ['home.never', 0, 0],
  ['home.inHours', 1, 3600_000],
  ['home.inDays', 1, 86400_000],
  ['home.inWeeks', 1, 7 * 86400_000],
  ['home.inDays', 30, 30 * 86400_000],
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
      (e: ApiError) => setError(errorText(e.code)),
    );
  useEffect(() => void reload(), []);

  /** The secret is made here, kept in this browser, and only ever travels in the link's fragment. */
  async function create() {
    // Blank: the server names it after the host.
    const name = linkNameOrBlank.safeParse(newName);
    if (!name.success) return setError(t('home.badLinkName'));
    setError('');
    setBusy(true);
    try {
      const link = await api.createLink(name.data || undefined, expiry ? Date.now() + expiry : undefined);
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
      setError(err instanceof ApiError ? errorText(err.code) : t('home.couldNotCreate'));
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
      setError(err instanceof ApiError ? errorText(err.code) : t('home.couldNotDelete'));
    }
  }

  /** A new name needs a new MAC, made with the link's secret, or guests would see the link as altered. */
  async function rename(link: LinkView, typed: string): Promise<boolean> {
    const name = parseLinkName(typed);
    if (!name) {
      setError(t('home.badLinkName'));
      return false;
    }
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
      setError(err instanceof ApiError ? errorText(err.code) : t('home.couldNotRename'));
      return false;
    }
  }

  return (
    <main class="page">
      <header class="row spread">
        <h1>{t('home.yourLinks')}</h1>
        <div class="row">
          <span class="muted">{tx('home.signedInAs', { name: <bdi translate={false}>{username}</bdi> })}</span>
          <a href="/check">{t('check.link')}</a>
          <button class="secondary" onClick={() => api.signOut().then(onSignedOut)}>{t('home.signOut')}</button>
          <LanguagePicker />
        </div>
      </header>
      <section class="card stack" aria-labelledby="new-link-heading">
        <h2 id="new-link-heading">{t('home.newLink')}</h2>
        <div class="row align-end">
          <label class="grow">
            {t('home.linkName')}
            <input value={newName} maxLength={MAX_LINK_NAME_LENGTH} dir="auto" onInput={(e) => setNewName(e.currentTarget.value)} placeholder={t('home.linkNameExample')} />
          </label>
          <label>
            {t('home.expires')}
            <select value={String(expiry)} onChange={(e) => setExpiry(Number(e.currentTarget.value))}>
              {EXPIRY_CHOICES.map(([label, count, ms]) => <option key={ms} value={String(ms)}>{t(label, { count })}</option>)}
            </select>
          </label>
        </div>
        <div class="row">
          <button onClick={() => void create()} disabled={busy}>{t('home.createLink')}</button>
        </div>
        {created && (
          <div class="stack">
            <label>
              {t('home.callLink')}
              <input readOnly dir="ltr" value={created.url} onFocus={(e) => e.currentTarget.select()} />
            </label>
            <div class="row">
              <a class="button secondary" href={created.url}>{t('home.openCall')}</a>
            </div>
            <ShareLink url={created.url} name={created.link.name} qrOpen />
          </div>
        )}
      </section>
      {error && <p role="alert" class="error">{error}</p>}
      <section aria-labelledby="links-heading">
        <h2 id="links-heading" class="spaced">{t('home.links')}</h2>
        {links === undefined ? (
          <p>{t('app.loading')}</p>
        ) : links.length === 0 ? (
          <p class="muted">{t('home.noLinks')}</p>
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
                void onRename(name).then((ok) => ok && setEditing(false));
              }}
            >
              <label>
                {t('home.newNameFor', { name: link.name })}
                <input dir="auto" value={name} maxLength={MAX_LINK_NAME_LENGTH} required onInput={(e) => setName(e.currentTarget.value)} ref={(el) => el?.focus()} />
              </label>
              <button type="submit">{t('home.save')}</button>
              <button type="button" class="secondary" onClick={() => setEditing(false)}>{t('home.cancel')}</button>
            </form>
          ) : (
            <strong class="link-name" dir="auto" translate={false}>{link.name}</strong>
          )}
          <div class="muted small">
            {t('home.created', { date: dateTime().format(link.createdAt) })} · {link.lastUsedAt ? t('home.lastUsed', { when: fromNow(link.lastUsedAt) }) : t('home.notUsed')}
            {link.expiresAt !== null && <> · {expired ? t('home.expired') : t('home.expiresWhen', { when: fromNow(link.expiresAt) })}</>}
          </div>
          {!url && <div class="muted small">{t('home.secretElsewhere')}</div>}
        </div>
        <div class="row">
          {url && (
            <>
              <a class="button" href={url} aria-label={t('home.openNamed', { name: link.name })}>{t('home.open')}</a>
              {!editing && (
                <button class="secondary" aria-label={t('home.renameNamed', { name: link.name })} onClick={() => { setName(link.name); setEditing(true); }}>
                  {t('home.rename')}
                </button>
              )}
            </>
          )}
          <button class="danger" aria-label={t('home.deleteNamed', { name: link.name })} onClick={onDelete}>
            {t('home.deleteLink')}
          </button>
        </div>
      </div>
      {url && !expired && <ShareLink url={url} name={link.name} labelSuffix={link.name} />}
    </li>
  );
}
