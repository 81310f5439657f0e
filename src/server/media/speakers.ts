// Which microphones are forwarded: the few loudest, with hysteresis. Pure logic, unit-tested
// without a network (test/sfu-logic.test.ts).

/** RFC 6464 level: 0 = 0 dBov (loudest) … 127 = -127 dBov (silence). */
export const SILENT_LEVEL = 127;

/**
 * Smoothed loudness of one microphone from the ssrc-audio-level header extension of each
 * packet. Stored as "dB above silence" (127 - level), averaged over the interval between
 * selections; no allocation per packet.
 */
export class AudioLevel {
  #sum = 0;
  #count = 0;
  /** Exponentially smoothed loudness, dB above -127 dBov. */
  loudness = 0;

  /** Hot path: one call per audio packet. `level` 0-127 (RFC 6464), voice flag ignored. */
  add(level: number): void {
    this.#sum += SILENT_LEVEL - level;
    this.#count++;
  }

  /** Fold the interval's packets into `loudness`; an interval without packets counts as silence. */
  settle(): number {
    const avg = this.#count === 0 ? 0 : this.#sum / this.#count;
    this.#sum = 0;
    this.#count = 0;
    this.loudness = this.loudness * 0.5 + avg * 0.5;
    return this.loudness;
  }
}

export interface LoudestSpeakersOptions {
  /** How many microphones are forwarded at once. */
  max: number;
  /** A newcomer must be this many dB louder than the quietest forwarded one to replace it. */
  marginDb: number;
  /** A forwarded microphone keeps its place at least this long. */
  minHoldMs: number;
  /** Below this loudness (dB above -127 dBov) a microphone does not take a free place. */
  floorDb: number;
}

export const DEFAULT_SPEAKERS: LoudestSpeakersOptions = { max: 3, marginDb: 6, minHoldMs: 1500, floorDb: 10 };

/**
 * Keeps the set of forwarded microphones. Free places go to the loudest above the floor; a
 * full set changes only when someone is clearly (marginDb) louder than the quietest member and
 * that member has held its place for minHoldMs, so two similar voices do not flap.
 */
export class LoudestSpeakers {
  #opts: LoudestSpeakersOptions;
  #selected = new Map<string, number>(); // id -> selected since

  constructor(opts: Partial<LoudestSpeakersOptions> = {}) {
    this.#opts = { ...DEFAULT_SPEAKERS, ...opts };
  }

  get selected(): ReadonlySet<string> {
    return new Set(this.#selected.keys());
  }

  has(id: string): boolean {
    return this.#selected.has(id);
  }

  /** `loudness`: every live microphone's current loudness (dB above -127 dBov). Returns whether the set changed. */
  update(loudness: ReadonlyMap<string, number>, now: number): boolean {
    let changed = false;
    for (const id of [...this.#selected.keys()]) {
      if (!loudness.has(id)) {
        this.#selected.delete(id);
        changed = true;
      }
    }
    const candidates = [...loudness]
      .filter(([id]) => !this.#selected.has(id))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    for (const [id, level] of candidates) {
      if (this.#selected.size < this.#opts.max) {
        if (level < this.#opts.floorDb) break;
        this.#selected.set(id, now);
        changed = true;
        continue;
      }
      let quietest: string | undefined;
      let quietestLevel = Infinity;
      for (const [sid, since] of this.#selected) {
        const l = loudness.get(sid) ?? 0;
        if (now - since >= this.#opts.minHoldMs && l < quietestLevel) {
          quietest = sid;
          quietestLevel = l;
        }
      }
      if (quietest === undefined || level < quietestLevel + this.#opts.marginDb) break;
      this.#selected.delete(quietest);
      this.#selected.set(id, now);
      changed = true;
    }
    return changed;
  }
}
