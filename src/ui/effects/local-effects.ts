/**
 * Background blur and noise suppression on the person's own camera and microphone. This file
 * is in the join page's bundle and stays small: the models and their code are imported only
 * once a switch is on.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { say, type Said } from '../i18n/locale.js';

const BLUR_KEY = 'linkcall.blur';
const DENOISE_KEY = 'linkcall.denoise';

/** For bench/effects.ts and anyone curious in the console: the running blur's numbers. */
const diagnostics = globalThis as unknown as { linkcallBlurStats?: () => unknown };

/** Blur needs WebGL 2 (the model) and a way to make a video track from pictures. */
export function blurSupported(): boolean {
  return typeof WebGL2RenderingContext !== 'undefined' && typeof HTMLCanvasElement.prototype.captureStream === 'function';
}

export function noiseSuppressionSupported(): boolean {
  return typeof AudioWorkletNode !== 'undefined';
}

/**
 * On by default where the device can afford it: a worklet and four cores or more. RNNoise itself
 * costs ~2 % of a core, but the real-time audio thread it needs wakes every 2.7 ms: on 2 cores
 * with one kept busy, two pages of the group test sent 10–16 frames/s with it on by default
 * against 26–28 without, side by side (the switch stays one click away).
 */
function noiseSuppressionDefault(): boolean {
  return noiseSuppressionSupported() && (navigator.hardwareConcurrency ?? 1) >= 4;
}

/** Which model (see docs/EFFECTS.md); another can be picked for measuring with localStorage `linkcall.noiseModel`. */
function noiseModel(): 'rnnoise' | 'speex' | 'gtcrn' {
  try {
    const m = localStorage.getItem('linkcall.noiseModel');
    return m === 'speex' || m === 'gtcrn' ? m : 'rnnoise';
  } catch {
    return 'rnnoise';
  }
}

function remembered(key: string, fallback: boolean): boolean {
  try {
    const v = localStorage.getItem(key);
    return v === null ? fallback : v === '1';
  } catch {
    return fallback;
  }
}
function remember(key: string, on: boolean): void {
  try {
    localStorage.setItem(key, on ? '1' : '0');
  } catch {
    // Private windows may refuse storage; the switch still works for this call.
  }
}

export interface LocalEffects {
  /** What the preview shows and the call sends: the camera and microphone after the effects. */
  sent?: MediaStream;
  blur: boolean;
  setBlur(on: boolean): void;
  denoise: boolean;
  setDenoise(on: boolean): void;
  /** An effect is still loading: sending now would send the unprocessed picture or sound. */
  busy: boolean;
  /** Why an effect is off although switched on, as a catalog sentence; undefined when all is well. */
  notice?: Said;
  /** The devices behind `sent` (a processed track has no device id of its own). */
  camera?: MediaStreamTrack;
  microphone?: MediaStreamTrack;
  /**
   * A device chosen in the call: the effects move to it and `sent` changes (the caller swaps the
   * new track into the call). The device it replaces is stopped.
   */
  replaceDevice(track: MediaStreamTrack): void;
}

/**
 * The effects for one opened camera/microphone stream. A processed track keeps its own
 * lifetime: stopping it (as the call does when it ends) also stops the device behind it.
 */
export function useLocalEffects(stream: MediaStream | undefined): LocalEffects {
  const [blur, setBlurState] = useState(() => blurSupported() && remembered(BLUR_KEY, false));
  const [denoise, setDenoiseState] = useState(() => noiseSuppressionSupported() && remembered(DENOISE_KEY, noiseSuppressionDefault()));
  const [notice, setNotice] = useState<Said | undefined>(undefined);
  // Devices chosen in the call replace the opened stream's (only for that stream).
  const [swapped, setSwapped] = useState<{ of?: MediaStream; audio?: MediaStreamTrack; video?: MediaStreamTrack }>({});
  const own = swapped.of === stream ? swapped : {};
  const camera = own.video ?? stream?.getVideoTracks()[0];
  const microphone = own.audio ?? stream?.getAudioTracks()[0];
  const [video, setVideo] = useState<{ from?: MediaStreamTrack; track?: MediaStreamTrack }>({});
  const [audio, setAudio] = useState<{ from?: MediaStreamTrack; track?: MediaStreamTrack }>({});

  useEffect(() => {
    if (!camera || !blur) return setVideo({ from: camera, track: camera });
    let cancelled = false;
    let stop = () => {};
    setNotice(undefined);
    import('./blur.js')
      .then(({ startBlur }) =>
        startBlur(camera, () => {
          // Off, and said so; not remembered: another time (a quieter machine) it may keep up.
          setNotice(say('effects.tooSlow'));
          setBlurState(false);
        }),
      )
      .then((b) => {
        if (cancelled) return b.stop();
        stop = () => b.stop();
        diagnostics.linkcallBlurStats = () => b.stats();
        chainStop(b.track, camera);
        // Camera off / muted is the sent track's to say: the device behind an effect keeps
        // running (a disabled camera would feed the blur black frames for good).
        b.track.enabled = camera.enabled;
        camera.enabled = true;
        setVideo({ from: camera, track: b.track });
      })
      .catch(() => {
        if (cancelled) return;
        setNotice(say('effects.blurFailed'));
        setVideo({ from: camera, track: camera });
      });
    return () => {
      cancelled = true;
      stop();
    };
  }, [camera, blur]);

  useEffect(() => {
    if (!microphone || !denoise) return setAudio({ from: microphone, track: microphone });
    let cancelled = false;
    let stop = () => {};
    import('./noise.js')
      .then(({ startNoiseSuppression }) => startNoiseSuppression(microphone, noiseModel()))
      .then((n) => {
        if (cancelled) return n.stop();
        stop = () => n.stop();
        chainStop(n.track, microphone);
        n.track.enabled = microphone.enabled;
        microphone.enabled = true;
        setAudio({ from: microphone, track: n.track });
      })
      .catch(() => {
        if (cancelled) return;
        setNotice(say('effects.denoiseFailed'));
        setAudio({ from: microphone, track: microphone });
      });
    return () => {
      cancelled = true;
      stop();
    };
  }, [microphone, denoise]);

  const videoReady = video.from === camera;
  const audioReady = audio.from === microphone;
  const sent = useMemo(() => {
    // While an effect loads the preview shows the camera as it is (Join waits for `busy`).
    if (!stream || !videoReady || !audioReady) return stream;
    return new MediaStream([audio.track, video.track].filter((t): t is MediaStreamTrack => !!t));
  }, [stream, videoReady, audioReady, audio.track, video.track]);

  return {
    sent,
    blur,
    setBlur(on) {
      remember(BLUR_KEY, on);
      setNotice(undefined);
      setBlurState(on);
    },
    denoise,
    setDenoise(on) {
      remember(DENOISE_KEY, on);
      setDenoiseState(on);
    },
    busy: !!stream && (!videoReady || !audioReady),
    notice,
    camera,
    microphone,
    replaceDevice(track) {
      const old = track.kind === 'audio' ? microphone : camera;
      setSwapped({ ...own, of: stream, [track.kind]: track });
      old?.stop();
    },
  };
}

/** Stopping the processed track stops the device too (the call stops what it sent when it ends). */
function chainStop(processed: MediaStreamTrack, device: MediaStreamTrack): void {
  const stop = processed.stop.bind(processed);
  processed.stop = () => {
    stop();
    device.stop();
  };
}
