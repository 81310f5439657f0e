/** Who is waiting to be let in, for how long, with Approve / Decline each and Admit all. */
import { useEffect, useState } from 'preact/hooks';
import { MAX_LOBBY_NOTE, type CallSession, type Knock } from '../../client/call.js';
import { duration } from '../time.js';

export const UNREADABLE = 'Unknown (name could not be verified)';

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
          Waiting to join <span class="badge" aria-label={`${knocks.length} waiting`}>{knocks.length}</span>
        </h2>
        {readable.length > 1 && (
          <button class="approve" disabled={admitting} onClick={() => void admitAll()}>
            Admit all ({readable.length})
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
      <summary>Message</summary>
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
        <input aria-label={`Message to ${knock.name}`} maxLength={MAX_LOBBY_NOTE} value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} />
        <button type="submit">Send</button>
      </form>
      {state === 'sent' && <p role="status" class="muted small">Sent.</p>}
      {state === 'failed' && <p role="alert" class="error">That message could not be sent (at most {MAX_LOBBY_NOTE} characters).</p>}
    </details>
  );
}

function KnockRow({ knock: k, now, session }: { knock: Knock; now: number; session: CallSession }) {
  return (
    <li class="row spread">
      <span>
        <span class="knock-name">{k.name ?? UNREADABLE}</span>{' '}
        {k.stale && k.name !== undefined && <span class="warning small">(an old request sent again — it may not be them; ask them to knock again)</span>}{' '}
        <span class="muted small">waiting {duration(now - k.since)}</span>
      </span>
      <span class="row">
        {k.name !== undefined && !k.stale && (
          <button class="approve" aria-label={`Approve ${k.name}`} onClick={() => void session.approve(k.id)}>✓</button>
        )}
        <button class="decline danger" aria-label={`Decline ${k.name ?? 'unknown guest'}`} onClick={() => session.decline(k.id)}>✗</button>
      </span>
      {k.name !== undefined && !k.stale && <NoteForm knock={k} session={session} />}
    </li>
  );
}
