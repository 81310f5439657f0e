/** In the lobby and in the call: every state is a sentence, every control has a name. */
import { useEffect, useLayoutEffect, useReducer, useRef, useState } from 'preact/hooks';
import type { CallSession, Member } from '../../client/call.js';
import { playKnockSound } from '../call/devices.js';
import { CallConnection } from '../call/media.js';
import type { PreparedCall } from '../call/prepare.js';

interface Props {
  /** Socket open and name card sealed (see prepareCall). */
  prepared: Promise<PreparedCall>;
  name: string;
  hostName: string;
  stream?: MediaStream;
}

const RETRYABLE = new Set(['host_absent', 'no_answer', 'disconnected', 'server_shutdown', 'left', 'media_failed', 'rate_limited', 'grant_refused']);
const UNREADABLE = 'Unknown (name could not be verified)';

export function CallView({ prepared, name, hostName, stream }: Props) {
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const [session, setSession] = useState<CallSession | undefined>(undefined);
  const [remoteStreams, setRemoteStreams] = useState<ReadonlyMap<string, MediaStream>>(new Map());
  const [audioOn, setAudioOn] = useState(true);
  const [videoOn, setVideoOn] = useState(true);
  const [mediaFailure, setMediaFailure] = useState('');
  const connection = useRef<CallConnection | undefined>(undefined);

  const [unreachable, setUnreachable] = useState(false);

  // A layout effect: it runs right after render, so Join goes out without waiting for a paint.
  useLayoutEffect(() => {
    let off = () => {};
    let closed = false;
    prepared.then(
      ({ signaling, call }) => {
        if (closed) return;
        setSession(call);
        // Join first: nothing below may delay the knock.
        call.sendJoin();
        // The media connection exists before we are let in: its offer is gathered while we wait,
        // and it already listens when the SFU's first subscribeOffer follows `joined`
        // (which CallSession may still be opening — slow WebCrypto in Firefox).
        const conn = new CallConnection(signaling);
        connection.current = conn;
        conn.onStreams = (streams) => setRemoteStreams(new Map(streams));
        conn.onFailure = setMediaFailure;
        call.onKeys = (keys) => conn.setKeys(keys);
        const cannotSend = () => setMediaFailure('Your camera and microphone could not be sent.');
        if (stream) conn.prepareOffer(stream).catch(cannotSend);
        let knockCount = 0;
        let publishing = false;
        const sync = () => {
          if (call.phase.kind === 'in-call' && !publishing) {
            publishing = true;
            if (stream) void conn.publish(stream).catch(cannotSend);
            call.setMediaState(audioEnabled(stream), videoEnabled(stream));
          }
          if (call.knocks.size > knockCount) playKnockSound();
          knockCount = call.knocks.size;
          document.title = call.knocks.size > 0 ? `(${call.knocks.size}) Someone wants to join · linkcall` : 'linkcall';
          if (call.phase.kind === 'ended') {
            conn.close();
            stream?.getTracks().forEach((t) => t.stop());
          }
          rerender(0);
        };
        const offChange = call.onChange(sync);
        off = () => {
          offChange();
          conn.close();
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
        <h1>Can't reach the server</h1>
        <p role="alert">Could not connect to the call. Check your connection and try again.</p>
        <a class="button" href={location.pathname + location.hash}>Try again</a>
      </main>
    );
  }
  if (!session) return null;
  const phase = session.phase;

  if (phase.kind === 'ended') {
    return (
      <main class="page narrow">
        <h1>{phase.code === 'left' ? 'You left the call' : 'Call over'}</h1>
        <p role="alert">{phase.message}</p>
        {RETRYABLE.has(phase.code) && <a class="button" href={location.pathname}>Join again</a>}
      </main>
    );
  }
  if (phase.kind === 'connecting') {
    return <main class="page narrow"><p role="status">Connecting…</p></main>;
  }
  if (phase.kind === 'waiting') {
    return (
      <main class="page narrow">
        <p role="status" class="lede">Waiting for {phase.hostName || hostName} to let you in…</p>
        {!phase.hostPresent && (
          <p class="muted">{phase.hostName || hostName} hasn't joined yet. You'll get in once they arrive and let you in; we'll wait up to 10 minutes.</p>
        )}
        <button class="secondary" onClick={() => session.leave()}>Cancel</button>
      </main>
    );
  }

  const you = session.you!;
  const isHost = you.role === 'host';
  const others = [...session.participants.values()];
  const toggleAudio = () => {
    const on = !audioOn;
    stream?.getAudioTracks().forEach((t) => (t.enabled = on));
    setAudioOn(on);
    session.setMediaState(on, videoOn);
  };
  const toggleVideo = () => {
    const on = !videoOn;
    stream?.getVideoTracks().forEach((t) => (t.enabled = on));
    setVideoOn(on);
    session.setMediaState(audioOn, on);
  };

  return (
    <main class="call">
      <header class="row spread">
        <h1 class="call-title">{session.linkName}</h1>
        <span class="row">
          <span class="muted">{others.length + 1} in call</span>
          <span class="safety" title="Compare with the others: when the codes match, nobody is listening in between.">
            Safety code <output aria-label="Safety code">{session.safetyCode ?? '…'}</output>
          </span>
        </span>
      </header>
      {mediaFailure && <p role="alert" class="error">{mediaFailure}</p>}
      {session.lastError && <p role="alert" class="error">{session.lastError}</p>}
      {session.canApprove && session.knocks.size > 0 && (
        <section class="knocks card" aria-label="Waiting to join">
          <h2>
            Waiting to join <span class="badge" aria-label={`${session.knocks.size} waiting`}>{session.knocks.size}</span>
          </h2>
          <ul aria-live="polite">
            {[...session.knocks.values()].map((k) => (
              <li key={k.id} class="row spread">
                <span class="knock-name">{k.name ?? UNREADABLE}</span>
                <span class="row">
                  {k.name !== undefined && (
                    <button class="approve" aria-label={`Approve ${k.name}`} onClick={() => void session.approve(k.id)}>✓</button>
                  )}
                  <button class="decline danger" aria-label={`Decline ${k.name ?? 'unknown guest'}`} onClick={() => session.decline(k.id)}>✗</button>
                </span>
              </li>
            ))}
          </ul>
        </section>
      )}
      <section class={`grid n${Math.min(others.length + 1, 9)}`} aria-label="Participants">
        <Tile participant={{ ...you, name, audio: audioOn, video: videoOn }} stream={stream} self />
        {others.map((p) => (
          <Tile key={p.id} participant={p} stream={remoteStreams.get(p.id)} onRemove={isHost ? () => session.remove(p.id) : undefined} />
        ))}
      </section>
      <nav class="controls row" aria-label="Call controls">
        <button class="secondary" aria-pressed={!audioOn} onClick={toggleAudio}>{audioOn ? 'Mute' : 'Unmute'}</button>
        <button class="secondary" aria-pressed={!videoOn} onClick={toggleVideo}>{videoOn ? 'Camera off' : 'Camera on'}</button>
        <button class="danger" onClick={() => session.leave()}>Leave</button>
        {isHost && <button class="danger" onClick={() => session.end()}>End call</button>}
      </nav>
    </main>
  );
}

function Tile({ participant: p, stream, self, onRemove }: { participant: Member; stream?: MediaStream; self?: boolean; onRemove?: () => void }) {
  const participant = { ...p, name: p.name ?? UNREADABLE };
  const video = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    if (video.current && video.current.srcObject !== (stream ?? null)) video.current.srcObject = stream ?? null;
  }, [stream]);
  const label = self ? `${participant.name} (you)` : participant.name;
  return (
    <figure class="tile" data-participant={participant.id}>
      <video
        ref={video}
        autoplay
        playsInline
        muted={self}
        class={self ? 'mirror' : ''}
        aria-label={self ? 'Your video' : `Video of ${participant.name}`}
      />
      {!participant.video && <div class="camera-off" aria-hidden="true">{participant.name.slice(0, 1).toUpperCase()}</div>}
      <figcaption class="row">
        <span class="tile-name">{label}</span>
        {!participant.audio && <span class="muted-icon" aria-label={`${participant.name} is muted`} role="img">🔇</span>}
        {!stream && !self && <span class="small">Connecting…</span>}
        {onRemove && <button class="danger small" aria-label={`Remove ${participant.name}`} onClick={onRemove}>Remove</button>}
      </figcaption>
    </figure>
  );
}

function audioEnabled(stream?: MediaStream): boolean {
  return stream?.getAudioTracks().some((t) => t.enabled) ?? false;
}
function videoEnabled(stream?: MediaStream): boolean {
  return stream?.getVideoTracks().some((t) => t.enabled) ?? false;
}
