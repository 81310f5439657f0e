// Key-frame request rate limiting: pure logic (time passed in), unit-tested without a network.

/** What to do with a key-frame request right now. */
export type KeyFrameDecision =
  /** Send a PLI now. */
  | { send: true }
  /** Inside the window: send one PLI after `delayMs` (schedule it), unless one is already scheduled. */
  | { send: false; delayMs: number; alreadyScheduled: boolean };

/**
 * At most one key-frame request per interval reaches a publisher's stream: a subscriber that
 * cannot decode (e.g. wrong E2EE key) sends PLIs continuously, layer switches ask for key frames,
 * and every key frame costs all subscribers of that stream bandwidth. Requests inside the window
 * are coalesced into one at its end, so a late request is never lost and never multiplied.
 */
export class KeyFrameRequestLimiter {
  readonly intervalMs: number;
  #lastSentAt = -Infinity;
  #scheduled = false;

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  request(now: number): KeyFrameDecision {
    const wait = this.#lastSentAt + this.intervalMs - now;
    if (wait <= 0 && !this.#scheduled) return { send: true };
    const alreadyScheduled = this.#scheduled;
    this.#scheduled = true;
    return { send: false, delayMs: Math.max(0, wait), alreadyScheduled };
  }

  /** A PLI went out (immediately or from the scheduled timer). */
  sent(now: number): void {
    this.#lastSentAt = now;
    this.#scheduled = false;
  }

  /** The scheduled PLI was dropped (stream closed, nothing to send on). */
  cancel(): void {
    this.#scheduled = false;
  }
}
