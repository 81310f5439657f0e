/**
 * The call itself: header, lobby, grid, controls, device and shortcut dialogs,
 * screen sharing, active speaker and connection quality. Joining, waiting and
 * endings are CallView's (pages/call.tsx).
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { REACTIONS, type CallSession } from '../../client/call.js';
import { DevicePicker, MicLevel } from '../components/devices.js';
import { EffectSwitches } from '../effects/effect-switches.js';
import type { LocalEffects } from '../effects/local-effects.js';
import { applySpeaker, listDevices, openTrack, type DeviceChoice, type DeviceLists } from './devices.js';
import { chooseVideoTiles, VideoBudget, type LoadSample } from './budget.js';
import { ChatButton, ChatPanel } from './chat.js';
import { MemoCallGrid, type TileModel } from './grid.js';
import { LevelMeter } from './levels.js';
import { Lobby, UNREADABLE } from './lobby.js';
import type { CallConnection } from './media.js';
import { StatsReader, sendingStarved, sentQuality, type Quality } from './quality.js';
import { RemoteMedia } from './remote-media.js';
import { tileSizeReporter } from './viewport.js';
import { errorText, say, t, told, tx, type Said } from '../i18n/locale.js';

interface Props {
  session: CallSession;
  connection: CallConnection;
  /** This page's camera and microphone (possibly without tracks: listening only); swapped in place on device change. */
  local: MediaStream;
  name: string;
  /** The link's name, as verified on the join page. */
  title: string;
  remoteStreams: ReadonlyMap<string, MediaStream>;
  speakerId?: string;
  mediaFailure?: Said;
  /** Blur and noise suppression from the join page: switched again in Devices, swapped into the call here. */
  effects?: LocalEffects;
}

/** Audio level above which someone counts as speaking (inbound-rtp audioLevel, 0…1). */
const SPEAKING_LEVEL = 0.04;
const STATS_INTERVAL_MS = 1000;
/** The local microphone's level meter starts this long after the call view opens. */
const METER_DELAY_MS = 1500;

const isMac = typeof navigator !== 'undefined' && /Mac|iPhone|iPad/.test(navigator.platform);
const isMacKeys = isMac;

export function InCall({ session, connection, local, name, title, remoteStreams, speakerId: initialSpeaker, mediaFailure, effects }: Props) {
  const [audioOn, setAudioOn] = useState(() => local.getAudioTracks().some((t) => t.enabled));
  const [videoOn, setVideoOn] = useState(() => local.getVideoTracks().some((t) => t.enabled));
  const [localTracks, setLocalTracks] = useState(() => local.getTracks());
  const [screen, setScreen] = useState<MediaStream | undefined>(undefined);
  const [shareError, setShareError] = useState<Said | undefined>(undefined);
  const [pinned, setPinned] = useState<string | undefined>(undefined);
  const [chatOpen, setChatOpen] = useState(false);
  const [speaker, setSpeaker] = useState<string | undefined>(undefined);
  const [quality, setQuality] = useState<ReadonlyMap<string, Quality>>(new Map());
  const [speakerId, setSpeakerId] = useState(initialSpeaker);
  const [dialog, setDialog] = useState<'devices' | 'shortcuts' | undefined>(undefined);
  const [announcement, setAnnouncement] = useState('');
  const remote = useMemo(() => new RemoteMedia((t) => connection.videoOrder(t)), [connection]);
  const media = useMemo(() => remote.update(remoteStreams), [remoteStreams, remote]);
  const reportTileSize = useMemo(() => tileSizeReporter(session), [session]);
  // How many remote videos this page plays (budget.ts), and who plays them.
  const budget = useMemo(
    () => new VideoBudget({ cores: navigator.hardwareConcurrency || 2, small: globalThis.matchMedia?.('(max-width: 600px)').matches ?? false }),
    [],
  );
  const [videoLimit, setVideoLimit] = useState(budget.limit);
  const spokeAt = useRef(new Map<string, number>());
  const playingRef = useRef<ReadonlySet<string>>(new Set());
  const wantedRef = useRef(0);

  const you = session.you!;
  const isHost = you.role === 'host';
  const others = [...session.participants.values()];
  const hasAudio = localTracks.some((t) => t.kind === 'audio');
  const hasVideo = localTracks.some((t) => t.kind === 'video');

  const toggleAudio = () => {
    const on = !audioOn && hasAudio;
    local.getAudioTracks().forEach((t) => (t.enabled = on));
    setAudioOn(on);
    session.setMediaState(on, videoOn);
  };
  // Muted by the host or a co-host: the microphone goes off here too (the SFU already stopped forwarding it).
  session.onMutedByOther = () => {
    local.getAudioTracks().forEach((t) => (t.enabled = false));
    setAudioOn(false);
  };
  const unmuteNow = () => {
    if (!hasAudio) return;
    local.getAudioTracks().forEach((t) => (t.enabled = true));
    setAudioOn(true);
    session.setMediaState(true, videoOn);
  };
  const moderator = isHostOrCoHost(session, you.id);
  const toggleVideo = () => {
    const on = !videoOn && hasVideo;
    local.getVideoTracks().forEach((t) => (t.enabled = on));
    setVideoOn(on);
    session.setMediaState(audioOn, on);
  };

  async function toggleScreen() {
    setShareError(undefined);
    if (screen) return stopScreen(screen);
    let shared: MediaStream;
    try {
      shared = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    } catch (err) {
      // Cancelling the browser's picker is not an error worth a sentence.
      if ((err as { name?: string })?.name !== 'NotAllowedError') setShareError(say('call.shareFailed'));
      return;
    }
    const track = shared.getVideoTracks()[0]!;
    track.addEventListener('ended', () => stopScreen(shared));
    setScreen(shared);
    connection.setScreen(track).catch(() => setShareError(say('call.shareFailed')));
  }
  function stopScreen(shared: MediaStream) {
    shared.getTracks().forEach((t) => t.stop());
    setScreen((s) => (s === shared ? undefined : s));
    connection.setScreen(undefined).catch(() => {});
  }
  useEffect(() => () => screen?.getTracks().forEach((t) => t.stop()), [screen]);

  // An effect switched on or off (or blur giving up on a slow device): its track replaces the one
  // sent, like a device switch. The one it replaces is not stopped here: the effects own it.
  const effectsSent = effects?.sent;
  const muteState = useRef({ audioOn, videoOn });
  muteState.current = { audioOn, videoOn };
  useEffect(() => {
    if (!effectsSent) return;
    let changed = false;
    for (const track of effectsSent.getTracks()) {
      const old = track.kind === 'audio' ? local.getAudioTracks()[0] : local.getVideoTracks()[0];
      if (!old || old === track) continue;
      track.enabled = track.kind === 'audio' ? muteState.current.audioOn : muteState.current.videoOn;
      void connection.replaceTrack(track).catch(() => setShareError(say('call.cannotSend')));
      local.removeTrack(old);
      local.addTrack(track);
      changed = true;
    }
    if (changed) setLocalTracks(local.getTracks());
  }, [effectsSent, local, connection]);

  /** Switch a device mid-call: the new track replaces the old one in the sender, no renegotiation. */
  async function chooseDevice(choice: DeviceChoice) {
    setSpeakerId(choice.speakerId);
    for (const kind of ['audio', 'video'] as const) {
      const wanted = kind === 'audio' ? choice.microphoneId : choice.cameraId;
      const old = kind === 'audio' ? local.getAudioTracks()[0] : local.getVideoTracks()[0];
      if (!wanted || deviceBehind(old, effects)?.getSettings().deviceId === wanted) continue;
      try {
        const track = await openTrack(kind, choice);
        if (old && effects) {
          // The effects move to the new device; the effect above swaps the result in.
          effects.replaceDevice(track);
          continue;
        }
        track.enabled = kind === 'audio' ? audioOn || !old : videoOn || !old;
        await connection.replaceTrack(track);
        if (old) {
          local.removeTrack(old);
          old.stop();
        }
        local.addTrack(track);
        setLocalTracks(local.getTracks());
        if (!old) {
          // A device that was missing now works: tell the others.
          if (kind === 'audio') setAudioOn(true);
          else setVideoOn(true);
          session.setMediaState(kind === 'audio' ? true : audioOn, kind === 'video' ? true : videoOn);
        }
      } catch {
        setShareError(say(kind === 'audio' ? 'devices.switchMicFailed' : 'devices.switchCameraFailed'));
      }
    }
  }

  // Keyboard shortcuts: Ctrl/⌘+D microphone, Ctrl/⌘+E camera (as in other call apps).
  const handlers = useRef({ toggleAudio, toggleVideo });
  handlers.current = { toggleAudio, toggleVideo };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey) || e.altKey || e.shiftKey) return;
      const key = e.key.toLowerCase();
      if (key === 'd') handlers.current.toggleAudio();
      else if (key === 'e') handlers.current.toggleVideo();
      else return;
      e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  // Audio levels (active speaker) and connection quality, once a second.
  const localAudio = localTracks.find((t) => t.kind === 'audio');
  const [localMeter, setLocalMeter] = useState<LevelMeter | undefined>(undefined);
  useEffect(() => {
    if (!localAudio) return;
    let meter: LevelMeter | undefined;
    // Not while the call is being set up: making an AudioContext holds the page up for tens of
    // milliseconds, just when the first remote video is on its way.
    const timer = setTimeout(() => setLocalMeter((meter = new LevelMeter(localAudio))), METER_DELAY_MS);
    return () => {
      clearTimeout(timer);
      meter?.close();
      setLocalMeter(undefined);
    };
  }, [localAudio]);
  const audioOnRef = useRef(audioOn);
  audioOnRef.current = audioOn;
  const mediaRef = useRef(media);
  mediaRef.current = media;
  useEffect(() => {
    const reader = new StatsReader();
    let stopped = false;
    // Long main-thread tasks since the last reading (Chromium; elsewhere only decoding counts).
    const tasks = { ms: 0, frozen: false };
    let longTasks: PerformanceObserver | undefined;
    try {
      longTasks = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          tasks.ms += e.duration;
          if (e.duration >= 200) tasks.frozen = true;
        }
      });
      longTasks.observe({ type: 'longtask', buffered: false });
    } catch {
      longTasks = undefined;
    }
    let lastPoll = performance.now();
    const poll = async () => {
      try {
        const [received, sent] = await Promise.all([connection.receiveStats(), connection.sendStats()]);
        if (stopped) return;
        const sample = reader.received(received);
        const byTrack = new Map<string, string>();
        for (const [id, m] of mediaRef.current) for (const t of m.camera.getTracks()) byTrack.set(t.id, id);
        const levels = new Map<string, number>();
        const nextQuality = new Map<string, Quality>();
        for (const [track, level] of sample.levels) if (byTrack.has(track)) levels.set(byTrack.get(track)!, level);
        for (const [track, q] of sample.quality) if (byTrack.has(track)) nextQuality.set(byTrack.get(track)!, q);
        if (localMeter) levels.set(you.id, localMeter.level() > 0.45 ? 1 : 0);
        const mine = sentQuality(sent);
        if (mine) nextQuality.set(you.id, mine);
        // The active speaker: the loudest above the threshold (muted people never count). The call
        // is drawn again only when the speaker or someone's quality changes, not every second.
        let next: string | undefined;
        let loudest = SPEAKING_LEVEL;
        for (const [id, level] of levels) {
          const muted = id === you.id ? !audioOnRef.current : session.participants.get(id)?.audio === false;
          if (!muted && level > loudest) [next, loudest] = [id, level];
        }
        // The video budget, from what the videos playing now cost.
        const now = performance.now();
        const videos: LoadSample['videos'][number][] = [];
        for (const [track, l] of sample.load) if (playingRef.current.has(byTrack.get(track) ?? '')) videos.push(l);
        const load: LoadSample = { intervalMs: now - lastPoll, videos, longTaskMs: tasks.ms, frozen: tasks.frozen, sendingStarved: sendingStarved(sent) };
        lastPoll = now;
        tasks.ms = 0;
        tasks.frozen = false;
        const limit = budget.update(load, wantedRef.current, now);
        // Drawing the call again is a task of its own: reading 60 streams' statistics and
        // re-rendering the grid in one go made the page's longest tasks in a 33-person call.
        await new Promise((resolve) => setTimeout(resolve, 0));
        if (stopped) return;
        setSpeaker(next);
        if (next) spokeAt.current.set(next, Date.now());
        setQuality((before) => (sameEntries(before, nextQuality) ? before : nextQuality));
        setVideoLimit(limit);
      } catch {
        // Statistics are a nicety; a closed connection simply has none.
      }
    };
    const timer = setInterval(() => void poll(), STATS_INTERVAL_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
      longTasks?.disconnect();
    };
  }, [connection, localMeter, you.id, session, budget]);

  // Screen readers hear who knocks, joins and leaves, raises a hand or reacts.
  const seen = useRef<{ knocks: Set<string>; people: Set<string>; hands: Set<string>; reactions: Map<string, number> } | undefined>(undefined);
  useEffect(() => {
    const knocks = new Set(session.knocks.keys());
    const people = new Set(session.participants.keys());
    const hands = new Set(session.hands.keys());
    const reactions = new Map([...session.reactions].map(([id, r]) => [id, r.at]));
    const before = seen.current;
    seen.current = { knocks, people, hands, reactions };
    if (!before) return;
    const said: string[] = [];
    const someone = t('call.someone');
    const nameOf = (id: string) => session.participants.get(id)?.name ?? someone;
    for (const k of session.knocks.values()) if (!before.knocks.has(k.id)) said.push(t('call.saysWantsToJoin', { name: k.name ?? someone }));
    for (const p of session.participants.values()) if (!before.people.has(p.id)) said.push(t('call.saysJoined', { name: p.name ?? someone }));
    for (const id of before.people) if (!people.has(id)) said.push(t('call.saysLeft'));
    for (const id of hands) if (!before.hands.has(id) && id !== you.id) said.push(t('call.saysRaisedHand', { name: nameOf(id) }));
    for (const [id, r] of session.reactions) if (before.reactions.get(id) !== r.at && id !== you.id) said.push(t('call.saysReacted', { name: nameOf(id), reaction: r.reaction }));
    if (said.length) setAnnouncement(said.join(' '));
  });
  // A reaction leaves its tile after a few seconds: draw again then.
  const [, redraw] = useState(0);
  const lastReaction = Math.max(0, ...[...session.reactions.values()].map((r) => r.at));
  useEffect(() => {
    const left = lastReaction + REACTION_MS - Date.now();
    if (left <= 0) return;
    const timer = setTimeout(() => redraw((n) => n + 1), left + 50);
    return () => clearTimeout(timer);
  }, [lastReaction]);

  const tiles: TileModel[] = [
    {
      id: you.id,
      name,
      self: true,
      audio: audioOn,
      video: videoOn && hasVideo,
      stream: hasVideo ? local : undefined,
      screen,
      speaking: speaker === you.id,
      quality: quality.get(you.id),
      hand: session.hands.has(you.id),
      reaction: recentReaction(session, you.id),
    },
    ...others.map((p): TileModel => {
      const m = media.get(p.id);
      const pname = p.name ?? t(UNREADABLE);
      return {
        id: p.id,
        name: pname,
        self: false,
        audio: p.audio,
        video: p.video,
        reconnecting: p.reconnecting,
        stream: m?.camera,
        screen: m?.screen,
        speaking: speaker === p.id,
        quality: quality.get(p.id),
        hand: session.hands.has(p.id),
        reaction: recentReaction(session, p.id),
        coHost: session.isCoHost(p.id),
        onCoHost: isHost ? () => void session.setCoHost(p.id, !session.isCoHost(p.id)) : undefined,
        onRemove: isHost || (session.isCoHost(you.id) && p.role !== 'host') ? () => session.remove(p.id) : undefined,
        onMute: moderator && p.role !== 'host' ? () => (p.audio ? session.mute(p.id) : session.askToUnmute(p.id)) : undefined,
      };
    }),
  ];
  // Your own screen shows small (no hall of mirrors) unless nobody else shares.
  const remoteSharer = tiles.some((t) => !t.self && t.screen);
  if (remoteSharer) tiles[0] = { ...tiles[0]!, screen: undefined };
  // Over the video budget, the least important remote videos pause (a shared screen always plays).
  const wanted = tiles.filter((t) => !t.self && t.video && t.stream);
  const playing = chooseVideoTiles(
    wanted.map((t) => ({ id: t.id, screen: !!t.screen, pinned: t.id === pinned, spokeAt: spokeAt.current.get(t.id) ?? -Infinity })),
    videoLimit,
  );
  wantedRef.current = wanted.length;
  playingRef.current = playing;
  for (const [i, t] of tiles.entries()) if (!t.self && t.video && t.stream && !playing.has(t.id)) tiles[i] = { ...t, paused: true };
  const step = Math.max(1, Math.ceil(playing.size / 4));
  const showMore = () => setVideoLimit(budget.adjust(step, performance.now(), wanted.length));
  const showFewer = () => setVideoLimit(budget.adjust(-step, performance.now(), wanted.length));

  const canShareScreen = typeof navigator.mediaDevices?.getDisplayMedia === 'function';
  return (
    <main class="call">
      <header class="row spread call-header">
        <h1 class="call-title" dir="auto" translate={false}>{title}</h1>
        <span class="row">
          <span class="muted">{t('call.inCall', { count: session.memberCount })}</span>
          <span class="safety" title={t('call.safetyHelp')}>
            {t('call.safetyCode')} <output aria-label={t('call.safetyCode')} dir="ltr">{session.safetyCode ?? '…'}</output>{' '}
            <span class="muted small">({session.memberCount === 1 ? t('call.justYou') : t('call.people', { count: session.memberCount })})</span>
          </span>
        </span>
      </header>
      <div class="sr-only" aria-live="polite" aria-atomic="true">{announcement}</div>
      {session.reconnecting && <p role="status" class="warning">{t('call.reconnecting')}</p>}
      {session.serverNotice && <p role="status" class="warning">{t('call.serverRestarting')}</p>}
      {mediaFailure && <p role="alert" class="error">{told(mediaFailure)}</p>}
      {shareError && <p role="alert" class="error">{told(shareError)}</p>}
      {effects?.notice && <p role="status" class="notice">{told(effects.notice)}</p>}
      {session.lastErrorCode && <p role="alert" class="error">{errorText(session.lastErrorCode)}</p>}
      {session.securityNotice && <p role="alert" class="warning">{t('call.refusedChange')}</p>}
      {session.locked && <p role="status" class="muted">{t('call.locked')}</p>}
      {session.mutedBy && !audioOn && <p role="status" class="warning">{tx('call.mutedBy', { name: <bdi translate={false}>{session.mutedBy}</bdi> })}</p>}
      {session.unmuteRequest && !audioOn && (
        <p role="alert" class="warning row">
          {tx('call.asksUnmute', { name: <bdi translate={false}>{session.unmuteRequest}</bdi> })}{' '}
          <button onClick={unmuteNow}>{t('call.unmute')}</button>{' '}
          <button class="secondary" onClick={() => session.dismissUnmuteRequest()}>{t('call.notNow')}</button>
        </p>
      )}
      <Lobby session={session} />
      {isHost && <RaisedHands session={session} name={name} />}
      {(wanted.length > playing.size || wanted.length >= 4) && (
        <p class="row video-budget small" data-reason={budget.reason}>
          <span role="status">
            {t(wanted.length > playing.size && budget.reason ? 'call.videoBudgetSmooth' : 'call.videoBudget', {
              shown: Math.min(playing.size, wanted.length),
              count: wanted.length,
            })}
          </span>{' '}
          <button class="secondary small" disabled={playing.size >= wanted.length} onClick={showMore}>{t('call.showMore')}</button>{' '}
          <button class="secondary small" disabled={playing.size <= 1} onClick={showFewer}>{t('call.showFewer')}</button>
        </p>
      )}
      <MemoCallGrid tiles={tiles} pinned={pinned} onPin={setPinned} onTileSize={reportTileSize} />
      <RemoteAudio media={media} speakerId={speakerId} />
      <nav class="controls row" aria-label={t('call.controls')}>
        <button class="secondary" aria-pressed={!audioOn} aria-keyshortcuts="Control+D" disabled={!hasAudio} onClick={toggleAudio}>
          {audioOn ? t('call.mute') : t('call.unmute')}
        </button>
        <button class="secondary" aria-pressed={!videoOn} aria-keyshortcuts="Control+E" disabled={!hasVideo} onClick={toggleVideo}>
          {videoOn ? t('call.cameraOff') : t('call.cameraOn')}
        </button>
        {canShareScreen && (
          <button class="secondary" aria-pressed={!!screen} onClick={() => void toggleScreen()}>
            {screen ? t('call.stopSharing') : t('call.shareScreen')}
          </button>
        )}
        <ChatButton session={session} open={chatOpen} onToggle={() => setChatOpen(!chatOpen)} />
        <button class="secondary" aria-pressed={session.hands.has(you.id)} onClick={() => void session.raiseHand(!session.hands.has(you.id))}>
          {session.hands.has(you.id) ? t('call.lowerHand') : t('call.raiseHand')}
        </button>
        <span class="row reactions" role="group" aria-label={t('call.reactions')}>
          {REACTIONS.map((r) => (
            <button key={r} class="icon small" aria-label={t('call.react', { reaction: r })} onClick={() => void session.react(r)}>{r}</button>
          ))}
        </span>
        {typeof document !== 'undefined' && document.pictureInPictureEnabled && (
          <button class="secondary" onClick={() => void pictureInPicture(speaker, session).catch(() => setShareError(say('call.pipFailed')))}>
            {t('call.pip')}
          </button>
        )}
        <button class="secondary" aria-haspopup="dialog" onClick={() => setDialog('devices')}>{t('call.devices')}</button>
        <button class="secondary" aria-haspopup="dialog" onClick={() => setDialog('shortcuts')}>{t('call.shortcuts')}</button>
        <button class="danger" onClick={() => session.leave()}>{t('call.leave')}</button>
        {moderator && others.length > 0 && (
          <button class="secondary" onClick={() => session.muteEveryone()}>{t('call.muteEveryone')}</button>
        )}
        {(isHost || session.isCoHost(you.id)) && (
          <button class="secondary" aria-pressed={session.locked} onClick={() => session.setLocked(!session.locked)}>
            {session.locked ? t('call.unlock') : t('call.lock')}
          </button>
        )}
        {isHost && <button class="danger" onClick={() => session.end()}>{t('call.end')}</button>}
      </nav>
      {chatOpen && <ChatPanel session={session} />}
      {dialog === 'devices' && (
        <Dialog title={t('call.devices')} onClose={() => setDialog(undefined)}>
          <DeviceSettings local={local} localTracks={localTracks} effects={effects} speakerId={speakerId} audioOn={audioOn} onChoice={(c) => void chooseDevice(c)} />
          {effects && <EffectSwitches effects={effects} camera={hasVideo} microphone={hasAudio} notices={false} />}
        </Dialog>
      )}
      {dialog === 'shortcuts' && (
        <Dialog title={t('call.shortcuts')} onClose={() => setDialog(undefined)}>
          <dl class="shortcuts" dir="ltr">
            <dt><kbd>{isMacKeys ? '⌘' : t('call.keyCtrl')}</kbd> + <kbd translate={false}>D</kbd></dt>
            <dd dir="auto">{t('call.shortcutMic')}</dd>
            <dt><kbd>{isMacKeys ? '⌘' : t('call.keyCtrl')}</kbd> + <kbd translate={false}>E</kbd></dt>
            <dd dir="auto">{t('call.shortcutCamera')}</dd>
            <dt><kbd>{t('call.keyTab')}</kbd> / <kbd>{t('call.keyShift')}</kbd> + <kbd>{t('call.keyTab')}</kbd></dt>
            <dd dir="auto">{tx('call.shortcutMove', { enter: <kbd>{t('call.keyEnter')}</kbd>, space: <kbd>{t('call.keySpace')}</kbd> })}</dd>
            <dt><kbd>{t('call.keyEsc')}</kbd></dt>
            <dd dir="auto">{t('call.shortcutClose')}</dd>
          </dl>
        </Dialog>
      )}
    </main>
  );
}

/** The active speaker's video (else the first other person's) in a picture-in-picture window. */
async function pictureInPicture(speaker: string | undefined, session: CallSession): Promise<void> {
  const others = [...session.participants.values()];
  const who = others.find((p) => p.id === speaker) ?? others[0];
  const video = who && document.querySelector<HTMLVideoElement>(`figure[data-participant="${CSS.escape(who.id)}"] video`);
  if (!video) throw new Error('nobody to show');
  if (document.pictureInPictureElement === video) return document.exitPictureInPicture();
  await video.requestPictureInPicture();
}

function isHostOrCoHost(session: CallSession, id: string): boolean {
  return session.you?.role === 'host' || session.isCoHost(id);
}

/** How long a reaction stays over its sender's tile. */
const REACTION_MS = 5000;

function recentReaction(session: CallSession, id: string): string | undefined {
  const r = session.reactions.get(id);
  return r && Date.now() - r.at < REACTION_MS ? r.reaction : undefined;
}

/** For the host: raised hands in the order they went up, each with "Lower hand". */
function RaisedHands({ session, name }: { session: CallSession; name: string }) {
  const raised = [...session.hands].sort((a, b) => a[1] - b[1]);
  if (raised.length === 0) return null;
  const nameOf = (id: string) => (id === session.you?.id ? name : (session.participants.get(id)?.name ?? t(UNREADABLE)));
  return (
    <section class="card hands" aria-labelledby="hands-heading">
      <h2 id="hands-heading">{t('call.raisedHands')}</h2>
      <ol>
        {raised.map(([id]) => (
          <li key={id} class="row spread">
            <bdi translate={false}>{nameOf(id)}</bdi>
            <button class="secondary small" aria-label={t('call.lowerHandFor', { name: nameOf(id) })} onClick={() => void session.lowerHand(id)}>{t('call.lowerHand')}</button>
          </li>
        ))}
      </ol>
    </section>
  );
}

/** Everyone's sound, independent of which tiles are on screen. */
function RemoteAudio({ media, speakerId }: { media: ReturnType<RemoteMedia['update']>; speakerId?: string }) {
  return (
    <div class="sr-only" aria-hidden="true">
      {[...media].map(([id, m]) => m.audio && <AudioOut key={id} id={id} track={m.audio} speakerId={speakerId} />)}
    </div>
  );
}

function AudioOut({ id, track, speakerId }: { id: string; track: MediaStreamTrack; speakerId?: string }) {
  const audio = useRef<HTMLAudioElement>(null);
  const stream = useMemo(() => new MediaStream([track]), [track]);
  useEffect(() => {
    if (audio.current) audio.current.srcObject = stream;
  }, [stream]);
  useEffect(() => {
    if (audio.current) applySpeaker(audio.current, speakerId);
  }, [speakerId]);
  return <audio ref={audio} autoplay data-participant-audio={id} />;
}

/** The device a sent track comes from: itself, or the camera/microphone behind an effect. */
function deviceBehind(track: MediaStreamTrack | undefined, effects: LocalEffects | undefined): MediaStreamTrack | undefined {
  if (!track || !effects) return track;
  return (track.kind === 'audio' ? effects.microphone : effects.camera) ?? track;
}

function DeviceSettings({ local, localTracks, effects, speakerId, audioOn, onChoice }: { local: MediaStream; localTracks: MediaStreamTrack[]; effects?: LocalEffects; speakerId?: string; audioOn: boolean; onChoice: (c: DeviceChoice) => void }) {
  const [devices, setDevices] = useState<DeviceLists>({ cameras: [], microphones: [], speakers: [] });
  useEffect(() => void listDevices().then(setDevices, () => {}), [localTracks]);
  const choice: DeviceChoice = {
    cameraId: deviceBehind(local.getVideoTracks()[0], effects)?.getSettings().deviceId,
    microphoneId: deviceBehind(local.getAudioTracks()[0], effects)?.getSettings().deviceId,
    speakerId,
  };
  const mic = localTracks.find((t) => t.kind === 'audio');
  return (
    <div class="stack">
      <DevicePicker devices={devices} stream={local} choice={choice} onChoice={onChoice} />
      {mic && <MicLevel track={mic} muted={!audioOn} />}
      {devices.cameras.length + devices.microphones.length === 0 && <p class="muted">{t('devices.noneHere')}</p>}
    </div>
  );
}

/** A modal <dialog>: focus moves in, Esc closes, focus returns to the button that opened it. */
function Dialog({ title, onClose, children }: { title: string; onClose: () => void; children: preact.ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    const dialog = ref.current;
    dialog?.showModal();
    return () => {
      dialog?.close();
      opener?.focus();
    };
  }, []);
  return (
    <dialog ref={ref} class="dialog card" aria-labelledby="dialog-title" onClose={onClose} onCancel={onClose}>
      <div class="row spread">
        <h2 id="dialog-title">{title}</h2>
        <button class="secondary small" onClick={onClose}>{t('call.close')}</button>
      </div>
      {children}
    </dialog>
  );
}

function sameEntries<K, V>(a: ReadonlyMap<K, V>, b: ReadonlyMap<K, V>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
