/** Camera and microphone: open, list, and describe failures in plain sentences. */
export interface DeviceChoice {
  cameraId?: string;
  microphoneId?: string;
  speakerId?: string;
}

export interface LocalMedia {
  /** What could be opened: both, one, or nothing (listen-only). */
  stream?: MediaStream;
  /** Why something is missing, as a sentence; empty when all is well. */
  problem: string;
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
export async function openWhatWorks(choice: DeviceChoice = {}): Promise<LocalMedia> {
  const c = constraints(choice);
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(c), problem: '' };
  } catch (both) {
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
    if (tracks.length > 0) return { stream: new MediaStream(tracks), problem: '' };
    return { problem: describeMediaError(both) };
  }
}

function describeMissing(device: 'camera' | 'microphone', err: unknown): string {
  const name = (err as { name?: string })?.name;
  const effect = device === 'camera' ? 'Others will hear you but not see you.' : 'Others will see you but not hear you.';
  if (name === 'NotAllowedError') return `Access to your ${device} was blocked. ${effect} Allow it in the address bar to change that.`;
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return `No ${device} was found. ${effect}`;
  if (name === 'NotReadableError') return `Your ${device} is in use by another app. ${effect}`;
  return `Your ${device} could not be started. ${effect}`;
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

export function describeMediaError(err: unknown): string {
  const name = (err as { name?: string })?.name;
  const still = 'You can still join and listen.';
  if (name === 'NotAllowedError') return `Camera and microphone access was blocked. ${still} To be seen and heard, allow access in the address bar and reload.`;
  if (name === 'NotFoundError') return `No camera or microphone was found. ${still}`;
  if (name === 'NotReadableError') return `Your camera and microphone are in use by another app. ${still}`;
  return `Your camera and microphone could not be started. ${still}`;
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
