// Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01):
// the publisher's browser numbers every packet of the connection; we say when each arrived, and
// its delay-based controller (GoogCC) sees a queue building long before packets are lost.
// Pure logic with time passed in (tested in test/congestion.test.ts).

export const TRANSPORT_CC_EXTENSION = 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01';

/** Feedback goes out this often (libwebrtc's receiver sends every 50–250 ms). */
export const TRANSPORT_CC_INTERVAL_MS = 50;

const SLOTS = 4096; // power of two; more packets than arrive between two feedbacks
/** Receive deltas are in units of 250 µs; the reference time in units of 64 ms (256 deltas). */
const TICKS_PER_MS = 4;
const TICKS_PER_REFERENCE = 256;

/** Arrival times of transport-wide sequence numbers, and the feedback packets that report them. */
export class TransportFeedbackRecorder {
  #seqs = new Int32Array(SLOTS).fill(-1);
  #arrivals = new Float64Array(SLOTS);
  /** Unwrapped: highest sequence number seen, and the first one not reported yet (-1: none yet). */
  #highest = -1;
  #next = -1;
  #feedbackCount = 0;

  /** Hot path: a packet with transport-wide sequence number `seq` (16 bits) arrived. */
  onPacket(seq: number, nowMs: number): void {
    let unwrapped = seq;
    if (this.#highest >= 0) {
      const diff = (((seq - this.#highest) & 0xffff) << 16) >> 16; // signed 16-bit distance
      unwrapped = this.#highest + diff;
    } else {
      this.#next = seq;
    }
    if (unwrapped < this.#next) return; // reported as lost already
    if (unwrapped > this.#highest) this.#highest = unwrapped;
    // After a long silence or a jump, report only the last SLOTS packets.
    if (this.#highest - this.#next >= SLOTS) this.#next = this.#highest - SLOTS + 1;
    const slot = unwrapped & (SLOTS - 1);
    this.#seqs[slot] = unwrapped;
    this.#arrivals[slot] = nowMs;
  }

  /**
   * One RTCP transport-cc feedback packet for everything since the previous one, or undefined
   * when nothing arrived. Statuses go in two-bit status-vector chunks (7 packets each).
   */
  build(senderSsrc: number, mediaSsrc: number): Buffer | undefined {
    if (this.#next < 0 || this.#highest < this.#next) return undefined;
    const base = this.#next;
    let first = base;
    while (first <= this.#highest && this.#seqs[first & (SLOTS - 1)] !== first) first++;
    if (first > this.#highest) return undefined;
    const reference = Math.floor((this.#arrivals[first & (SLOTS - 1)]! * TICKS_PER_MS) / TICKS_PER_REFERENCE);
    let previous = reference * TICKS_PER_REFERENCE;
    const symbols: number[] = [];
    const deltas: number[] = [];
    for (let s = base; s <= this.#highest; s++) {
      const slot = s & (SLOTS - 1);
      if (this.#seqs[slot] !== s) {
        symbols.push(0);
        continue;
      }
      const ticks = Math.round(this.#arrivals[slot]! * TICKS_PER_MS);
      const delta = ticks - previous;
      if (delta < -32768 || delta > 32767) break; // the next feedback starts here
      previous = ticks;
      symbols.push(delta >= 0 && delta <= 255 ? 1 : 2);
      deltas.push(delta);
    }
    const count = symbols.length;
    const chunks = Math.ceil(count / 7);
    let deltaBytes = 0;
    for (let i = 0; i < count; i++) deltaBytes += symbols[i] === 1 ? 1 : symbols[i] === 2 ? 2 : 0;
    const unpadded = 20 + 2 * chunks + deltaBytes;
    const padding = (4 - (unpadded % 4)) % 4;
    const b = Buffer.alloc(unpadded + padding);
    b[0] = 0x80 | (padding > 0 ? 0x20 : 0) | 15;
    b[1] = 205;
    b.writeUInt16BE(b.length / 4 - 1, 2);
    b.writeUInt32BE(senderSsrc >>> 0, 4);
    b.writeUInt32BE(mediaSsrc >>> 0, 8);
    b.writeUInt16BE(base & 0xffff, 12);
    b.writeUInt16BE(count, 14);
    b.writeUIntBE(reference & 0xffffff, 16, 3);
    b[19] = this.#feedbackCount++ & 0xff;
    let at = 20;
    for (let c = 0; c < chunks; c++) {
      let chunk = 0xc000; // status vector, two-bit symbols
      for (let k = 0; k < 7; k++) chunk |= (symbols[c * 7 + k] ?? 0) << (12 - 2 * k);
      b.writeUInt16BE(chunk, at);
      at += 2;
    }
    for (const d of deltas) {
      if (d >= 0 && d <= 255) b[at++] = d;
      else {
        b.writeInt16BE(d, at);
        at += 2;
      }
    }
    if (padding > 0) b[b.length - 1] = padding;
    this.#next = base + count;
    return b;
  }
}
