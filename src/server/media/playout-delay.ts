// How long a subscriber's video jitter buffer should wait at least: pure logic with time passed
// in (tested in test/congestion.test.ts).
//
// Chromium's video jitter buffer sizes itself from jitter and, in a connection that also sends,
// from the round-trip time, so that a frame whose lost packet is resent is waited for. A
// subscriber's connection only receives: it learns no round-trip time, its jitter buffer stays
// at 30–40 ms, and under loss a frame whose packet comes back one round trip later is skipped
// (lab, 3 % loss: 24 fps against the direct call's 30). The playout-delay header extension tells
// it a minimum. Only while the subscriber sees moderate loss: on a clean link the floor would be
// delay for nothing, and under heavy loss the link is congested and delay would only grow.

import type { LossReport } from './rtp.js';

/** The minimum playout delay while the subscriber sees moderate video loss (ms). */
export const LOSS_PLAYOUT_FLOOR_MS = 200;
/** The maximum we always state: Chromium's own default (ms). */
export const MAX_PLAYOUT_DELAY_MS = 10_000;
/** Smoothed video loss in this range turns the floor on… */
export const FLOOR_ON_LOSS: readonly [number, number] = [0.01, 0.1];
/** …and below the first or above the second of these turns it off again… */
export const FLOOR_OFF_LOSS: readonly [number, number] = [0.005, 0.15];
/** …but not before it has been on this long (a floor that comes and goes makes video jump). */
export const FLOOR_HOLD_MS = 5000;
/**
 * …and it turns on only when this many of the last MODERATE_WINDOW updates saw moderate loss (up
 * to FLOOR_OFF_LOSS[1]), and goes when none of them did: a bandwidth drop's one or two seconds of
 * heavy loss kept the smoothed loss in range for ~13 s, and the floor added 130 ms to a link that
 * had stopped losing anything (lab).
 */
export const MODERATE_NEEDED = 3;
const MODERATE_WINDOW = 5;
/** Weight of each update's loss in the smoothed loss (updates come about once a second). */
const SMOOTHING = 0.3;

/** One subscriber's playout-delay floor, from the loss its video receiver reports show. */
export class PlayoutDelayFloor {
  #lost = 0;
  #expected = 0;
  #smoothed: number | undefined;
  #onSince: number | undefined;
  /** Whether each of the last MODERATE_WINDOW updates saw moderate loss (newest last). */
  #moderate: boolean[] = [];

  /** What one receiver report of a video stream says. */
  onLoss(report: LossReport): void {
    this.#lost += report.lost;
    this.#expected += report.expected;
  }

  /** Folds in the reports since the last update (call about once a second); returns minMs. */
  update(now: number): number {
    let moderate = false;
    if (this.#expected > 0) {
      const loss = this.#lost / this.#expected;
      this.#smoothed = this.#smoothed === undefined ? loss : this.#smoothed * (1 - SMOOTHING) + loss * SMOOTHING;
      moderate = loss > 0 && loss <= FLOOR_OFF_LOSS[1];
    }
    this.#lost = 0;
    this.#expected = 0;
    this.#moderate.push(moderate);
    if (this.#moderate.length > MODERATE_WINDOW) this.#moderate.shift();
    const moderateCount = this.#moderate.filter(Boolean).length;
    const loss = this.#smoothed ?? 0;
    if (this.#onSince === undefined) {
      if (loss >= FLOOR_ON_LOSS[0] && loss <= FLOOR_ON_LOSS[1] && moderateCount >= MODERATE_NEEDED) this.#onSince = now;
    } else if ((loss < FLOOR_OFF_LOSS[0] || loss > FLOOR_OFF_LOSS[1] || moderateCount === 0) && now - this.#onSince >= FLOOR_HOLD_MS) {
      this.#onSince = undefined;
    }
    return this.minMs;
  }

  get minMs(): number {
    return this.#onSince === undefined ? 0 : LOSS_PLAYOUT_FLOOR_MS;
  }

  /** Smoothed video loss (0–1). */
  get loss(): number {
    return this.#smoothed ?? 0;
  }
}
