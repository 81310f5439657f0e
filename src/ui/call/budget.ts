/**
 * The video budget: how many remote videos this page plays at once. A page that tries to decode
 * more than its device can afford draws none of them smoothly (a call of 33 on a laptop drew ~0
 * frames a second), so the page measures what decoding costs it and plays only the most important
 * tiles; the others show the person's initial and name, and the SFU stops sending them (their
 * tiles report no size, see viewport.ts). Audio is never part of this.
 *
 * Pure logic, time passed in: unit-tested without a browser (test/budget.test.ts).
 */

/** What the page measured over one statistics interval. */
export interface LoadSample {
  /** Length of the interval, ms. */
  intervalMs: number;
  /** Each remote video playing now: frames decoded and dropped per second, decode time per second (ms). */
  videos: readonly { fps: number; droppedPerSecond: number; decodeMsPerSecond: number }[];
  /** Main-thread tasks over 50 ms during the interval, their total length (ms). */
  longTaskMs: number;
  /** Whether the interval saw a task of 200 ms or more (the page froze). */
  frozen: boolean;
  /** This page's own camera video suffers for lack of CPU (quality.ts sendingStarved): everyone sees it. */
  sendingStarved?: boolean;
}

export interface BudgetOptions {
  /** Cores the browser reports (navigator.hardwareConcurrency). */
  cores: number;
  /** A phone-sized screen: fewer, larger tiles. */
  small: boolean;
}

/** The most videos any page plays. */
export const MAX_VIDEOS = 25;
/** Below this many frames a second a playing video is starving (if frames reach the page at all). */
const STARVING_FPS = 12;
/** Share of the interval spent in long main-thread tasks that counts as a page too busy. */
const BUSY_SHARE = 0.25;
/** Decoding more than this share of all cores together is more than the device can give a call. */
const DECODE_SHARE = 0.5;
/** Bad intervals in a row before the budget drops (one slow second is not a trend). */
const BAD_TO_DROP = 2;
/** Good intervals in a row before the budget grows by one video. */
const GOOD_TO_GROW = 4;
/** The encoder adapts back slowly: after a drop, our own video's starving counts again only after this. */
const SEND_SETTLE_MS = 5000;
const SENDING_STARVED = 'your own video lacks the CPU to keep its frame rate';
/**
 * The page pauses others' videos on its own down to this many, no further (the person may ask for
 * fewer). Pausing the last few only took them from the person: in a 33-person call on two busy
 * cores (bench/room) pages went down to 1 or 2 videos, their own video still starving and their
 * budgeted tiles drawn at 4.4-4.6 frames/s, where pages holding 4 drew them at 6.9-9.2 that day;
 * and in a call of three on a starved machine a page paused one of its two others.
 */
const VIDEO_FLOOR = 4;
/** After a drop, no growing for this long: the page first settles. */
const HOLD_AFTER_DROP_MS = 8000;

/** Where a device starts: a phone 4, a 2-core laptop 9, more cores more. */
export function initialBudget({ cores, small }: BudgetOptions): number {
  if (small) return 4;
  if (cores <= 2) return 9;
  if (cores <= 4) return 12;
  return 16;
}

const FROZEN = 'a main-thread task of 200 ms or more';
const LONG_TASKS = 'long main-thread tasks';
const DECODE_HEAVY = 'decoding takes more than half the device';
/** A busy main thread with every video smooth drops the budget only after this many intervals in a row. */
const MAIN_ONLY_TO_DROP = 5;

/** Whether an interval shows a page that cannot keep up, and why (for the diagnostics line). */
export function overloaded(sample: LoadSample, cores: number): string | undefined {
  if (sample.frozen) return FROZEN;
  if (sample.longTaskMs > sample.intervalMs * BUSY_SHARE) return LONG_TASKS;
  // Decoding others must not starve the encoder of our own video: drop only while we decode some.
  if (sample.sendingStarved && sample.videos.length > 0) return SENDING_STARVED;
  const decodeMs = sample.videos.reduce((sum, v) => sum + v.decodeMsPerSecond, 0);
  if (decodeMs > 1000 * Math.max(1, cores) * DECODE_SHARE) return DECODE_HEAVY;
  const playing = sample.videos.filter((v) => v.fps > 0 || v.droppedPerSecond > 0);
  if (playing.length >= 2) {
    const starving = playing.filter((v) => v.fps < STARVING_FPS && v.droppedPerSecond > 1).length;
    if (starving * 2 > playing.length) return 'most videos drop frames';
  }
  return undefined;
}

export class VideoBudget {
  /** How many remote videos play now. */
  limit: number;
  /** Why it last dropped (undefined: it never did, or has grown back since). */
  reason: string | undefined;
  private readonly cores: number;
  private readonly ceiling: number;
  private bad = 0;
  private good = 0;
  private holdUntil = -Infinity;
  private droppedAt = -Infinity;

  constructor(options: BudgetOptions) {
    this.cores = options.cores;
    this.ceiling = options.small ? 9 : MAX_VIDEOS;
    this.limit = Math.min(this.ceiling, initialBudget(options));
  }

  /**
   * One interval's measurements; `wanted` is how many remote videos there are to play (the
   * budget grows only while some of them are left out). Returns the limit, changed or not.
   */
  update(sample: LoadSample, wanted: number, now: number): number {
    const why = overloaded(sample, this.cores);
    if (why && (this.limit <= VIDEO_FLOOR || (why === SENDING_STARVED && now < this.droppedAt + SEND_SETTLE_MS))) {
      // Pausing more would not help, or the encoder is still recovering from the last drop:
      // neither bad nor good.
      this.good = 0;
      return this.limit;
    }
    // Video is composited off the main thread: while every video plays smoothly, a busy main
    // thread (a commit being made, a garbage collection, another tab) counts only if it lasts, and
    // so does decoding that takes much of the device (decode times stretch on a busy machine).
    const mainOnly = (why === FROZEN || why === LONG_TASKS || why === DECODE_HEAVY) && sample.videos.every((v) => v.fps >= STARVING_FPS && v.droppedPerSecond <= 1);
    if (why) {
      this.good = 0;
      if (++this.bad >= (mainOnly ? MAIN_ONLY_TO_DROP : BAD_TO_DROP)) {
        // Down by a quarter (at least one): from 32 starving videos to a few smooth ones in seconds.
        this.limit = Math.max(VIDEO_FLOOR, Math.min(this.limit, Math.max(1, sample.videos.length)) - Math.max(1, Math.floor(this.limit / 4)));
        this.reason = why;
        this.bad = 0;
        this.holdUntil = now + HOLD_AFTER_DROP_MS;
        this.droppedAt = now;
      }
      return this.limit;
    }
    this.bad = 0;
    if (wanted <= this.limit || now < this.holdUntil || this.limit >= this.ceiling) {
      this.good = 0;
      return this.limit;
    }
    if (++this.good >= GOOD_TO_GROW) {
      this.limit++;
      this.good = 0;
      if (this.limit >= wanted) this.reason = undefined;
    }
    return this.limit;
  }

  /**
   * The person asks for more or fewer videos ("Show more" / "Show fewer"), counted from what
   * plays now: with 5 people and room for 9, "fewer" means 4.
   */
  adjust(by: number, now: number, wanted: number): number {
    const shown = Math.min(this.limit, Math.max(1, wanted));
    this.limit = Math.max(1, Math.min(this.ceiling, shown + by));
    this.good = 0;
    this.bad = 0;
    // Asked for fewer: do not grow back on its own for a while.
    if (by < 0) this.holdUntil = now + 60_000;
    return this.limit;
  }
}

/** A remote tile, as far as choosing who plays video goes. */
export interface BudgetTile {
  id: string;
  /** Shares a screen. */
  screen: boolean;
  pinned: boolean;
  /** When they last spoke (ms, -Infinity: never). */
  spokeAt: number;
}

/**
 * Who plays video within `limit`: a shared screen, the pinned person, then the most recent
 * speakers, then the others in their grid order (stable, so tiles do not flicker).
 */
export function chooseVideoTiles(tiles: readonly BudgetTile[], limit: number): Set<string> {
  const order = tiles.map((t, i) => ({ t, i }));
  const rank = (t: BudgetTile) => (t.screen ? 0 : t.pinned ? 1 : t.spokeAt > -Infinity ? 2 : 3);
  order.sort((a, b) => rank(a.t) - rank(b.t) || (rank(a.t) === 2 ? b.t.spokeAt - a.t.spokeAt : 0) || a.i - b.i);
  return new Set(order.slice(0, Math.max(0, limit)).map(({ t }) => t.id));
}
