/** In the lobby and in the call: every state is a sentence, every control has a name. */
import { useLayoutEffect, useMemo, useReducer, useRef, useState } from 'preact/hooks';
import type { CallSession } from '../../client/call.js';
import { playKnockSound } from '../call/devices.js';
import { InCall } from '../call/in-call.js';
import { CallConnection } from '../call/media.js';
import type { PreparedCall } from '../call/prepare.js';
import type { LocalEffects } from '../effects/local-effects.js';
import { errorText, say, t, told, tx, type Said } from '../i18n/locale.js';

export interface CallViewProps {
  /** Socket open and name card sealed (see prepareCall). */
  prepared: Promise<PreparedCall>;
  name: string;
  /** Verified on the join page with the link's secret (the server's word is never shown). */
  hostName: string;
  linkName: string;
  /** Camera and microphone from the join page; absent when neither could be opened (listening only). */
  stream?: MediaStream;
  /** Where call sound plays (HTMLMediaElement.setSinkId), when chosen. */
  speakerId?: string;
  /** Blur and noise suppression, switched on the join page and again in the call's device settings. */
  effects?: LocalEffects;
}

/**
 * Let in, the page answers the SFU's offer for everyone's media before drawing the call (which
 * holds the page up for 100 ms or more on a slow machine): at most this long, saying "Joining…".
 */
const ENTER_WAIT_MS = 400;
/** How long after the knock the media connections are made (see CallView). */
const CONNECT_AFTER_KNOCK_MS = 150;

const RETRYABLE = new Set(['resume_failed', 'host_absent', 'no_answer', 'disconnected', 'server_shutdown', 'left', 'media_failed', 'rate_limited', 'key_refused', 'call_locked', 'internal']);

export function CallView({ prepared, name, hostName, linkName, stream, speakerId, effects }: CallViewProps) {
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const [session, setSession] = useState<CallSession | undefined>(undefined);
  const [remoteStreams, setRemoteStreams] = useState<ReadonlyMap<string, MediaStream>>(new Map());
  // Always a stream, possibly without tracks: a device switched on later goes into it.
  const local = useMemo(() => stream ?? new MediaStream(), [stream]);
  const [mediaFailure, setMediaFailure] = useState<Said | undefined>(undefined);
  const connection = useRef<CallConnection | undefined>(undefined);

  const [unreachable, setUnreachable] = useState(false);
  /** Let in, and the others' media answered for (or not coming): the call view may be drawn. */
  const [entered, setEntered] = useState(false);

  // A layout effect: it runs right after render, so Join goes out without waiting for a paint.
  useLayoutEffect(() => {
    let off = () => {};
    let closed = false;
    prepared.then(
      ({ signaling, call, rtc }) => {
        if (closed) return;
        setSession(call);
        // Join first: nothing below may delay the knock.
        call.sendJoin();
        // The media connections are up before we are let in (sending and receiving nothing), so
        // that once admitted media flows at once. They are made a moment after the knock: making
        // them keeps this page busy for 100 ms or more, which would slow the knock reaching the
        // host's screen on the same machine. The SFU's first offers meanwhile are kept.
        const cannotSend = () => setMediaFailure(say('call.cannotSend'));
        const early: string[] = [];
        const offEarly = signaling.on('subscribeOffer', (m) => void early.push(m.sdp));
        let conn: CallConnection | undefined;
        const connect = (): CallConnection => {
          if (conn) return conn;
          offEarly();
          conn = new CallConnection(signaling, rtc);
          for (const sdp of early.splice(0)) conn.receiveOffer(sdp);
          connection.current = conn;
          conn.onStreams = (streams) => setRemoteStreams(new Map(streams));
          conn.onFailure = () => setMediaFailure(say('call.mediaFailed'));
          conn.connectPublisher(local).catch(cannotSend);
          return conn;
        };
        const connectTimer = setTimeout(connect, CONNECT_AFTER_KNOCK_MS);
        call.onKeys = (keys) => connect().setKeys(keys);
        call.onResumed = () => conn?.checkConnections();
        let knockCount = 0;
        let publishing = false;
        const sync = () => {
          if (call.phase.kind === 'in-call' && !publishing) {
            publishing = true;
            const conn = connect();
            const publish = () => {
              void conn.publish(local).catch(cannotSend);
              call.setMediaState(audioEnabled(local), videoEnabled(local));
            };
            // Alone in the call, there is nothing to wait for.
            if (call.participants.size === 0) {
              setEntered(true);
              publish();
            } else {
              // The others' videos first: starting our camera's encoders keeps the page busy for
              // a while, which would hold up their first frames. Ours follow once the call view is made.
              void conn.mediaAnswered(ENTER_WAIT_MS).then(() => {
                setEntered(true);
                // The call view renders in a microtask, before this task.
                setTimeout(publish, 0);
              });
            }
          }
          if (call.knocks.size > knockCount) playKnockSound();
          knockCount = call.knocks.size;
          const title = call.knocks.size > 0 ? t('app.knockTitle', { count: call.knocks.size }) : t('app.title');
          // Only when it changes: setting the title costs the page a few milliseconds each time.
          if (document.title !== title) document.title = title;
          if (call.phase.kind === 'ended') {
            clearTimeout(connectTimer);
            conn?.close();
            local.getTracks().forEach((t) => t.stop());
          }
          rerender(0);
        };
        const offChange = call.onChange(sync);
        off = () => {
          offChange();
          clearTimeout(connectTimer);
          offEarly();
          conn?.close();
          signaling.close();
        };
      },
      () => setUnreachable(true),
    );
    return () => {
      closed = true;
      off();
    };
  }, [prepared]);

  if (unreachable) {
    return (
      <main class="page narrow">
        <h1>{t('call.unreachable')}</h1>
        <p role="alert">{t('call.unreachableText')}</p>
        <a class="button" href={location.pathname + location.search + location.hash}>{t('call.tryAgain')}</a>
      </main>
    );
  }
  if (!session) return null;
  const phase = session.phase;

  if (phase.kind === 'ended') {
    return (
      <main class="page narrow">
        <h1>{phase.code === 'left' ? t('call.youLeft') : t('call.over')}</h1>
        <p role="alert">{phase.code === 'disconnected' ? t(phase.unanswered ? 'call.unanswered' : phase.restoreFailed ? 'call.lostForGood' : 'call.lost') : errorText(phase.code)}</p>
        {RETRYABLE.has(phase.code) && <a class="button" href={location.pathname + location.search}>{t('call.joinAgain')}</a>}
      </main>
    );
  }
  if (phase.kind === 'in-call' && !entered) {
    return <main class="page narrow"><p role="status" class="lede">{t('call.joining')}</p></main>;
  }
  if (phase.kind === 'connecting') {
    return <main class="page narrow"><p role="status">{t('call.connecting')}</p></main>;
  }
  if (phase.kind === 'waiting') {
    return (
      <main class="page narrow">
        {session.reconnecting && <p role="status" class="warning">{t('call.reconnecting')}</p>}
        {session.serverNotice && <p role="status" class="warning">{t('call.serverRestarting')}</p>}
        <p role="status" class="lede">{tx('call.waitingFor', { host: <bdi translate={false}>{hostName}</bdi> })}</p>
        {session.lobbyNote && (
          <p role="status" class="card">
            <strong>{tx('call.noteFrom', { host: <bdi translate={false}>{hostName}</bdi> })}</strong> <bdi translate={false}>{session.lobbyNote}</bdi>
          </p>
        )}
        {!phase.hostPresent && (
          <p class="muted">{tx('call.hostNotHere', { host: <bdi translate={false}>{hostName}</bdi> })}</p>
        )}
        <button class="secondary" onClick={() => session.leave()}>{t('call.cancel')}</button>
      </main>
    );
  }

  return (
    <InCall
      session={session}
      connection={connection.current!}
      local={local}
      name={name}
      title={linkName}
      remoteStreams={remoteStreams}
      speakerId={speakerId}
      mediaFailure={mediaFailure}
      effects={effects}
    />
  );
}

function audioEnabled(stream?: MediaStream): boolean {
  return stream?.getAudioTracks().some((t) => t.enabled) ?? false;
}
function videoEnabled(stream?: MediaStream): boolean {
  return stream?.getVideoTracks().some((t) => t.enabled) ?? false;
}
