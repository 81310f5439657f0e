/** Camera and microphone: open, list, and describe failures in plain sentences. */
export interface DeviceChoice {
  cameraId?: string;
  microphoneId?: string;
}

export async function openLocalMedia(choice: DeviceChoice = {}): Promise<MediaStream> {
  const video: MediaTrackConstraints = { width: { ideal: 640 }, height: { ideal: 480 } };
  if (choice.cameraId) video.deviceId = { exact: choice.cameraId };
  const audio: MediaTrackConstraints = { echoCancellation: true, noiseSuppression: true };
  if (choice.microphoneId) audio.deviceId = { exact: choice.microphoneId };
  return navigator.mediaDevices.getUserMedia({ video, audio });
}

export async function listDevices(): Promise<{ cameras: MediaDeviceInfo[]; microphones: MediaDeviceInfo[] }> {
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === 'videoinput'),
    microphones: all.filter((d) => d.kind === 'audioinput'),
  };
}

export function describeMediaError(err: unknown): string {
  const name = (err as { name?: string })?.name;
  if (name === 'NotAllowedError') return 'Camera and microphone access was blocked. Allow it in the address bar to be seen and heard.';
  if (name === 'NotFoundError') return 'No camera or microphone was found.';
  if (name === 'NotReadableError') return 'Your camera or microphone is in use by another app.';
  return 'Your camera and microphone could not be started.';
}

/** A short two-tone chime for a knock, made with WebAudio (no asset to load). */
export function playKnockSound(): void {
  try {
    const ctx = new AudioContext();
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
    setTimeout(() => void ctx.close(), 600);
  } catch {
    // Sound is a nicety; the badge and list still show the knock.
  }
}
