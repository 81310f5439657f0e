/**
 * The call's chat: end-to-end encrypted (MLS application messages, see CallSession.sendChat).
 * A "Chat" button with an unread count opens a panel: messages with sender and time (one's own set
 * apart), a "Message" box and "Send". Everything shows as text; links are never fetched.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { CallSession } from '../../client/call.js';
import { MAX_CHAT_LENGTH } from '../../protocol/messages.js';
import { clockTime, numbers, t } from '../i18n/locale.js';

/** The toggle button, for the call controls. */
export function ChatButton({ session, open, onToggle }: { session: CallSession; open: boolean; onToggle: () => void }) {
  const unread = useUnread(session, open);
  return (
    <button class="secondary" aria-expanded={open} aria-controls="chat-panel" onClick={onToggle}>
      {t('chat.chat')}{unread > 0 && <span class="badge" aria-label={t('chat.unread', { count: unread })}> {numbers().format(unread)}</span>}
    </button>
  );
}

/** Messages not seen yet: those that arrived while the panel was closed. */
function useUnread(session: CallSession, open: boolean): number {
  const [seen, setSeen] = useState(session.chat.at(-1)?.id ?? 0);
  const latest = session.chat.at(-1)?.id ?? 0;
  useEffect(() => {
    if (open) setSeen(latest);
  }, [open, latest]);
  return open ? 0 : session.chat.filter((m) => m.id > seen && !m.mine).length;
}

export function ChatPanel({ session }: { session: CallSession }) {
  const [draft, setDraft] = useState('');
  const [error, setError] = useState('');
  const list = useRef<HTMLOListElement>(null);
  const count = session.chat.length;
  useEffect(() => {
    list.current?.lastElementChild?.scrollIntoView({ block: 'nearest' });
  }, [count]);

  async function send(e: Event) {
    e.preventDefault();
    const text = draft.trim();
    if (!text) return;
    if (text.length > MAX_CHAT_LENGTH) {
      setError(t('chat.tooLong', { max: MAX_CHAT_LENGTH }));
      return;
    }
    setError('');
    try {
      await session.sendChat(text);
      setDraft('');
    } catch (err) {
      setError(
        (err as { code?: string }).code === 'rate_limited'
          ? t('chat.tooFast')
          : t('chat.notSent'),
      );
    }
  }

  return (
    <section id="chat-panel" class="chat card" aria-label={t('chat.chat')}>
      <p class="muted small">{t('chat.private')}</p>
      <ol ref={list} class="chat-messages" aria-live="polite">
        {session.chat.map((m) => (
          <li key={m.id} class={m.mine ? 'chat-message mine' : 'chat-message'}>
            <span class="chat-meta">
              {m.mine ? <strong>{t('chat.you')}</strong> : m.name ? <strong><bdi translate={false}>{m.name}</bdi></strong> : <strong>{t('call.someone')}</strong>} <time dateTime={new Date(m.at).toISOString()}>{clockTime().format(m.at)}</time>
            </span>
            <span class="chat-text" dir="auto" translate={false}>{m.text}</span>
          </li>
        ))}
      </ol>
      <form class="row" onSubmit={(e) => void send(e)}>
        <label class="sr-only" for="chat-message">{t('chat.message')}</label>
        <textarea
          id="chat-message"
          dir="auto"
          rows={2}
          maxLength={MAX_CHAT_LENGTH}
          value={draft}
          onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) void send(e);
          }}
        />
        <button type="submit">{t('chat.send')}</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
    </section>
  );
}
