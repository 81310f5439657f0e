// One subscriber's view of one producer as a single continuous RTP stream, whichever simulcast
// layer (or pause) is behind it. Pure logic (time passed in), unit-tested without a network.

/** The fields of an incoming packet the switcher needs; the Producer fills one reused object. */
export interface SourcePacket {
  seq: number;
  timestamp: number;
  /** Video: first packet of a key frame. Audio: every packet (any packet may start a stream). */
  keyFrameStart: boolean;
  /** VP8 PictureID (7 or 15 bits) or -1; TL0PICIDX or -1. */
  pictureId: number;
  pictureIdBits: number;
  tl0: number;
}

/**
 * Layer switching happens only on a key frame of the target layer (a VP8 decoder cannot start
 * anywhere else), and the outgoing sequence number, timestamp, PictureID and TL0PICIDX are
 * rewritten so the subscriber sees one stream: no sequence gap (it would NACK), timestamps that
 * advance with wall-clock time, PictureIDs that never jump back (its frame buffer would drop
 * "old" frames).
 */
export class LayerSwitch {
  /** Layer whose packets are forwarded now; -1: none. */
  current = -1;
  /** Layer the selector wants; -1: forward nothing. */
  target = -1;
  readonly clockRate: number;
  #started = false;
  #lastLayer = -1;
  #seqOffset = 0;
  #tsOffset = 0;
  #picOffset = 0;
  #tl0Offset = 0;
  #switchOutSeq = 0;
  #lastOutSeq = 0;
  #lastOutTs = 0;
  #lastOutPic = -1;
  #lastOutTl0 = -1;
  #lastSentAt = 0;
  /** Outgoing values of the packet just accepted. */
  outSeq = 0;
  outTimestamp = 0;
  outPictureId = -1;
  outTl0 = -1;

  constructor(clockRate: number) {
    this.clockRate = clockRate;
  }

  /** Selects the layer to move to; -1 stops forwarding at once (no key frame needed for that). */
  setTarget(layer: number): void {
    this.target = layer;
    if (layer < 0) this.current = -1;
  }

  /** Still waiting for a key frame of the target layer. */
  /** Whether anything was forwarded yet (the first packet sets the output's bases). */
  get started(): boolean {
    return this.#started;
  }

  get switching(): boolean {
    return this.target >= 0 && this.current !== this.target;
  }

  /**
   * Hot path: whether this packet of `layer` is forwarded; if so, out* hold its rewritten fields.
   * No allocation.
   */
  accept(layer: number, p: SourcePacket, nowMs: number): boolean {
    if (layer !== this.current) {
      if (layer !== this.target || !p.keyFrameStart) return false;
      this.#switchTo(layer, p, nowMs);
    }
    const outSeq = (p.seq - this.#seqOffset) & 0xffff;
    const outTs = (p.timestamp - this.#tsOffset) >>> 0;
    this.outSeq = outSeq;
    this.outTimestamp = outTs;
    if (((outSeq - this.#lastOutSeq) & 0xffff) < 0x8000) {
      this.#lastOutSeq = outSeq;
      this.#lastOutTs = outTs;
      this.#lastSentAt = nowMs;
    }
    if (p.pictureId >= 0) {
      const mask = p.pictureIdBits === 15 ? 0x7fff : 0x7f;
      const pic = (p.pictureId - this.#picOffset) & mask;
      this.outPictureId = pic;
      if (this.#lastOutPic < 0 || ((pic - this.#lastOutPic) & mask) < (mask >> 1)) this.#lastOutPic = pic;
    } else {
      this.outPictureId = -1;
    }
    if (p.tl0 >= 0) {
      const tl0 = (p.tl0 - this.#tl0Offset) & 0xff;
      this.outTl0 = tl0;
      if (this.#lastOutTl0 < 0 || ((tl0 - this.#lastOutTl0) & 0xff) < 0x80) this.#lastOutTl0 = tl0;
    } else {
      this.outTl0 = -1;
    }
    return true;
  }

  /** For a NACK: the source sequence number of an outgoing one on the current layer, or -1 (before the switch). */
  sourceSeq(outSeq: number): number {
    if (this.current < 0 || ((outSeq - this.#switchOutSeq) & 0xffff) >= 0x8000) return -1;
    return (outSeq + this.#seqOffset) & 0xffff;
  }

  /** Outgoing timestamp for a source timestamp of the current layer (sender reports). */
  outTimestampOf(sourceTs: number): number {
    return (sourceTs - this.#tsOffset) >>> 0;
  }

  #switchTo(layer: number, p: SourcePacket, nowMs: number): void {
    if (!this.#started) {
      this.#started = true;
      this.#seqOffset = 0;
      this.#tsOffset = 0;
      this.#picOffset = 0;
      this.#tl0Offset = 0;
    } else {
      const nextSeq = (this.#lastOutSeq + 1) & 0xffff;
      this.#seqOffset = (p.seq - nextSeq) & 0xffff;
      // Same source resuming (audio unmuted by the speaker selection, a tile shown again): its
      // timestamps already advanced with real time. Another layer has its own timestamp base:
      // continue from ours by the wall-clock time that passed.
      if (layer !== this.#lastLayer) {
        const ticks = Math.max(1, Math.round(((nowMs - this.#lastSentAt) * this.clockRate) / 1000));
        this.#tsOffset = (p.timestamp - ((this.#lastOutTs + ticks) >>> 0)) >>> 0;
      }
      if (p.pictureId >= 0 && this.#lastOutPic >= 0) {
        const mask = p.pictureIdBits === 15 ? 0x7fff : 0x7f;
        this.#picOffset = (p.pictureId - ((this.#lastOutPic + 1) & mask)) & mask;
      }
      if (p.tl0 >= 0 && this.#lastOutTl0 >= 0) {
        this.#tl0Offset = (p.tl0 - ((this.#lastOutTl0 + 1) & 0xff)) & 0xff;
      }
    }
    this.current = layer;
    this.#lastLayer = layer;
    this.#switchOutSeq = (p.seq - this.#seqOffset) & 0xffff;
    this.#lastOutSeq = (this.#switchOutSeq - 1) & 0xffff;
  }
}
