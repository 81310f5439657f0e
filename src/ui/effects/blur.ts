/**
 * Background blur: each camera frame is segmented, the person drawn sharp over a blurred copy
 * of the same frame, and the result is a new video track — the one the preview shows and the
 * call sends (before encryption). Loaded only when someone switches blur on.
 *
 * Chromium reads frames with MediaStreamTrackProcessor and writes them with
 * MediaStreamTrackGenerator: neither is throttled in a background tab. Elsewhere (Firefox) a
 * <video> is drawn into a canvas on a timer and sent with canvas.captureStream().
 */
import { createSegmenter, type Segmenter } from './segmenter.js';

/** Below this output rate for a whole measuring window, blur turns itself off. */
export const MIN_FPS = 15;
const WINDOW_MS = 3000;
/** Startup (model warm-up, first frames) is not held against the device. */
const GRACE_MS = 2500;
const BLUR_PX = 14;

export interface BlurStats {
  frames: number;
  /** Mean time to segment and draw one frame, in milliseconds. */
  msPerFrame: number;
  /** Frames out per second over the last window. */
  fps: number;
  /** Masks made so far (the model runs at its own pace, beside the drawing). */
  segmentations: number;
}

export interface BackgroundBlur {
  /** The blurred picture, as a track to preview and send. */
  readonly track: MediaStreamTrack;
  stats(): BlurStats;
  /** Stops blurring; the camera track itself is left running. */
  stop(): void;
}

type Processor = { readable: ReadableStream<VideoFrame> };
type Generator = MediaStreamTrack & { writable: WritableStream<VideoFrame> };
type ProcessorCtor = new (init: { track: MediaStreamTrack }) => Processor;
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
    void (async () => {
      while (!stopped) {
        const { value: frame, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done || !frame) break;
        try {
          const started = performance.now();
          const out = passThrough
            ? frame.clone()
            : new VideoFrame(await compositor.draw(frame, frame.displayWidth, frame.displayHeight), { timestamp: frame.timestamp });
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
      stats: () => ({ ...meter.stats(), segmentations: compositor.segmentations }),
      stop() {
        stopped = true;
        meter.stop();
        generator.stop();
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
    stats: () => ({ ...meter.stats(), segmentations: compositor.segmentations }),
    stop() {
      stopped = true;
      meter.stop();
      track.stop();
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
  private readonly input: HTMLCanvasElement;
  private readonly inputCtx: CanvasRenderingContext2D;
  /** What the model sees: the frame at its own size (the landscape model is 256×144). */
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
  segmentations = 0;

  constructor(width: number, height: number, private readonly segmenter: Segmenter) {
    this.canvas = Object.assign(document.createElement('canvas'), { width, height });
    this.ctx = this.canvas.getContext('2d')!;
    this.input = Object.assign(document.createElement('canvas'), { width, height });
    this.inputCtx = this.input.getContext('2d')!;
  }

  copy(source: CanvasImageSource, width: number, height: number): void {
    this.resize(width, height);
    this.ctx.drawImage(source, 0, 0, width, height);
  }

  private resize(width: number, height: number): void {
    for (const c of [this.canvas, this.input]) {
      if (c.width !== width || c.height !== height) Object.assign(c, { width, height });
    }
  }

  /** Starts the model on this frame unless it is still busy with an earlier one. */
  private segment(): void {
    if (this.segmenting) return;
    this.segmenting = true;
    this.smallCtx.drawImage(this.input, 0, 0, this.small.width, this.small.height);
    this.segmenter.segment(this.small).then(
      (mask) => {
        this.maskCtx.clearRect(0, 0, this.mask.width, this.mask.height);
        this.maskCtx.drawImage(mask, 0, 0, this.mask.width, this.mask.height);
        this.hasMask = true;
        this.segmentations++;
        this.segmenting = false;
      },
      () => (this.segmenting = false),
    );
  }

  async draw(source: CanvasImageSource, width: number, height: number): Promise<HTMLCanvasElement> {
    this.resize(width, height);
    this.inputCtx.drawImage(source, 0, 0, width, height);
    this.segment();
    // Until the first mask, nothing is sent unblurred: wait for it (once, at start).
    while (!this.hasMask) await new Promise((r) => setTimeout(r, 10));
    const ctx = this.ctx;
    const b = this.blurredCtx;
    b.filter = `blur(${BLUR_PX / 4}px)`;
    b.drawImage(this.input, 0, 0, this.blurred.width, this.blurred.height);
    ctx.save();
    ctx.clearRect(0, 0, width, height);
    // The person: the mask's alpha keeps only their pixels of the sharp frame.
    ctx.drawImage(this.mask, 0, 0, width, height);
    ctx.globalCompositeOperation = 'source-in';
    ctx.drawImage(this.input, 0, 0);
    // Behind them, the frame blurred (at a quarter size, scaled back up smoothly).
    ctx.globalCompositeOperation = 'destination-over';
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(this.blurred, 0, 0, width, height);
    ctx.restore();
    return this.canvas;
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

  stats(): Omit<BlurStats, 'segmentations'> {
    return { frames: this.frames, msPerFrame: this.frames ? this.totalMs / this.frames : 0, fps: this.lastFps };
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
