/**
 * "Reduce background noise": the microphone runs through a noise-suppression model in an
 * AudioWorklet (from @sapphi-red/web-noise-suppressor, served by linkcall itself), and the
 * worklet's output is the track the call sends, before encryption. Loaded only when used.
 */
import { GtcrnWorkletNode, loadGtcrn, loadRnnoise, loadSpeex, RnnoiseWorkletNode, SpeexWorkletNode } from '@sapphi-red/web-noise-suppressor';
import gtcrnWorklet from '@sapphi-red/web-noise-suppressor/gtcrnWorklet.js?url';
import gtcrnWasm from '@sapphi-red/web-noise-suppressor/gtcrn.wasm?url';
import rnnoiseWorklet from '@sapphi-red/web-noise-suppressor/rnnoiseWorklet.js?url';
import rnnoiseWasm from '@sapphi-red/web-noise-suppressor/rnnoise.wasm?url';
import rnnoiseSimdWasm from '@sapphi-red/web-noise-suppressor/rnnoise_simd.wasm?url';
import speexWorklet from '@sapphi-red/web-noise-suppressor/speexWorklet.js?url';
import speexWasm from '@sapphi-red/web-noise-suppressor/speex.wasm?url';

/** RNNoise by default: see docs/EFFECTS.md for the measurements behind the choice. */
export type NoiseModel = 'rnnoise' | 'speex' | 'gtcrn';

export interface NoiseSuppression {
  readonly track: MediaStreamTrack;
  /** The AudioContext doing the work, for measuring its load. */
  readonly context: AudioContext;
  /** Stops suppressing; the microphone track itself is left running. */
  stop(): void;
}

export async function startNoiseSuppression(microphone: MediaStreamTrack, model: NoiseModel = 'rnnoise'): Promise<NoiseSuppression> {
  // The models work on 48 kHz frames (GTCRN also at 16 kHz); WebRTC sends Opus at 48 kHz anyway.
  const context = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
  try {
    const node = await makeNode(context, model);
    const source = context.createMediaStreamSource(new MediaStream([microphone]));
    const destination = context.createMediaStreamDestination();
    // One channel all the way: the source gives a mono microphone as two equal channels, and the
    // model (maxChannels 1) cleans only the first, leaving the second silent, so the sent sound
    // lost 6 dB (half) when mixed down on the other side. Downmixed to mono before the model,
    // sent as mono.
    for (const n of [node, destination]) {
      n.channelCount = 1;
      n.channelCountMode = 'explicit';
      n.channelInterpretation = 'speakers';
    }
    source.connect(node).connect(destination);
    // Not started by a click on every page (autoplay rules): resume as soon as we may.
    if (context.state === 'suspended') void context.resume().catch(() => {});
    const track = destination.stream.getAudioTracks()[0]!;
    // Taken now: the caller may make the track's own stop() stop the microphone too (local-effects.ts).
    const stopTrack = track.stop.bind(track);
    return {
      track,
      context,
      stop() {
        stopTrack();
        source.disconnect();
        (node as AudioWorkletNode & { destroy?: () => void }).destroy?.();
        void context.close().catch(() => {});
      },
    };
  } catch (err) {
    void context.close().catch(() => {});
    throw err;
  }
}

async function makeNode(context: AudioContext, model: NoiseModel): Promise<AudioWorkletNode> {
  const maxChannels = 1;
  if (model === 'speex') {
    const [wasmBinary] = await Promise.all([loadSpeex({ url: speexWasm }), context.audioWorklet.addModule(speexWorklet)]);
    return new SpeexWorkletNode(context, { maxChannels, wasmBinary });
  }
  if (model === 'gtcrn') {
    const [wasmBinary] = await Promise.all([loadGtcrn({ url: gtcrnWasm }), context.audioWorklet.addModule(gtcrnWorklet)]);
    return new GtcrnWorkletNode(context, { maxChannels, wasmBinary });
  }
  const [wasmBinary] = await Promise.all([
    loadRnnoise({ url: rnnoiseWasm, simdUrl: rnnoiseSimdWasm }),
    context.audioWorklet.addModule(rnnoiseWorklet),
  ]);
  return new RnnoiseWorkletNode(context, { maxChannels, wasmBinary });
}
