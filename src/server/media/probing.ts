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
// A successful probe's rate is the base of the next, at once; a failed one leaves the estimate
// where it was (its loss is the probe's doing), and its rate is remembered for a while.

import type { LossReport } from './rtp.js';

/** How long one probe sends (ms): short enough that a 200 ms queue absorbs one that overshoots, and the REMB sees the queue grow. */
export const PROBE_MS = 300;
/** Loss reports up to this long after a probe still count for it (they arrive every ~1 s: at 700 ms, some came after and turned on the playout-delay floor). */
export const PROBE_GRACE_MS = 1200;
/**
 * A probe that nothing has failed this long after it ended succeeded (ms): NACKs come within a
 * round trip of a loss and a growing queue shows in the next REMBs, so the verdict need not wait
 * for the loss reports (which still count for it until PROBE_GRACE_MS). Judged at the next tick,
 * so probes can go up by PROBE_RATIO every second: after a bandwidth drop, waiting the full grace
 * took 3 s a step, and the 640×480 layer came back 19 s after the link did (lab).
 */
export const PROBE_VERDICT_MS = 600;
/** A probe asks for at most this multiple of what the subscriber gets now. */
export const PROBE_RATIO = 2;
/** Waits between probes: the first, and the longest after failures in a row. */
export const PROBE_INTERVAL_MS: readonly [number, number] = [1000, 8000];
/** A probe fails when more than this share of the media it overlapped is NACKed… */
const NACK_ABORT_SHARE = 0.05;
/** …or the subscriber's REMB falls by this much (its delay-based estimator saw a queue grow)… */
const REMB_FALL = 0.97;
/**
 * …or, judged at its verdict, it brought more than twice the usual NACKs (and more than chance
 * would: under 3 % random loss a probe's second sees ~0.4 NACKs of a 320×240 layer, and any one
 * of them failed it; lab, lossy)…
 */
/** …or its loss reports show more than this much over the loss before it (and at least MIN_EXCESS_LOST packets). */
const LOSS_MARGIN = 0.03;
const MIN_EXCESS_LOST = 2;
/** A successful probe's rate is a base for the next one for this long (ms). */
const PROVEN_MS = 10_000;
/**
 * A rate a probe failed at is not tried again for this long (ms), doubled after each failure in a
 * row: a failed probe costs the media a burst of loss (and a freeze while it is resent through a
 * full queue). With only "halfway to the failure" as a ceiling, a success just under it lifted the
 * ceiling again, and a subscriber on a 400 kbit/s link failed a probe every 2-3 s (lab). Not
 * longer either: a link that comes back is seen only by the first probe after the last failure's
 * memory, and with 8-32 s the 640×480 layer came back 6-12 s after a bandwidth drop ended (lab;
 * with 5-20 s, 2-6 s, and the narrow link froze no more).
 */
export const FAILED_MEMORY_MS: readonly [number, number] = [5000, 20_000];
/**
 * A probe that only made the REMB fall (nothing lost) cost nothing but a moment of queue: its rate
 * is remembered this long, without doubling. Probing is the only way to see that a link came back
 * (what is sent fits either way), and with failures remembered 16-32 s, the first probe after a
 * bandwidth drop ended came 10 s after the link returned (lab).
 */
export const CHEAP_FAILURE_MEMORY_MS = 3000;
/** While a failure is remembered, probes stay under this share of its rate. */
const FAILED_MARGIN = 0.85;
/** No probe while the subscriber loses more than this, nor for SETTLE_MS after (ms). */
const MAX_LOSS_TO_PROBE = 0.05;
const SETTLE_MS = 3000;

export interface ProbeState {
  /** Extra rate to send now (bit/s); 0: not probing. */
  paddingRate: number;
  /** Set once a probe succeeded: the estimate may be raised to this (bit/s). */
  confirmed: number | undefined;
}

/** A probe under way: when it started and ends, its target rate and what it saw. */
interface Probe {
  startedAt: number;
  endsAt: number;
  target: number;
  padding: number;
  media: number;
  nacked: number;
  /** Packets its loss reports say were lost, of those expected. */
  lost: number;
  expected: number;
  rembFell: boolean;
}

export class BandwidthProbe {
  #nextAt = 0;
  #interval = PROBE_INTERVAL_MS[0];
  #baselineLoss = 0;
  /** NACKs a second outside probes (smoothed), and those since the last update. */
  #nackRate = 0;
  #nacksOutside = 0;
  #nacksSince = 0;
  /** When a loss report last showed congestion (over MAX_LOSS_TO_PROBE). */
  #congestedAt = -Infinity;
  /** The probe under way: its end, target rate and what it saw. */
  #probe: Probe | undefined;
  #lastRemb = 0;
  /** The rate the last probe failed at, until when it is remembered, and how long the next failure will be. */
  #failedRate = Infinity;
  #failedUntil = -Infinity;
  #memory = FAILED_MEMORY_MS[0];
  /** A probe judged a success whose loss reports are still coming: until when, and what they showed. */
  #late: (Probe & { until: number }) | undefined;
  /** The rate the last successful probe got through, and when (a base the estimate is not: it creeps up unproven). */
  #proven = 0;
  #provenAt = -Infinity;

  /** A probe is under way or its reports are still coming. */
  get probing(): boolean {
    return this.#probe !== undefined || this.#late !== undefined;
  }

  /**
   * Called about once a second with the estimate, what the subscriber's tiles would take
   * (`needed`), what it gets now, the loss of the last second and the budget at which some tile
   * would get a larger layer (`nextStep`). Returns what to do.
   */
  update(now: number, estimate: number, needed: number, sendingRate: number, loss: number, nextStep = needed): ProbeState {
    const p = this.#probe;
    let confirmed: number | undefined;
    if (p) {
      // NACKs over the usual from its start to now (those of its last packets come after its end):
      // a drop-tail queue drops mostly the probe's own packets, which nobody NACKs, so a probe at
      // twice a 400 kbit/s link lost only 2 media packets, and "succeeded" (lab).
      const lossy = this.#lostOverUsual(p) || this.#nackedOverUsual(p, now);
      // Reports of the probe's own time go to it, not to the estimator: nothing to learn from `loss`.
      if (now < p.endsAt + (p.rembFell || lossy ? PROBE_GRACE_MS : PROBE_VERDICT_MS)) {
        return { paddingRate: now < p.endsAt ? p.padding : 0, confirmed: undefined };
      }
      this.#probe = undefined;
      if (p.rembFell || lossy) {
        this.#failed(now, p.target, lossy);
        if (!lossy) this.#watchLate(p);
        return { paddingRate: 0, confirmed: undefined };
      }
      confirmed = this.#succeeded(now, p.target);
      // Its late reports still go to it (a loss in them fails it after all).
      this.#watchLate(p);
    } else if (this.#late && now >= this.#late.until) this.#late = undefined;
    const state = this.#start(now, estimate, needed, sendingRate, loss, nextStep);
    return { paddingRate: state, confirmed };
  }

  #start(now: number, estimate: number, needed: number, sendingRate: number, loss: number, nextStep: number): number {
    if (!this.#late) this.#baselineLoss = this.#baselineLoss * 0.7 + loss * 0.3;
    const since = Math.max(1, now - this.#nacksSince);
    if (loss > MAX_LOSS_TO_PROBE) this.#congestedAt = now;
    // The usual NACKs are those of a link that is not congested: right after a congestion loss
    // they were high, and a probe at 2.6× a 400 kbit/s link "succeeded" on them (lab, three people).
    if (now - this.#congestedAt >= SETTLE_MS) this.#nackRate = this.#nackRate * 0.7 + ((this.#nacksOutside * 1000) / since) * 0.3;
    this.#nacksOutside = 0;
    this.#nacksSince = now;
    // From what is proven to get through: what is sent now, or a probe that succeeded lately.
    const base = Math.max(sendingRate, now - this.#provenAt <= PROVEN_MS ? this.#proven : 0);
    if (now < this.#nextAt || needed <= estimate * 1.05 || now - this.#congestedAt < SETTLE_MS || base <= 0) return 0;
    // Under a rate that failed lately, and only when that still leaves room for a larger layer.
    const ceiling = now < this.#failedUntil ? this.#failedRate * FAILED_MARGIN : Infinity;
    if (ceiling < nextStep) return 0;
    const target = Math.min(needed * 1.1, base * PROBE_RATIO, ceiling);
    const padding = target - sendingRate;
    if (padding <= 0) return 0;
    this.#probe = { startedAt: now, endsAt: now + PROBE_MS, target, padding, media: 0, nacked: 0, lost: 0, expected: 0, rembFell: false };
    if (this.#late) {
      // The last probe's reports still coming count for this one too.
      this.#probe.lost = this.#late.lost;
      this.#probe.expected = this.#late.expected;
      this.#late = undefined;
    }
    return padding;
  }

  /**
   * A video stream's loss report. While a probe is under way (or its reports are still coming),
   * it is the probe's: returns true, and the estimator should not count it.
   */
  onLoss(report: LossReport, now = 0): boolean {
    const late = this.#late;
    if (late && now < late.until) {
      late.lost += report.lost;
      late.expected += report.expected;
      // A success its late reports contradict, or a failure they show cost media: remembered as
      // a costly failure (the estimator sees the media's own loss from the next reports on).
      if (this.#lostOverUsual(late)) this.#lateCostly(now);
      return true;
    }
    const p = this.#probe;
    if (!p) return false;
    p.lost += report.lost;
    p.expected += report.expected;
    return true;
  }

  /**
   * The subscriber NACKed `count` packets at `now`, with `mediaPackets` sent to it since the probe
   * began. Returns true when that ends the probe as failed (stop sending its packets now).
   */
  onNack(count: number, mediaPackets: number, now: number): boolean {
    const p = this.#probe;
    const late = this.#late;
    if (!p && late && now < late.until) {
      late.nacked += count;
      if (this.#nackedOverUsual(late, now)) this.#lateCostly(now);
      return false;
    }
    if (!p) {
      this.#nacksOutside += count;
      return false;
    }
    p.nacked += count;
    if (now >= p.endsAt) return false;
    p.media = mediaPackets;
    if (p.nacked <= Math.max(3, NACK_ABORT_SHARE * p.media)) return false;
    this.#probe = undefined;
    this.#failed(now, p.target, true);
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
    this.#failed(now, p.target, false);
    this.#watchLate(p);
    return true;
  }

  /** The reports and NACKs still coming for a probe that ended: they may show it cost media. */
  #watchLate(p: Probe): void {
    this.#late = { ...p, until: p.endsAt + PROBE_GRACE_MS };
  }

  /** The late reports or NACKs of an ended probe show it cost media: remembered as a costly failure. */
  #lateCostly(now: number): void {
    const late = this.#late!;
    this.#late = undefined;
    this.#failed(now, late.target, true);
  }

  /** More than twice the NACKs usual outside probes from the probe's start to now, and more than chance would bring. */
  #nackedOverUsual(p: Probe, now: number): boolean {
    const usual = this.#nackRate * ((now - p.startedAt) / 1000);
    return p.nacked > Math.max(2 * usual, usual + 2 * Math.sqrt(usual));
  }

  /** The probe's loss reports count more lost packets than the loss before it explains. */
  #lostOverUsual(p: Probe): boolean {
    const excess = p.lost - this.#baselineLoss * p.expected;
    return excess > Math.max(LOSS_MARGIN * p.expected, MIN_EXCESS_LOST);
  }

  #succeeded(now: number, target: number): number {
    // A rate that failed before got through: the link changed, failures start short again.
    if (target >= this.#failedRate) {
      this.#memory = FAILED_MEMORY_MS[0];
      this.#failedRate = Infinity;
    }
    this.#proven = target;
    this.#provenAt = now;
    this.#interval = PROBE_INTERVAL_MS[0];
    // The next step may start at once.
    this.#nextAt = now;
    return target;
  }

  /** `costly`: the probe lost media (NACKs, loss reports), not only made the REMB fall. */
  #failed(now: number, rate: number, costly: boolean): void {
    this.#failedRate = rate;
    if (costly) {
      this.#failedUntil = now + this.#memory;
      this.#memory = Math.min(FAILED_MEMORY_MS[1], this.#memory * 2);
      this.#interval = Math.min(PROBE_INTERVAL_MS[1], this.#interval * 2);
    } else this.#failedUntil = now + CHEAP_FAILURE_MEMORY_MS;
    this.#nextAt = now + this.#interval;
  }
}
