// Probing a subscriber's downlink before a layer goes up: pure logic with time passed in (tested
// in test/congestion.test.ts).
//
// The estimate of what a subscriber can take grows only by the loss-based rule, 8 % a second:
// after a bandwidth drop, from ~0.25 Mbit/s back to the full layer's ~0.85 took over 15 s (lab).
// So while the subscriber wants more than the estimate allows and loses little, the SFU sends
// extra packets for a moment, at up to twice what it sends now, under an SSRC and payload type
// the subscriber never negotiated (its browser discards them after decryption). If the link has
// room, the real media loses nothing meanwhile and the estimate jumps to the probed rate; if not,
// the media's packets queue and drop, the subscriber NACKs them, and the probe stops at once.
// A failed probe leaves the estimate where it was (its loss is the probe's doing) and the next
// waits twice as long.

/** How long one probe sends (ms): short enough that a 200 ms queue absorbs one that overshoots, and the REMB sees the queue grow. */
export const PROBE_MS = 300;
/** Loss reports up to this long after a probe still count for it (they arrive every ~1 s). */
export const PROBE_GRACE_MS = 700;
/** A probe asks for at most this multiple of what the subscriber gets now. */
export const PROBE_RATIO = 2;
/** Waits between probes: the first, and the longest after failures in a row. */
export const PROBE_INTERVAL_MS: readonly [number, number] = [1000, 8000];
/** A probe fails when more than this share of the media it overlapped is NACKed… */
const NACK_ABORT_SHARE = 0.05;
/** …or the subscriber's REMB falls by this much (its delay-based estimator saw a queue grow)… */
const REMB_FALL = 0.97;
/** …or its loss reports show more than this much over the loss before it. */
const LOSS_MARGIN = 0.03;
/** A successful probe's rate is a base for the next one for this long (ms). */
const PROVEN_MS = 10_000;
/** No probe while the subscriber loses more than this. */
const MAX_LOSS_TO_PROBE = 0.05;

export interface ProbeState {
  /** Extra rate to send now (bit/s); 0: not probing. */
  paddingRate: number;
  /** Set once a probe succeeded: the estimate may be raised to this (bit/s). */
  confirmed: number | undefined;
}

export class BandwidthProbe {
  #nextAt = 0;
  #interval = PROBE_INTERVAL_MS[0];
  #baselineLoss = 0;
  /** The probe under way: its end, target rate and what it saw. */
  #probe: { endsAt: number; target: number; padding: number; media: number; nacked: number; lossSum: number; lossCount: number; rembFell: boolean } | undefined;
  #lastRemb = 0;
  /**
   * Halfway between what was sent and the rate a probe failed at: no probe goes above it until one
   * succeeds (the estimate creeps up meanwhile, unproven), so each failure overshoots half as much.
   */
  #ceiling = Infinity;
  /** The rate the last successful probe got through, and when (a base the estimate is not: it creeps up unproven). */
  #proven = 0;
  #provenAt = -Infinity;

  get probing(): boolean {
    return this.#probe !== undefined;
  }

  /**
   * Called about once a second with the estimate, what the subscriber's tiles would take
   * (`needed`), what it gets now and the loss of the last second. Returns what to do.
   */
  update(now: number, estimate: number, needed: number, sendingRate: number, loss: number): ProbeState {
    const p = this.#probe;
    if (p) {
      // Reports of the probe's own time go to it, not to the estimator: nothing to learn from `loss`.
      if (now < p.endsAt + PROBE_GRACE_MS) return { paddingRate: now < p.endsAt ? p.padding : 0, confirmed: undefined };
      this.#probe = undefined;
      const probeLoss = p.lossCount > 0 ? p.lossSum / p.lossCount : 0;
      if (!p.rembFell && probeLoss <= this.#baselineLoss + LOSS_MARGIN) return this.#succeeded(now, p.target);
      this.#failed(now, p.target - p.padding / 2);
      return { paddingRate: 0, confirmed: undefined };
    }
    this.#baselineLoss = this.#baselineLoss * 0.7 + loss * 0.3;
    // From what is proven to get through: what is sent now, or a probe that succeeded lately.
    const base = Math.max(sendingRate, now - this.#provenAt <= PROVEN_MS ? this.#proven : 0);
    if (now < this.#nextAt || needed <= estimate * 1.05 || loss > MAX_LOSS_TO_PROBE || base <= 0) return { paddingRate: 0, confirmed: undefined };
    // A ceiling the media itself now passes is stale.
    if (this.#ceiling <= sendingRate * 1.1) this.#ceiling = Infinity;
    const target = Math.min(needed * 1.1, base * PROBE_RATIO, this.#ceiling);
    const padding = target - sendingRate;
    if (padding <= 0) return { paddingRate: 0, confirmed: undefined };
    this.#probe = { endsAt: now + PROBE_MS, target, padding, media: 0, nacked: 0, lossSum: 0, lossCount: 0, rembFell: false };
    return { paddingRate: padding, confirmed: undefined };
  }

  /**
   * A video loss report (fraction 0–1). While a probe is under way (or its reports are still
   * coming), it is the probe's: returns true, and the estimator should not count it.
   */
  onLoss(fraction: number): boolean {
    const p = this.#probe;
    if (!p) return false;
    p.lossSum += fraction;
    p.lossCount++;
    return true;
  }

  /**
   * The subscriber NACKed `count` packets at `now`, with `mediaPackets` sent to it since the probe
   * began. Returns true when that ends the probe as failed (stop sending its packets now).
   */
  onNack(count: number, mediaPackets: number, now: number): boolean {
    const p = this.#probe;
    if (!p || now >= p.endsAt) return false;
    p.nacked += count;
    p.media = mediaPackets;
    if (p.nacked <= Math.max(3, NACK_ABORT_SHARE * p.media)) return false;
    this.#probe = undefined;
    this.#failed(now, p.target - p.padding / 2);
    return true;
  }

  /**
   * A REMB from the subscriber. A falling one while a probe sends or its reports come in fails
   * the probe (returns true when it should stop sending now): the subscriber's delay-based
   * estimator saw the queue grow before anything was lost.
   */
  onRemb(bitrate: number, now: number): boolean {
    const fell = this.#lastRemb > 0 && bitrate < this.#lastRemb * REMB_FALL;
    this.#lastRemb = bitrate;
    const p = this.#probe;
    if (!p || !fell) return false;
    p.rembFell = true;
    if (now >= p.endsAt) return false;
    this.#probe = undefined;
    this.#failed(now, p.target - p.padding / 2);
    return true;
  }

  #succeeded(now: number, target: number): ProbeState {
    this.#ceiling = Infinity;
    this.#proven = target;
    this.#provenAt = now;
    this.#interval = PROBE_INTERVAL_MS[0];
    this.#nextAt = now + this.#interval;
    return { paddingRate: 0, confirmed: target };
  }

  #failed(now: number, ceiling: number): void {
    this.#ceiling = ceiling;
    this.#interval = Math.min(PROBE_INTERVAL_MS[1], this.#interval * 2);
    this.#nextAt = now + this.#interval;
  }
}
