/**
 * One timer for every bot in the process: each stream says when its next frame is due and the
 * pacer calls it then (5 ms resolution). Streams start at random phases, so 31 bots do not
 * send their frames in the same millisecond, as real cameras would not.
 */

export interface PacedStream {
  /** performance.now() at which tick() should next run. */
  nextAt: number;
  /** Sends what is due at `now` and moves nextAt on. */
  tick(now: number): void;
}

const RESOLUTION_MS = 5;

class Pacer {
  private readonly streams = new Set<PacedStream>();
  private timer: NodeJS.Timeout | undefined;

  add(stream: PacedStream): void {
    this.streams.add(stream);
    this.timer ??= setInterval(() => this.run(), RESOLUTION_MS);
  }

  remove(stream: PacedStream): void {
    this.streams.delete(stream);
    if (this.streams.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private run(): void {
    const now = performance.now();
    for (const s of this.streams) {
      if (s.nextAt > now) continue;
      try {
        s.tick(now);
      } catch {
        // One broken stream must not stop the others; the stream counts its own failures.
      }
    }
  }
}

export const pacer = new Pacer();
