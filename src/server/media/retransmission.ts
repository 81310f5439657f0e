// Retransmission bookkeeping: pure logic with time passed in (tested in test/congestion.test.ts).
//
// Downstream, a subscriber behind a full link loses many packets and NACKs each of them again
// every round trip; answering every NACK every time multiplies the traffic into the very link
// that is full (seen in the lab: 0.9 → 31 Mbit/s). So a packet is resent at most once per
// RESEND_INTERVAL_MS, never when it is older than the receiver can still use, and the resends of
// one subscriber share a budget that is a fraction of its estimated bandwidth.
// Upstream, a lost packet is NACKed to the publisher again (with backoff) until it arrives.

/** A packet is resent again only after this long (about one round trip on a congested path). */
export const RESEND_INTERVAL_MS = 150;
/** NACKs for packets first sent longer ago than this are ignored: the receiver's jitter buffer has given up on them. */
export const MAX_RESEND_AGE_MS = 1000;
/** Resends of one subscriber may use this share of its estimated bandwidth… */
export const RETRANSMISSION_SHARE = 0.2;
/** …with bursts of up to this long at that rate. */
const BUDGET_BURST_MS = 250;

/**
 * A packet the receiver still NACKs when it is too old to resend holds its picture until a key
 * frame: one is asked for at once, at most this often per stream. Chromium asked for one itself
 * only after 3-4 s of NACKing (lab, three people, one on a 400 kbit/s downlink: a burst of 7
 * lost packets, most resends over the budget, the picture frozen 4-5 s of 12).
 */
export const REPAIR_KEY_FRAME_INTERVAL_MS = 1000;

const SLOTS = 1024; // power of two; ~5 s of video at 200 packets/s

/** Per outgoing stream: when each sequence number was first sent and last resent. */
export class ResendHistory {
  #seqs = new Int32Array(SLOTS).fill(-1);
  #sentAt = new Float64Array(SLOTS);
  #resentAt = new Float64Array(SLOTS);
  /** When the last key frame began going out: the receiver needs nothing sent before it. */
  #keyFrameAt = -Infinity;
  #repairAskedAt = -Infinity;

  /** Hot path: `seq` (16 bits) went out for the first time; `keyFrameStart`: it begins a key frame. */
  onSent(seq: number, nowMs: number, keyFrameStart = false): void {
    const slot = seq & (SLOTS - 1);
    if (this.#seqs[slot] === seq) return; // a resend, not a first send
    this.#seqs[slot] = seq;
    this.#sentAt[slot] = nowMs;
    this.#resentAt[slot] = -Infinity;
    if (keyFrameStart) this.#keyFrameAt = nowMs;
  }

  /**
   * Whether a NACK for `seq`, which shouldResend() refused, needs a key frame instead: the packet
   * is too old to resend, and no key frame went out since it did (one restarts the picture and
   * the receiver stops asking). At most once per REPAIR_KEY_FRAME_INTERVAL_MS; a `true` is
   * recorded as asked.
   */
  needsKeyFrame(seq: number, nowMs: number): boolean {
    const slot = seq & (SLOTS - 1);
    if (this.#seqs[slot] !== seq) return false;
    const sentAt = this.#sentAt[slot]!;
    if (nowMs - sentAt <= MAX_RESEND_AGE_MS || sentAt < this.#keyFrameAt) return false;
    if (nowMs - this.#repairAskedAt < REPAIR_KEY_FRAME_INTERVAL_MS) return false;
    this.#repairAskedAt = nowMs;
    return true;
  }

  /**
   * Whether a NACK for `seq` should be answered now: sent recently enough, and not resent in the
   * last RESEND_INTERVAL_MS. Answering is recorded by onResent().
   */
  shouldResend(seq: number, nowMs: number): boolean {
    const slot = seq & (SLOTS - 1);
    if (this.#seqs[slot] !== seq) return false;
    if (nowMs - this.#sentAt[slot]! > MAX_RESEND_AGE_MS) return false;
    return nowMs - this.#resentAt[slot]! >= RESEND_INTERVAL_MS;
  }

  onResent(seq: number, nowMs: number): void {
    const slot = seq & (SLOTS - 1);
    if (this.#seqs[slot] === seq) this.#resentAt[slot] = nowMs;
  }
}

/** A token bucket in bytes, refilled at RETRANSMISSION_SHARE of the estimate. */
export class RetransmissionBudget {
  #tokens = 0;
  #at: number | undefined;

  /** Takes `bytes` from the budget if there is room; `estimate` in bit/s. */
  take(bytes: number, estimate: number, nowMs: number): boolean {
    const rate = (estimate * RETRANSMISSION_SHARE) / 8000; // bytes per ms
    const cap = Math.max(rate * BUDGET_BURST_MS, 1500);
    const elapsed = this.#at === undefined ? BUDGET_BURST_MS : Math.max(0, nowMs - this.#at);
    this.#at = nowMs;
    this.#tokens = Math.min(cap, this.#tokens + elapsed * rate);
    if (this.#tokens < bytes) return false;
    this.#tokens -= bytes;
    return true;
  }
}

/** Upstream NACKs are sent again this often until the packet arrives… */
export const NACK_RETRY_MS = [120, 240, 480];
/** …for at most this many missing packets per stream at a time. */
const MAX_PENDING = 256;

/**
 * Per incoming stream: sequence numbers still missing, and when to NACK each again. A lost
 * packet is NACKed at once (by the caller, on the gap), then again after each NACK_RETRY_MS
 * step unless it arrived; after the last it is given up.
 */
export class MissingPackets {
  #seqs: number[] = [];
  #due: number[] = [];
  #tries: number[] = [];

  get size(): number {
    return this.#seqs.length;
  }

  /** `seq` was found missing (and NACKed) now. */
  add(seq: number, nowMs: number): void {
    if (this.#seqs.length >= MAX_PENDING) this.#drop(0);
    this.#seqs.push(seq);
    this.#due.push(nowMs + NACK_RETRY_MS[0]!);
    this.#tries.push(0);
  }

  /** `seq` arrived (late, or answering a NACK). */
  arrived(seq: number): void {
    if (this.#seqs.length === 0) return;
    const i = this.#seqs.indexOf(seq);
    if (i >= 0) this.#drop(i);
  }

  /** The sequence numbers to NACK again now (into `out`); their next retry is scheduled. */
  due(nowMs: number, out: number[]): void {
    for (let i = 0; i < this.#seqs.length; ) {
      if (this.#due[i]! > nowMs) {
        i++;
        continue;
      }
      const tries = this.#tries[i]! + 1;
      out.push(this.#seqs[i]!);
      if (tries >= NACK_RETRY_MS.length) {
        this.#drop(i);
        continue;
      }
      this.#tries[i] = tries;
      this.#due[i] = nowMs + NACK_RETRY_MS[tries]!;
      i++;
    }
  }

  #drop(i: number): void {
    this.#seqs.splice(i, 1);
    this.#due.splice(i, 1);
    this.#tries.splice(i, 1);
  }
}
