// Simulcast layer choice and per-subscriber bandwidth estimation: pure logic, no I/O, no clock of
// its own (callers pass `now`), so it is unit-tested without a network (test/sfu-logic.test.ts).

import type { LossReport } from './rtp.js';

/** One simulcast layer of a video producer, as the selector sees it. Index 0 is the smallest. */
export interface LayerState {
  /** Coded size from the layer's last key frame; 0 while unknown. */
  width: number;
  height: number;
  /** What forwarding the layer costs (bit/s), from its measured rate (LayerRate); 0 while unknown. */
  bitrate: number;
  /** Packets arrived recently: the publisher is sending this layer. */
  active: boolean;
}

/**
 * How big a subscriber shows a participant, in device pixels. `null`: not shown (off-screen,
 * paused, minimised): nothing is forwarded. `undefined`: the subscriber has not said (no
 * viewport message yet): the best layer the bandwidth allows.
 */
export type Tile = { width: number; height: number } | null | undefined;

/**
 * A layer may be shown this much larger than it is before the next one is wanted. 1: the layer
 * must be at least as large as the tile (a 400×300 tile gets 640×480, not an upscaled 320×240).
 */
export const UPSCALE_ALLOWANCE = 1;

/** Rates assumed for a layer not measured yet, by index (low, medium, full). */
const NOMINAL_BITRATES = [150_000, 500_000, 1_500_000];

/** Share of a layer's held rate kept per tick (500 ms): a held rate halves in about 7 s. */
export const LAYER_RATE_HOLD = 0.95;

/**
 * What a layer costs to forward, from its measured rate each tick: smoothed, so one key frame
 * does not make it look expensive, and never below a slower average held near its recent peak, so
 * a dip does not make it look cheap. A publisher short of CPU encodes fewer frames for a moment
 * (in the lab's call of three, a 640×480 layer at 700 kbit/s fell to 280-440 kbit/s for about
 * 3 s); priced at the dip, the layer was given to a guest on a 400 kbit/s downlink, whose link
 * overflowed when the rate came back: 2-3 s frozen, twice in 30 s. The held rate follows a slow
 * average (not the fast one), so key frames barely lift it. A layer whose rate falls for good is
 * priced at it after ~12 s.
 */
export class LayerRate {
  #smoothed = 0;
  #slow = 0;
  #held = 0;

  /** The rate measured over the last tick (bit/s); returns the layer's cost (bit/s). */
  update(rate: number): number {
    this.#smoothed = this.#smoothed === 0 ? rate : this.#smoothed * 0.7 + rate * 0.3;
    this.#slow = this.#slow === 0 ? rate : this.#slow * 0.9 + rate * 0.1;
    this.#held = Math.max(this.#slow, this.#held * LAYER_RATE_HOLD);
    return Math.max(this.#smoothed, this.#held);
  }
}

export function layerBitrate(layers: readonly LayerState[], index: number): number {
  const measured = layers[index]!.bitrate;
  if (measured > 0) return measured;
  return NOMINAL_BITRATES[Math.min(index, NOMINAL_BITRATES.length - 1)]! * (index >= NOMINAL_BITRATES.length ? 2 : 1);
}

/**
 * The smallest active layer that fills the tile (within UPSCALE_ALLOWANCE), else the largest
 * active one; -1 when the tile is hidden or no layer is active. Layers of unknown size are
 * assumed to be half the size of the next one up (the usual 1/4, 1/2, 1 ladder).
 */
export function wantedLayer(tile: Tile, layers: readonly LayerState[]): number {
  if (tile === null) return -1;
  let largestActive = -1;
  for (let i = layers.length - 1; i >= 0; i--) {
    if (layers[i]!.active) {
      largestActive = i;
      break;
    }
  }
  if (largestActive < 0 || tile === undefined) return largestActive;
  const sizes = estimatedSizes(layers);
  for (let i = 0; i < layers.length; i++) {
    if (!layers[i]!.active) continue;
    const s = sizes[i]!;
    if (s.width === 0) continue; // nothing known about any layer: fall through to the largest
    if (s.width * UPSCALE_ALLOWANCE >= tile.width && s.height * UPSCALE_ALLOWANCE >= tile.height) return i;
  }
  return largestActive;
}

function estimatedSizes(layers: readonly LayerState[]): { width: number; height: number }[] {
  const out = layers.map((l) => ({ width: l.width, height: l.height }));
  for (let i = out.length - 2; i >= 0; i--) {
    if (out[i]!.width === 0 && out[i + 1]!.width > 0) {
      out[i] = { width: out[i + 1]!.width / 2, height: out[i + 1]!.height / 2 };
    }
  }
  for (let i = 1; i < out.length; i++) {
    if (out[i]!.width === 0 && out[i - 1]!.width > 0) {
      out[i] = { width: out[i - 1]!.width * 2, height: out[i - 1]!.height * 2 };
    }
  }
  return out;
}

/** One video stream a subscriber receives: how it is shown and what the publisher offers. */
export interface StreamDemand {
  tile: Tile;
  layers: readonly LayerState[];
}

/**
 * Picks a layer per stream for one subscriber (-1 = forward nothing):
 * 1. each shown stream wants the smallest layer that fills its tile (a small tile never pulls
 *    the full layer);
 * 2. every shown stream starts at its lowest active layer — video never stops for lack of
 *    bandwidth, it gets smaller;
 * 3. while the budget allows, streams step up towards what they want, biggest tiles first.
 */
export function allocateLayers(streams: readonly StreamDemand[], budget: number): number[] {
  const wanted = streams.map((s) => wantedLayer(s.tile, s.layers));
  const chosen = wanted.map((w, i) => (w < 0 ? -1 : lowestActive(streams[i]!.layers, w)));
  let spent = 0;
  for (let i = 0; i < streams.length; i++) if (chosen[i]! >= 0) spent += layerBitrate(streams[i]!.layers, chosen[i]!);
  const order = streams
    .map((s, i) => ({ i, area: s.tile ? s.tile.width * s.tile.height : Number.MAX_SAFE_INTEGER }))
    .sort((a, b) => b.area - a.area || a.i - b.i)
    .map((x) => x.i);
  let upgraded = true;
  while (upgraded) {
    upgraded = false;
    for (const i of order) {
      const current = chosen[i]!;
      if (current < 0 || current >= wanted[i]!) continue;
      const layers = streams[i]!.layers;
      const next = nextActive(layers, current, wanted[i]!);
      if (next < 0) continue;
      const delta = layerBitrate(layers, next) - layerBitrate(layers, current);
      if (spent + delta > budget) continue;
      spent += delta;
      chosen[i] = next;
      upgraded = true;
    }
  }
  return chosen;
}

/**
 * The budget at which `allocateLayers` would give some stream a larger layer than `chosen` (every
 * layer counted as available, as the publisher is asked to send what tiles want): what a probe
 * must prove for video to get better. Infinity when every stream has what its tile wants.
 */
export function nextUpgradeBitrate(streams: readonly StreamDemand[], chosen: readonly number[]): number {
  let spent = 0;
  let cheapest = Infinity;
  for (let i = 0; i < streams.length; i++) {
    const c = chosen[i]!;
    if (c < 0) continue;
    const layers = streams[i]!.layers.map((l) => (l.active ? l : { ...l, active: true }));
    spent += layerBitrate(layers, c);
    const next = nextActive(layers, c, wantedLayer(streams[i]!.tile, layers));
    if (next >= 0) cheapest = Math.min(cheapest, layerBitrate(layers, next) - layerBitrate(layers, c));
  }
  return spent + cheapest;
}

/** What a subscriber's shown streams would take at the layers their tiles want (bit/s). */
export function neededBitrate(streams: readonly StreamDemand[]): number {
  let sum = 0;
  for (const s of streams) {
    const w = wantedLayer(s.tile, s.layers);
    if (w >= 0) sum += layerBitrate(s.layers, w);
  }
  return sum;
}

function lowestActive(layers: readonly LayerState[], atMost: number): number {
  for (let i = 0; i <= atMost; i++) if (layers[i]!.active) return i;
  return -1;
}

function nextActive(layers: readonly LayerState[], from: number, atMost: number): number {
  for (let i = from + 1; i <= atMost; i++) if (layers[i]!.active) return i;
  return -1;
}

export interface BandwidthEstimatorOptions {
  /** Where the estimate starts (bit/s). */
  initial: number;
  min: number;
  max: number;
}

export const DEFAULT_BANDWIDTH: BandwidthEstimatorOptions = { initial: 4_000_000, min: 150_000, max: 12_000_000 };

/**
 * How much a subscriber can take, from what its browser reports (Chromium, given goog-remb and
 * no transport-cc, runs its receive-side estimator and sends REMB; every browser sends receiver
 * reports):
 * - loss in receiver reports, counted in packets (over 20 or more), GCC's loss-based rule:
 *   > 10 % loss two updates in a row (or > 25 % in one) cuts the rate by half the loss; < 2 %
 *   raises it by 8 % per second; in between it holds;
 * - REMB as a congestion signal only: a receive-side estimate stays ~1.05-1.5x above what it
 *   receives, so it can never say "more" (the SFU would have to probe), but REMBs well below
 *   what we send (< 70 %) for CONGESTION_MS mean the path is full: the estimate drops to 85 % of
 *   what we send (GCC's decrease), at most once per CONGESTION_MS. A single dip is ignored:
 *   Chromium's timestamp-based estimator dips when its own CPU is starved (seen at load 50:
 *   one REMB of 0.4 Mbit/s while nothing was lost);
 * - a falling REMB under half of what we send while the subscriber loses packets is a link that
 *   just got narrower: the estimate drops to the REMB at once (lab, downlink 4 → 0.3 Mbit/s: the
 *   REMB read 0.98, 0.77, 0.28, 0.18 Mbit/s within 1.5 s, while the rules above took 3-4 s to
 *   leave the 640×480 layer, sending up to 3.3 Mbit/s of media and resends into the 0.3);
 * - growth without loss stops at GROWTH_CAP × what is sent (or what a probe proved): an estimate
 *   that crept up unproven while only the small layer flowed (8 % a second) picked the full layer
 *   after ~25 s on a 400 kbit/s link, and lost a quarter of it (lab, tight downlink). Going up
 *   further is the probes' job (probing.ts), as in GCC, whose loss-based estimate stays within
 *   1.5× of what is acknowledged.
 */
export class BandwidthEstimator {
  #opts: BandwidthEstimatorOptions;
  #estimate: number;
  /** Packets lost and expected in the reports not yet folded in. */
  #lost = 0;
  #expected = 0;
  #lastUpdate: number | undefined;
  #congestedSince: number | undefined;
  #lastRemb = 0;
  #lastLoss = 0;
  /** When a receiver report last showed more than LOSS_EVIDENCE (ms). */
  #lossyAt = -Infinity;
  /** The last update saw over HEAVY_LOSS. */
  #heavyLossBefore = false;
  /** What a probe proved the path carries (bit/s): growth may reach it. Forgotten on heavy loss. */
  #proven = 0;

  constructor(opts: Partial<BandwidthEstimatorOptions> = {}) {
    this.#opts = { ...DEFAULT_BANDWIDTH, ...opts };
    this.#estimate = this.#opts.initial;
  }

  /** `sendingRate`: what the SFU sends this subscriber now (bit/s). */
  onRemb(bitrate: number, sendingRate: number, now: number): void {
    // A rising REMB is a receive-side estimator catching up with a rate that just went up (it
    // grows ~8 % a second): not congestion, however far below what we send.
    const rising = bitrate > this.#lastRemb * 1.01;
    const falling = bitrate < this.#lastRemb * 0.97;
    this.#lastRemb = bitrate;
    if (falling && bitrate < NARROWED_REMB_RATIO * sendingRate && now - this.#lossyAt <= LOSS_EVIDENCE_MS && bitrate < this.#estimate) {
      this.#estimate = clamp(bitrate, this.#opts.min, this.#opts.max);
      this.#congestedSince = undefined;
      return;
    }
    if (bitrate >= CONGESTED_REMB_RATIO * sendingRate || rising) {
      this.#congestedSince = undefined;
      return;
    }
    if (this.#congestedSince === undefined) {
      this.#congestedSince = now;
      return;
    }
    if (now - this.#congestedSince < CONGESTION_MS) return;
    this.#congestedSince = now;
    const decreased = Math.max(bitrate, 0.85 * sendingRate);
    this.#estimate = clamp(Math.min(this.#estimate, decreased), this.#opts.min, this.#opts.max);
  }

  /** What one receiver report says of one stream since its previous report. */
  onLoss(report: LossReport, now = 0): void {
    this.#lost += report.lost;
    this.#expected += report.expected;
    if (report.lost >= 2 && report.lost > LOSS_EVIDENCE * report.expected) this.#lossyAt = now;
  }

  /**
   * Apply the loss reports since the last update (call about once a second). `sendingRate`: what
   * the SFU sent this subscriber lately (bit/s); under heavy loss the estimate drops at once to
   * what got through, rather than by half the loss per second (which took ~6 s from 4 Mbit/s
   * down to a 400 kbit/s link, all the while overfilling it).
   */
  update(now: number, sendingRate = 0): void {
    // Too few packets reported to say how many are lost: they count with the next ones (GCC's rule).
    if (this.#expected > 0 && this.#expected < MIN_PACKETS_FOR_LOSS) return;
    const elapsed = this.#lastUpdate === undefined ? 1000 : now - this.#lastUpdate;
    this.#lastUpdate = now;
    const loss = this.#expected === 0 ? 0 : this.#lost / this.#expected;
    this.#lastLoss = loss;
    this.#lost = 0;
    this.#expected = 0;
    const heavyBefore = this.#heavyLossBefore;
    this.#heavyLossBefore = loss > HEAVY_LOSS;
    // Over 10 % for one second is not yet congestion unless far over: Chromium reports with each
    // NACK, so a packet on its way back counts as lost in that report, and in a lossy call's first
    // seconds (a key frame's burst) that read 17-18 % of 20-60 packets, cut the estimate to what
    // the small layer sent and kept the call at 320×240 for over 10 s (lab, 3 % random loss).
    if (loss > CONGESTION_LOSS || (loss > HEAVY_LOSS && heavyBefore)) {
      this.#estimate *= 1 - 0.5 * loss;
      if (sendingRate > 0) this.#estimate = Math.min(this.#estimate, sendingRate * (1 - loss));
      this.#proven = 0;
    } else if (loss < 0.02) {
      // Up to GROWTH_CAP × what is sent (or what a probe proved), never down because of it: an
      // estimate above that (where it starts, or raised by a probe) stays until loss says otherwise.
      const cap = Math.max(GROWTH_CAP * sendingRate, this.#proven);
      if (this.#estimate < cap) this.#estimate = Math.min(cap, this.#estimate * 1.08 ** Math.min(elapsed / 1000, 2));
    }
    this.#estimate = clamp(this.#estimate, this.#opts.min, this.#opts.max);
  }

  /** Current estimate (bit/s). */
  get estimate(): number {
    return this.#estimate;
  }

  /** Average loss the last update folded in (0–1). */
  get lastLoss(): number {
    return this.#lastLoss;
  }

  /** A probe got `bitrate` through without loss: the estimate is at least that. */
  raiseTo(bitrate: number): void {
    this.#estimate = clamp(Math.max(this.#estimate, bitrate), this.#opts.min, this.#opts.max);
    this.#proven = Math.max(this.#proven, bitrate);
  }
}

/** Growth without loss stops at this multiple of what is sent (GCC: 1.5× what is acknowledged). */
export const GROWTH_CAP = 1.5;
/** Loss over this cuts the estimate when it lasts two updates (GCC's threshold)… */
const HEAVY_LOSS = 0.1;
/** …or at once when over this (a link that just narrowed loses far more: 56-77 % in the lab). */
const CONGESTION_LOSS = 0.25;
/** Loss is judged over at least this many packets (libwebrtc's loss-based estimate waits for 20). */
export const MIN_PACKETS_FOR_LOSS = 20;
/** A receiver report above this loss (and of at least two packets)… */
const LOSS_EVIDENCE = 0.05;
/** …within this long makes a falling REMB below NARROWED_REMB_RATIO of what we send the new estimate. */
const LOSS_EVIDENCE_MS = 2000;
const NARROWED_REMB_RATIO = 0.5;

/** A REMB below this share of what we send means congestion… */
export const CONGESTED_REMB_RATIO = 0.7;
/** …when it lasts this long. */
export const CONGESTION_MS = 2000;

function clamp(v: number, min: number, max: number): number {
  return v < min ? min : v > max ? max : v;
}

/**
 * The layer a subscriber's tile asks of a publisher whatever it sends now: `wantedLayer` with
 * every layer counted as available (a paused layer keeps the size of its last key frame). This is
 * what the publisher is asked to encode (see LayerDemand). -1: the tile is hidden, or the
 * subscriber never said how big it shows anyone (a page says so once its grid is drawn; until
 * then, and for a subscriber that never says, the best layer that flows is forwarded).
 */
export function tileDemand(tile: Tile, layers: readonly LayerState[]): number {
  if (!tile) return -1;
  return wantedLayer(tile, layers.map((l) => (l.active ? l : { ...l, active: true })));
}

/** A publisher is asked to stop a layer only after nobody wanted it for this long. */
export const LAYER_PAUSE_DELAY_MS = 4000;
/**
 * A layer below every one anybody receives is stopped only after this long: it is the fallback
 * when a subscriber's bandwidth drops, and asking for it again costs a round trip and a key frame.
 */
export const LOWER_LAYER_PAUSE_DELAY_MS = 8000;
/** A subscriber keeps a lower layer wanted while its budget is within this share of the one above. */
const LOWER_LAYER_HEADROOM = 0.75;

/**
 * The lowest layer a subscriber may need soon (-1: it says nothing): what `allocateLayers` would
 * choose for it with every layer available, on LOWER_LAYER_HEADROOM of its budget or what it
 * gets now without loss (`gettingWithoutLoss`, bit/s), whichever is more, per stream.
 * A publisher whose every subscriber could take a higher layer stops the lower ones: on a narrow
 * uplink Chromium gives a lower layer its share first, and the layer people watch gets the rest
 * (lab, bloated 600 kbit/s uplink: the small layer nobody received took ~150 kbit/s).
 */
export function lowestNeeded(streams: readonly StreamDemand[], budget: number, gettingWithoutLoss = 0): number[] {
  const all = streams.map((s) => ({ tile: s.tile, layers: s.layers.map((l) => (l.active ? l : { ...l, active: true })) }));
  return allocateLayers(all, Math.max(budget * LOWER_LAYER_HEADROOM, gettingWithoutLoss));
}

/**
 * "Dynacast": which simulcast layers a publisher should encode. A layer no subscriber's tile
 * needs costs the publisher's CPU and uplink for nothing (a 640×480 encode is ~4× a 320×240
 * one), so the publisher is asked to send only the layers up to the highest any tile demands.
 * More is asked at once; less only after LAYER_PAUSE_DELAY_MS of lower demand (a grid that
 * reflows must not flap encoders). With no demand at all (nobody watching, or nobody has said
 * yet) nothing changes: a publisher alone in a call keeps its layers, so a newcomer's first
 * picture never waits for an encoder to be reconfigured.
 */
export class LayerDemand {
  /** Layers asked for now (the lowest `count`); a publisher starts sending all of them. */
  #count: number;
  #lowerSince: number | undefined;
  /** The lowest layer asked for now (layers below it are stopped); 0 to start with. */
  #from = 0;
  #higherFromSince: number | undefined;
  readonly #total: number;

  constructor(total: number) {
    this.#total = total;
    this.#count = total;
  }

  get count(): number {
    return this.#count;
  }

  get from(): number {
    return this.#from;
  }

  /**
   * `lowest`: the lowest layer any subscriber may need soon (see lowestNeeded; -1: nobody says).
   * Lower at once; higher (stopping the layers below) only after LOWER_LAYER_PAUSE_DELAY_MS.
   * Returns the new lowest layer when the publisher should be told, else undefined. Never above
   * the highest layer asked for.
   */
  updateFrom(lowest: number, now: number): number | undefined {
    const wanted = lowest < 0 ? 0 : Math.min(lowest, this.#count - 1);
    if (wanted < this.#from) {
      this.#higherFromSince = undefined;
      this.#from = wanted;
      return wanted;
    }
    if (wanted === this.#from || lowest < 0) {
      this.#higherFromSince = undefined;
      return undefined;
    }
    this.#higherFromSince ??= now;
    if (now - this.#higherFromSince < LOWER_LAYER_PAUSE_DELAY_MS) return undefined;
    this.#higherFromSince = undefined;
    this.#from = wanted;
    return wanted;
  }

  /**
   * `highest`: the highest layer any subscriber demands now (-1: none). Returns the new count
   * when the publisher should be told, else undefined.
   */
  update(highest: number, now: number): number | undefined {
    if (highest < 0) {
      // No demand: nothing changes (see the class comment).
      this.#lowerSince = undefined;
      return undefined;
    }
    const wanted = Math.min(this.#total, highest + 1);
    if (wanted > this.#count) {
      this.#lowerSince = undefined;
      this.#count = wanted;
      return wanted;
    }
    if (wanted === this.#count) {
      this.#lowerSince = undefined;
      return undefined;
    }
    this.#lowerSince ??= now;
    if (now - this.#lowerSince < LAYER_PAUSE_DELAY_MS) return undefined;
    this.#lowerSince = undefined;
    this.#count = wanted;
    this.#from = Math.min(this.#from, wanted - 1);
    return wanted;
  }
}

/**
 * Whether a subscriber needs its publishers' smallest layers thinner. A guest on a 400 kbit/s
 * downlink in a three-person call got two smallest layers (125 kbit/s each), two audio streams
 * and their resends, and lost 5-13 % all along, at 5-18 fps (lab, `bench/network --scenario
 * three`): when every tile it shows is on the smallest layer, at least two of them, and it still
 * loses more than SQUEEZE_LOSS, those publishers are asked to send that layer thinner
 * (`sendLayers`' `thinSmall`), for SQUEEZE_HOLD_MS after the last time this held. One tile alone
 * never asks: at the thinner rate Chromium's encoder skips frames (~23 fps), and a single
 * smallest layer fits wherever the loss-based estimate chose it.
 */
export class SmallLayerSqueeze {
  #until = -Infinity;

  /** Called about once a second: smoothed video loss, tiles shown, and how many on the smallest layer. */
  update(now: number, loss: number, shown: number, onSmallest: number): boolean {
    if (shown >= 2 && onSmallest === shown && loss > SQUEEZE_LOSS) this.#until = now + SQUEEZE_HOLD_MS;
    return now < this.#until;
  }
}

/** Smoothed video loss over which a subscriber with every tile on the smallest layer asks for it thinner… */
export const SQUEEZE_LOSS = 0.04;
/** …and for this long after (ms): the link stays what it is, and each try at the full rate costs seconds of loss. */
export const SQUEEZE_HOLD_MS = 60_000;
