/**
 * Background blur: each camera frame is segmented, the person drawn sharp over a blurred copy
 * of the same frame, and the result is a new video track — the one the preview shows and the
 * call sends (before encryption). Loaded only when someone switches blur on.
 *
 * Chromium reads frames with MediaStreamTrackProcessor and writes them with
 * MediaStreamTrackGenerator, as I420 frames like the camera's: neither is throttled in a
 * background tab. Elsewhere (Firefox) a
 * <video> is drawn into a canvas on a timer and sent with canvas.captureStream().
 */
import { createSegmenter, type Segmenter } from './segmenter.js';

/** Below this output rate for a whole measuring window, blur turns itself off. */
export const MIN_FPS = 15;
const WINDOW_MS = 3000;
/** Startup (model warm-up, first frames) is not held against the device. */
const GRACE_MS = 2500;
const BLUR_PX = 14;
/**
 * The model runs at most this often, and never more than a quarter of the time: on a quiet 2-core
 * machine it took 40-60 ms a mask, on a busy one ~200 ms, and running it more often left the
 * drawing no time to keep the camera's rate. A mask 66 ms old still fits a person moving at a
 * talking pace; on a slow machine an older mask (the outline lags a little when the person moves)
 * is better than blur turning itself off.
 */
const SEGMENT_EVERY_MS = 66;
const MODEL_SHARE = 0.25;

export interface BlurStats {
  frames: number;
  /** Mean time to segment and draw one frame, in milliseconds. */
  msPerFrame: number;
  /** Frames out per second over the last window. */
  fps: number;
  /** Masks made so far (the model runs at its own pace, beside the drawing). */
  segmentations: number;
  /** Mean time the model took per mask, in milliseconds. */
  msPerMask: number;
  /** Whether blur gave up (too slow) and frames now pass through as they are. */
  passThrough: boolean;
}

export interface BackgroundBlur {
  /** The blurred picture, as a track to preview and send. */
  readonly track: MediaStreamTrack;
  stats(): BlurStats;
  /** Stops blurring; the camera track itself is left running. */
  stop(): void;
}

type Processor = { readable: ReadableStream<VideoFrame> };
type ProcessorCtor = new (init: { track: MediaStreamTrack }) => Processor;
type Generator = MediaStreamTrack & { writable: WritableStream<VideoFrame> };
type GeneratorCtor = new (init: { kind: 'video' }) => Generator;

export async function startBlur(camera: MediaStreamTrack, onTooSlow: () => void): Promise<BackgroundBlur> {
  const segmenter = await createSegmenter();
  const g = globalThis as unknown as { MediaStreamTrackProcessor?: ProcessorCtor; MediaStreamTrackGenerator?: GeneratorCtor };
  const settings = camera.getSettings();
  const compositor = new Compositor(settings.width ?? 640, settings.height ?? 480, segmenter);
  let stopped = false;
  // Too slow: frames pass through unblurred, so the track (already sent) keeps going.
  let passThrough = false;
  const meter = new RateMeter(() => {
    passThrough = true;
    onTooSlow();
  }, settings.frameRate);

  if (g.MediaStreamTrackProcessor && g.MediaStreamTrackGenerator) {
    const reader = new g.MediaStreamTrackProcessor({ track: camera }).readable.getReader();
    const generator = new g.MediaStreamTrackGenerator({ kind: 'video' });
    const writer = generator.writable.getWriter();
    // Taken now: the caller may make the track's own stop() stop the camera too (local-effects.ts).
    const stopTrack = generator.stop.bind(generator);
    void (async () => {
      while (!stopped) {
        const { value: frame, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done || !frame) break;
        try {
          const started = performance.now();
          const out = passThrough
            ? frame.clone()
            : compositor.videoFrame(await compositor.draw(frame, frame.displayWidth, frame.displayHeight), frame.timestamp);
          meter.frame(performance.now() - started);
          await writer.write(out).catch(() => {
            out.close();
            stopped = true;
          });
        } catch {
          // One bad frame is dropped; the next one tries again.
        } finally {
          frame.close();
        }
      }
      reader.cancel().catch(() => {});
      segmenter.close();
    })();
    return {
      track: generator,
      stats: () => ({ ...meter.stats(), ...compositor.stats(), passThrough }),
      stop() {
        stopped = true;
        meter.stop();
        stopTrack();
      },
    };
  }

  // Firefox: no track processor. A timer, not requestAnimationFrame, so a background tab keeps sending.
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = new MediaStream([camera]);
  await video.play().catch(() => {});
  const output = compositor.canvas as HTMLCanvasElement;
  const track = output.captureStream(settings.frameRate ?? 30).getVideoTracks()[0]!;
  const stopTrack = track.stop.bind(track);
  const interval = 1000 / Math.min(settings.frameRate ?? 30, 30);
  void (async () => {
    while (!stopped) {
      const started = performance.now();
      if (video.videoWidth > 0) {
        try {
          if (passThrough) compositor.copy(video, video.videoWidth, video.videoHeight);
          else await compositor.draw(video, video.videoWidth, video.videoHeight);
          meter.frame(performance.now() - started);
        } catch {
          // as above: drop the frame
        }
      }
      await new Promise((r) => setTimeout(r, Math.max(0, interval - (performance.now() - started))));
    }
    video.srcObject = null;
    segmenter.close();
  })();
  return {
    track,
    stats: () => ({ ...meter.stats(), ...compositor.stats(), passThrough }),
    stop() {
      stopped = true;
      meter.stop();
      stopTrack();
    },
  };
}

/**
 * Draws person-over-blurred-background into one canvas (a DOM canvas: captureStream needs one).
 * The model runs beside the drawing, on a small copy of the latest frame, and every frame is
 * drawn with the newest mask: the picture keeps the camera's rate even when the model is slower.
 */
class Compositor {
  readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  /** What the model is given: a small copy of the frame (it scales it to its own input itself). */
  private readonly small = Object.assign(document.createElement('canvas'), { width: 256, height: 144 });
  private readonly smallCtx = this.small.getContext('2d')!;
  /** The newest mask, kept in our canvas (the model's own is overwritten by the next run). */
  private readonly mask = Object.assign(document.createElement('canvas'), { width: 256, height: 144 });
  private readonly maskCtx = this.mask.getContext('2d')!;
  /** The background, blurred at a quarter size: the same look for a fraction of the work. */
  private readonly blurred = Object.assign(document.createElement('canvas'), { width: 160, height: 120 });
  private readonly blurredCtx = this.blurred.getContext('2d')!;
  private hasMask = false;
  private segmenting = false;
  /** When the model may run next (see SEGMENT_EVERY_MS). */
  private nextSegment = 0;
  segmentations = 0;
  /** Time the model took, all masks together (ms). */
  segmentMs = 0;

  constructor(width: number, height: number, private readonly segmenter: Segmenter) {
    this.canvas = Object.assign(document.createElement('canvas'), { width, height });
    // Read back every frame (videoFrame below): kept in memory, not on the GPU.
    this.ctx = this.canvas.getContext('2d', { willReadFrequently: true })!;
  }

  private yuv = new Uint8Array(0);

  /**
   * The drawn picture as a video frame in the camera's own format: I420, BT.601, limited range.
   * Not `new VideoFrame(canvas)`: Chromium encodes such RGB frames as full-range video, which
   * receivers show as limited range, so the picture arrived with a sixth more contrast (blacks
   * crushed, the person measured a third "sharper" on the receiving page than on the preview).
   */
  videoFrame(canvas: HTMLCanvasElement, timestamp: number): VideoFrame {
    const { width: w, height: h } = canvas;
    const rgba = this.ctx.getImageData(0, 0, w, h).data;
    const cw = (w + 1) >> 1;
    const ch = (h + 1) >> 1;
    const size = w * h + 2 * cw * ch;
    if (this.yuv.length !== size) this.yuv = new Uint8Array(size);
    rgbaToI420(rgba, w, h, this.yuv);
    return new VideoFrame(this.yuv, {
      format: 'I420',
      codedWidth: w,
      codedHeight: h,
      timestamp,
      colorSpace: { primaries: 'smpte170m', transfer: 'smpte170m', matrix: 'smpte170m', fullRange: false },
    });
  }

  stats(): Pick<BlurStats, 'segmentations' | 'msPerMask'> {
    return { segmentations: this.segmentations, msPerMask: this.segmentations ? this.segmentMs / this.segmentations : 0 };
  }

  copy(source: CanvasImageSource, width: number, height: number): void {
    this.resize(width, height);
    this.ctx.drawImage(source, 0, 0, width, height);
  }

  private resize(width: number, height: number): void {
    if (this.canvas.width !== width || this.canvas.height !== height) Object.assign(this.canvas, { width, height });
  }

  /** Starts the model on this frame unless it is still busy with an earlier one. */
  private segment(source: CanvasImageSource): void {
    const started = performance.now();
    if (this.segmenting || started < this.nextSegment) return;
    this.segmenting = true;
    this.smallCtx.drawImage(source, 0, 0, this.small.width, this.small.height);
    const done = () => {
      const took = performance.now() - started;
      // The first run includes the model's warm-up: it says nothing about its pace.
      const warmUp = this.segmentMs === 0;
      this.segmentMs += took;
      this.nextSegment = started + Math.max(SEGMENT_EVERY_MS, warmUp ? 0 : took / MODEL_SHARE);
      this.segmenting = false;
    };
    this.segmenter.segment(this.small).then(
      (mask) => {
        this.maskCtx.clearRect(0, 0, this.mask.width, this.mask.height);
        this.maskCtx.drawImage(mask, 0, 0, this.mask.width, this.mask.height);
        this.hasMask = true;
        this.segmentations++;
        done();
      },
      done,
    );
  }

  /**
   * The camera frame is drawn (converted from YUV) once, into the output canvas; the model's copy
   * and the blurred background are scaled down from there, then the mask keeps the person's pixels
   * and the background goes behind them. Drawing the frame three times and resampling with
   * 'high' quality took twice as long (22-24 against 10-11 ms a frame, measured side by side).
   */
  async draw(source: CanvasImageSource, width: number, height: number): Promise<HTMLCanvasElement> {
    this.resize(width, height);
    const ctx = this.ctx;
    ctx.save();
    ctx.globalCompositeOperation = 'copy';
    ctx.drawImage(source, 0, 0, width, height);
    ctx.restore();
    this.segment(this.canvas);
    // Until the first mask, nothing is sent unblurred: wait for it (once, at start).
    while (!this.hasMask) await new Promise((r) => setTimeout(r, 10));
    const b = this.blurredCtx;
    b.filter = `blur(${BLUR_PX / 4}px)`;
    b.drawImage(this.canvas, 0, 0, this.blurred.width, this.blurred.height);
    ctx.save();
    // Bilinear: the mask's edge and an already blurred background look the same as with 'high'.
    ctx.imageSmoothingQuality = 'low';
    // The person: the mask's alpha keeps only their pixels of the sharp frame.
    ctx.globalCompositeOperation = 'destination-in';
    ctx.drawImage(this.mask, 0, 0, width, height);
    // Behind them, the frame blurred (at a quarter size, scaled back up).
    ctx.globalCompositeOperation = 'destination-over';
    ctx.drawImage(this.blurred, 0, 0, width, height);
    ctx.restore();
    return this.canvas;
  }
}

/** RGBA (full range) to I420 (BT.601, limited range: Y 16–235, U and V 16–240), chroma averaged over 2×2. */
export function rgbaToI420(rgba: Uint8ClampedArray, w: number, h: number, out: Uint8Array): void {
  const cw = (w + 1) >> 1;
  const ch = (h + 1) >> 1;
  const uAt = w * h;
  const vAt = uAt + cw * ch;
  for (let y = 0; y < h; y++) {
    let i = y * w * 4;
    let o = y * w;
    for (let x = 0; x < w; x++, i += 4) out[o++] = ((66 * rgba[i]! + 129 * rgba[i + 1]! + 25 * rgba[i + 2]! + 128) >> 8) + 16;
  }
  for (let cy = 0; cy < ch; cy++) {
    const y0 = cy * 2;
    const y1 = Math.min(y0 + 1, h - 1);
    for (let cx = 0; cx < cw; cx++) {
      const x0 = cx * 2;
      const x1 = Math.min(x0 + 1, w - 1);
      const a = (y0 * w + x0) * 4;
      const b = (y0 * w + x1) * 4;
      const c = (y1 * w + x0) * 4;
      const d = (y1 * w + x1) * 4;
      const r = (rgba[a]! + rgba[b]! + rgba[c]! + rgba[d]! + 2) >> 2;
      const g = (rgba[a + 1]! + rgba[b + 1]! + rgba[c + 1]! + rgba[d + 1]! + 2) >> 2;
      const bl = (rgba[a + 2]! + rgba[b + 2]! + rgba[c + 2]! + rgba[d + 2]! + 2) >> 2;
      out[uAt + cy * cw + cx] = ((-38 * r - 74 * g + 112 * bl + 128) >> 8) + 128;
      out[vAt + cy * cw + cx] = ((112 * r - 94 * g - 18 * bl + 128) >> 8) + 128;
    }
  }
}

/** Output frame rate and cost per frame; calls `onTooSlow` once if a window falls below MIN_FPS. */
class RateMeter {
  private readonly started = performance.now();
  private windowStart = performance.now();
  private windowFrames = 0;
  private lastFps = 0;
  private frames = 0;
  private totalMs = 0;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(onTooSlow: () => void, cameraFps: number | undefined) {
    this.timer = setInterval(() => {
      const now = performance.now();
      this.lastFps = (this.windowFrames * 1000) / (now - this.windowStart);
      const counted = now - this.started > GRACE_MS + WINDOW_MS;
      this.windowStart = now;
      this.windowFrames = 0;
      // A camera that itself sends fewer frames is not the effect's fault.
      if (counted && this.lastFps < MIN_FPS && (cameraFps ?? 30) >= MIN_FPS) {
        this.stop();
        onTooSlow();
      }
    }, WINDOW_MS);
  }

  frame(ms: number): void {
    this.frames++;
    this.windowFrames++;
    this.totalMs += ms;
  }

  stats(): Pick<BlurStats, 'frames' | 'msPerFrame' | 'fps'> {
    return { frames: this.frames, msPerFrame: this.frames ? this.totalMs / this.frames : 0, fps: this.lastFps };
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
