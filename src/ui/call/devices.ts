/** Camera and microphone: open, list, remember the choice, and describe failures in plain sentences. */
import { say, type Said } from '../i18n/locale.js';

export interface DeviceChoice {
  cameraId?: string;
  microphoneId?: string;
  speakerId?: string;
}

export interface LocalMedia {
  /** What could be opened: both, one, or nothing (listen-only). */
  stream?: MediaStream;
  /** Why something is missing, as a sentence; none when all is well. */
  problem?: Said;
}

const CHOICE_KEY = 'linkcall.devices';

/** The devices chosen last time in this browser (ids only: labels stay with the browser). */
export function rememberedChoice(): DeviceChoice {
  try {
    const saved = JSON.parse(localStorage.getItem(CHOICE_KEY) ?? '{}') as Record<string, unknown>;
    const id = (v: unknown) => (typeof v === 'string' && v.length > 0 && v.length < 256 ? v : undefined);
    return { cameraId: id(saved.cameraId), microphoneId: id(saved.microphoneId), speakerId: id(saved.speakerId) };
  } catch {
    return {};
  }
}

export function rememberChoice(choice: DeviceChoice): void {
  try {
    localStorage.setItem(CHOICE_KEY, JSON.stringify(choice));
  } catch {
    // storage blocked: chosen for this visit only
  }
}

function constraints(choice: DeviceChoice): { video: MediaTrackConstraints; audio: MediaTrackConstraints } {
  const video: MediaTrackConstraints = { width: { ideal: 640 }, height: { ideal: 480 } };
  if (choice.cameraId) video.deviceId = { exact: choice.cameraId };
  const audio: MediaTrackConstraints = { echoCancellation: true, noiseSuppression: true };
  if (choice.microphoneId) audio.deviceId = { exact: choice.microphoneId };
  return { video, audio };
}

export async function openLocalMedia(choice: DeviceChoice = {}): Promise<MediaStream> {
  return navigator.mediaDevices.getUserMedia(constraints(choice));
}

/** Open one kind of device, e.g. to switch cameras mid-call. */
export async function openTrack(kind: 'audio' | 'video', choice: DeviceChoice): Promise<MediaStreamTrack> {
  const c = constraints(choice);
  const stream = await navigator.mediaDevices.getUserMedia(kind === 'audio' ? { audio: c.audio } : { video: c.video });
  return stream.getTracks()[0]!;
}

/**
 * Camera and microphone if possible; otherwise whichever works, with a
 * sentence saying what is missing. Joining works in every case.
 */
export async function openWhatWorks(choice: DeviceChoice = {}, remembered = false): Promise<LocalMedia> {
  const c = constraints(choice);
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(c) };
  } catch (err) {
    // A device remembered from last time may be unplugged now: then whatever the browser offers.
    if (!remembered || !(choice.cameraId || choice.microphoneId)) return openAny(c, err);
    return openWhatWorks({});
  }
}

/** Whichever of camera and microphone opens, with a sentence saying what is missing. */
async function openAny(c: { video: MediaTrackConstraints; audio: MediaTrackConstraints }, both: unknown): Promise<LocalMedia> {
  const [audio, video] = await Promise.allSettled([
    navigator.mediaDevices.getUserMedia({ audio: c.audio }),
    navigator.mediaDevices.getUserMedia({ video: c.video }),
  ]);
  const tracks = [audio, video].flatMap((r) => (r.status === 'fulfilled' ? r.value.getTracks() : []));
  if (audio.status === 'fulfilled' && video.status === 'rejected') {
    return { stream: new MediaStream(tracks), problem: describeMissing('camera', video.reason) };
  }
  if (video.status === 'fulfilled' && audio.status === 'rejected') {
    return { stream: new MediaStream(tracks), problem: describeMissing('microphone', audio.reason) };
  }
  if (tracks.length > 0) return { stream: new MediaStream(tracks) };
  return { problem: describeMediaError(both) };
}

function describeMissing(device: 'camera' | 'microphone', err: unknown): Said {
  const name = (err as { name?: string })?.name;
  const camera = device === 'camera';
  if (name === 'NotAllowedError') return say(camera ? 'devices.cameraBlocked' : 'devices.micBlocked');
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return say(camera ? 'devices.cameraMissing' : 'devices.micMissing');
  if (name === 'NotReadableError') return say(camera ? 'devices.cameraBusy' : 'devices.micBusy');
  return say(camera ? 'devices.cameraFailed' : 'devices.micFailed');
}

export interface DeviceLists {
  cameras: MediaDeviceInfo[];
  microphones: MediaDeviceInfo[];
  /** Empty where the browser cannot choose where sound plays (no setSinkId). */
  speakers: MediaDeviceInfo[];
}

export async function listDevices(): Promise<DeviceLists> {
  const all = await navigator.mediaDevices.enumerateDevices();
  // Without permission browsers list devices with empty ids: nothing to choose from.
  const usable = (kind: MediaDeviceKind) => all.filter((d) => d.kind === kind && d.deviceId);
  return {
    cameras: usable('videoinput'),
    microphones: usable('audioinput'),
    speakers: 'setSinkId' in HTMLMediaElement.prototype ? usable('audiooutput') : [],
  };
}

export function describeMediaError(err: unknown): Said {
  const name = (err as { name?: string })?.name;
  if (name === 'NotAllowedError') return say('devices.bothBlocked');
  if (name === 'NotFoundError') return say('devices.bothMissing');
  if (name === 'NotReadableError') return say('devices.bothBusy');
  return say('devices.bothFailed');
}

/** Route a media element's sound to the chosen speaker, where the browser allows it. */
export function applySpeaker(element: HTMLMediaElement, speakerId: string | undefined): void {
  const el = element as HTMLMediaElement & { setSinkId?: (id: string) => Promise<void>; sinkId?: string };
  if (!el.setSinkId || speakerId === undefined || el.sinkId === speakerId) return;
  el.setSinkId(speakerId).catch(() => {});
}

let chimeContext: AudioContext | undefined;

/**
 * A short two-tone chime for a knock, made with WebAudio (no asset to load). It plays after
 * the next paint, so that the knock shows first: making the page's AudioContext the first
 * time holds the page up for tens of milliseconds.
 */
export function playKnockSound(): void {
  requestAnimationFrame(() =>
    setTimeout(() => {
      try {
        chimeContext ??= new AudioContext();
        const ctx = chimeContext;
        if (ctx.state === 'suspended') void ctx.resume().catch(() => {});
        const gain = ctx.createGain();
        gain.gain.value = 0.08;
        gain.connect(ctx.destination);
        [660, 880].forEach((freq, i) => {
          const osc = ctx.createOscillator();
          osc.frequency.value = freq;
          osc.connect(gain);
          osc.start(ctx.currentTime + i * 0.15);
          osc.stop(ctx.currentTime + i * 0.15 + 0.12);
        });
      } catch {
        // Sound is a nicety; the badge and list still show the knock.
      }
    }),
  );
}
