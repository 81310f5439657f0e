/**
 * How loud a microphone is, 0…1, for the level meter and for highlighting who
 * speaks. Local tracks are measured with WebAudio; received audio through the
 * connection's statistics (see quality.ts).
 */
export class LevelMeter {
  private readonly ctx: AudioContext;
  private readonly analyser: AnalyserNode;
  private readonly source: MediaStreamAudioSourceNode;
  private readonly buffer: Float32Array<ArrayBuffer>;

  constructor(track: MediaStreamTrack) {
    this.ctx = new AudioContext();
    this.source = this.ctx.createMediaStreamSource(new MediaStream([track]));
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 512;
    this.buffer = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser);
  }

  /** RMS level mapped to 0…1 on a log scale (−60 dB … 0 dB). */
  level(): number {
    if (this.ctx.state === 'suspended') void this.ctx.resume().catch(() => {});
    this.analyser.getFloatTimeDomainData(this.buffer);
    let sum = 0;
    for (const v of this.buffer) sum += v * v;
    const rms = Math.sqrt(sum / this.buffer.length);
    const db = 20 * Math.log10(rms || 1e-9);
    return Math.min(1, Math.max(0, (db + 60) / 60));
  }

  close(): void {
    this.source.disconnect();
    void this.ctx.close().catch(() => {});
  }
}
