/** Who is waiting to be let in, for how long, with Approve / Decline each and Admit all. */
import { useEffect, useState } from 'preact/hooks';
import { MAX_LOBBY_NOTE, type CallSession, type Knock } from '../../client/call.js';
import { duration } from '../time.js';
import { numbers, t, type MessageKey } from '../i18n/locale.js';

export const UNREADABLE: MessageKey = 'lobby.unreadable';

export function Lobby({ session }: { session: CallSession }) {
  const knocks = [...session.knocks.values()];
  const [now, setNow] = useState(Date.now());
  const [admitting, setAdmitting] = useState(false);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  if (!session.canApprove || knocks.length === 0) return null;
  const readable = knocks.filter((k) => k.name !== undefined && !k.stale);

  async function admitAll() {
    setAdmitting(true);
    try {
      // approve() queues one Add commit after another: each is made on the epoch the previous one made.
      await Promise.all(readable.map((k) => session.approve(k.id)));
    } finally {
      setAdmitting(false);
    }
  }

  return (
    <section class="knocks card" aria-labelledby="lobby-heading">
      <div class="row spread">
        <h2 id="lobby-heading">
          {t('lobby.waitingToJoin')} <span class="badge" aria-label={t('lobby.waitingCount', { count: knocks.length })}>{numbers().format(knocks.length)}</span>
        </h2>
        {readable.length > 1 && (
          <button class="approve" disabled={admitting} onClick={() => void admitAll()}>
            {t('lobby.admitAll', { count: readable.length })}
          </button>
        )}
      </div>
      <ul>
        {knocks.map((k) => (
          <KnockRow key={k.id} knock={k} now={now} session={session} />
        ))}
      </ul>
    </section>
  );
}

/** A short note to one waiting guest, sealed so the server cannot read it. */
function NoteForm({ knock, session }: { knock: Knock; session: CallSession }) {
  const [text, setText] = useState('');
  const [state, setState] = useState<'' | 'sent' | 'failed'>('');
  return (
    <details class="knock-note">
      <summary>{t('lobby.message')}</summary>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          session.sendLobbyNote(knock.id, text).then(
            () => (setText(''), setState('sent')),
            () => setState('failed'),
          );
        }}
      >
        <input dir="auto" aria-label={t('lobby.messageTo', { name: knock.name ?? '' })} maxLength={MAX_LOBBY_NOTE} value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} />
        <button type="submit">{t('lobby.send')}</button>
      </form>
      {state === 'sent' && <p role="status" class="muted small">{t('lobby.sent')}</p>}
      {state === 'failed' && <p role="alert" class="error">{t('lobby.noteFailed', { max: MAX_LOBBY_NOTE })}</p>}
    </details>
  );
}

function KnockRow({ knock: k, now, session }: { knock: Knock; now: number; session: CallSession }) {
  return (
    <li class="row spread">
      <span>
        {k.name !== undefined ? <bdi class="knock-name" translate={false}>{k.name}</bdi> : <span class="knock-name">{t(UNREADABLE)}</span>}{' '}
        {k.stale && k.name !== undefined && <span class="warning small">{t('lobby.stale')}</span>}{' '}
        <span class="muted small">{t('lobby.waiting', { time: duration(now - k.since) })}</span>
      </span>
      <span class="row">
        {k.name !== undefined && !k.stale && (
          <button class="approve" aria-label={t('lobby.approve', { name: k.name })} onClick={() => void session.approve(k.id)}>✓</button>
        )}
        <button class="decline danger" aria-label={t('lobby.decline', { name: k.name ?? t('lobby.unknownGuest') })} onClick={() => session.decline(k.id)}>✗</button>
      </span>
      {k.name !== undefined && !k.stale && <NoteForm knock={k} session={session} />}
    </li>
  );
}
