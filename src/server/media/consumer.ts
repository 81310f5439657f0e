import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Track } from 'node-datachannel';
import { isolateListeners, type MediaContext, type MediaKind } from './context.js';
import { holdUntilClosed } from './live-tracks.js';
import type { Producer, Vp8Offsets } from './producer.js';
import {
  buildSenderReport,
  forEachReportBlock,
  ReportedLoss,
  type LossReport,
  isRtcp,
  newVp8Info,
  parseRtcpCompound,
  parseVp8,
  readFeedback,
  rtpPayloadOffset,
  writePlayoutDelay,
  type SenderReport,
} from './rtp.js';
import { MAX_PLAYOUT_DELAY_MS } from './playout-delay.js';
import { ResendHistory } from './retransmission.js';
import { LayerSwitch, type SourcePacket } from './switcher.js';

export interface ConsumerEvents {
  close: [];
}

/** What a consumer tells its subscriber transport about the subscriber's feedback. */
export interface ConsumerFeedback {
  onRemb(bitrate: number): void;
  /** What a receiver report says of this consumer's stream since its previous one (packets lost of those expected). */
  onLoss(report: LossReport, kind: MediaKind): void;
  /** The consumer became able to send: choose its layer now rather than at the next tick. */
  onReady(consumer: Consumer): void;
  /** The subscriber NACKed `count` packets of this consumer's stream. */
  onNack(count: number, nowMs: number): void;
  /** Whether a resend of `bytes` fits the subscriber's retransmission budget now (and takes it). */
  mayRetransmit(bytes: number, nowMs: number): boolean;
}

/** @internal */
export interface ConsumerInit {
  producer: Producer;
  mid: string;
  ssrc: number;
  ctx: MediaContext;
  onClose: (consumer: Consumer) => void;
  feedback?: ConsumerFeedback;
}

/**
 * One producer's track forwarded to one subscriber, under that subscriber's own SSRC and PT, as
 * one continuous stream whichever simulcast layer is behind it (see LayerSwitch).
 */
export class Consumer extends EventEmitter<ConsumerEvents> {
  readonly id = randomUUID();
  readonly producerId: string;
  readonly kind: MediaKind;
  /** @internal */
  readonly mid: string;
  /** @internal */
  readonly ssrc: number;
  /** @internal The layer the subscriber's tile asks the publisher to encode (-1: none; see LayerDemand). */
  demand = -1;
  /** @internal The lowest layer this subscriber may need soon (-1: it says nothing; see lowestNeeded). */
  lowestNeeded = -1;
  /** @internal This subscriber cannot fit its tiles' smallest layers: the publisher should thin its smallest (SmallLayerSqueeze). */
  thinSmall = false;
  #producer: Producer;
  #ctx: MediaContext;
  #onClose: (consumer: Consumer) => void;
  #feedback: ConsumerFeedback | undefined;
  #track: Track | undefined;
  #trackOpen = false;
  #payloadType = 0;
  /** Id of the playout-delay header extension in the subscriber's answer (0: not negotiated). */
  #playoutDelayId = 0;
  /** @internal Minimum playout delay the subscriber's video jitter buffer is told (ms). */
  playoutDelayMinMs = 0;
  #answered = false;
  /** Track open and answer applied: packets may flow. Cached for the hot path. */
  #ready = false;
  #switch: LayerSwitch;
  #ssrcBytes = Buffer.alloc(4);
  #retransmission: SourcePacket = { seq: 0, timestamp: 0, keyFrameStart: false, pictureId: -1, pictureIdBits: 0, tl0: -1 };
  #retransmissionVp8 = newVp8Info();
  #resends = new ResendHistory();
  #reportedLoss = new ReportedLoss();
  #packets = 0;
  #octets = 0;
  #closed = false;

  /** @internal Created by SubscribeTransport.consume() only. */
  constructor(init: ConsumerInit) {
    super();
    this.#producer = init.producer;
    this.producerId = init.producer.id;
    this.kind = init.producer.kind;
    this.mid = init.mid;
    this.ssrc = init.ssrc;
    this.#ssrcBytes.writeUInt32BE(init.ssrc, 0);
    this.#ctx = init.ctx;
    isolateListeners(this, init.ctx);
    this.#onClose = init.onClose;
    this.#feedback = init.feedback;
    this.#switch = new LayerSwitch(init.producer.codec.clockRate || 90000);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  get producer(): Producer {
    return this.#producer;
  }

  /** @internal Track open and answer applied. */
  get ready(): boolean {
    return this.#ready;
  }

  /** @internal Packets sent so far. */
  get packets(): number {
    return this.#packets;
  }

  /**
   * @internal Sends a packet that is not of this stream (a bandwidth probe's, under an SSRC and
   * payload type the subscriber never negotiated) on this consumer's connection.
   */
  sendForeign(buf: Buffer): boolean {
    if (!this.#ready) return false;
    try {
      this.#track!.sendMessageBinary(buf);
      return true;
    } catch {
      this.#ctx.counters.sendErrors++;
      return false;
    }
  }

  /** @internal Payload bytes sent so far. */
  get octets(): number {
    return this.#octets;
  }

  /** Layer forwarded now (-1: none) and the one the selection wants. */
  get layers(): { current: number; target: number } {
    return { current: this.#switch.current, target: this.#switch.target };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ready = false;
    this.#producer.removeConsumer(this);
    // Destroying the native track is what removes the m-line (port 0) from the next offer.
    try {
      this.#track?.close();
    } catch {
      // Already destroyed with its connection.
    }
    this.#onClose(this);
    this.emit('close');
  }

  /**
   * @internal Which layer to forward (-1: none). Moving to another layer waits for its key frame,
   * which is requested here (rate-limited per layer by the producer).
   */
  setTargetLayer(layer: number): void {
    const sw = this.#switch;
    if (layer === sw.target) return;
    sw.setTarget(layer);
    this.requestKeyFrameIfSwitching();
  }

  /** @internal Called by the selector's tick too: a lost key frame is asked for again. */
  requestKeyFrameIfSwitching(): void {
    if (this.kind === 'video' && this.#ready && this.#switch.switching && !this.#producer.closed) {
      // A subscriber's first frame: a key frame that just went by is replayed from the producer's
      // store (no round trip to the encoder). Not on a later switch: frames from a moment ago
      // after the ones already shown would step back in time, and delay what follows.
      if (!this.#switch.started && this.#producer.replayKeyFrame(this, this.#switch.target, performance.now()) && !this.#switch.switching) return;
      this.#producer.requestKeyFrame(this.#switch.target);
    }
  }

  /** @internal */
  attachTrack(track: Track): void {
    this.#track = track;
    track.onOpen(() => {
      this.#trackOpen = true;
      this.#update();
    });
    holdUntilClosed(track, () => {
      this.#trackOpen = false;
      this.#update();
    });
    track.onMessage((buf) => this.#handleRtcp(buf));
  }

  /** @internal Called when the subscriber's answer assigned our codec a payload type. */
  setPayloadType(pt: number): void {
    this.#payloadType = pt;
    this.#answered = true;
    this.#update();
  }

  /** @internal The subscriber's answer kept the playout-delay extension under this id. */
  setPlayoutDelayExtension(id: number): void {
    if (this.kind === 'video') this.#playoutDelayId = id;
  }

  #update(): void {
    const wasReady = this.#ready;
    this.#ready = !this.#closed && this.#trackOpen && this.#answered;
    if (this.#ready && !wasReady) {
      // A browser decodes nothing until it sees a key frame, and publishers send one only at
      // start or on request: the layer choice asks for one of the chosen layer.
      const target = this.#switch.target;
      this.#feedback?.onReady(this);
      // A new target chosen just now has had its key frame asked for (setTargetLayer).
      if (this.#switch.target === target) this.requestKeyFrameIfSwitching();
    }
  }

  /**
   * @internal Hot path: one call per incoming packet of the producer per subscriber. Rewrites
   * PT, SSRC, sequence number, timestamp (and VP8 PictureID/TL0PICIDX) in place in the shared
   * buffer, then sends (the engine copies): no allocation.
   */
  forward(buf: Buffer, p: SourcePacket & { layer: number }, nowMs: number, vp8: Vp8Offsets): void {
    if (!this.#ready) return;
    const sw = this.#switch;
    if (p.layer !== sw.current && p.layer !== sw.target) return;
    if (!sw.accept(p.layer, p, nowMs)) return;
    this.#resends.onSent(sw.outSeq, nowMs, p.keyFrameStart);
    this.#send(buf, sw, vp8);
  }

  #send(buf: Buffer, sw: LayerSwitch, vp8: Vp8Offsets): void {
    buf[1] = (buf[1]! & 0x80) | this.#payloadType;
    const seq = sw.outSeq;
    buf[2] = seq >> 8;
    buf[3] = seq & 0xff;
    buf.writeUInt32BE(sw.outTimestamp, 4);
    const s = this.#ssrcBytes;
    buf[8] = s[0]!;
    buf[9] = s[1]!;
    buf[10] = s[2]!;
    buf[11] = s[3]!;
    if (sw.outPictureId >= 0 && vp8.pictureIdOffset >= 0) {
      const at = vp8.pictureIdOffset;
      if (vp8.pictureIdBits === 15) {
        buf[at] = 0x80 | (sw.outPictureId >> 8);
        buf[at + 1] = sw.outPictureId & 0xff;
      } else {
        buf[at] = sw.outPictureId & 0x7f;
      }
    }
    if (sw.outTl0 >= 0 && vp8.tl0Offset >= 0) buf[vp8.tl0Offset] = sw.outTl0;
    // Every packet: the block may hold a publisher's element under the same id, and a receiver
    // keeps the last delay it was told, so "no floor" is said too.
    if (this.#playoutDelayId > 0) writePlayoutDelay(buf, this.#playoutDelayId, this.playoutDelayMinMs, MAX_PLAYOUT_DELAY_MS);
    try {
      this.#track!.sendMessageBinary(buf);
      this.#packets++;
      this.#octets += buf.length - 12;
      this.#ctx.counters.rtpForwarded++;
      this.#ctx.counters.rtpBytesForwarded += buf.length;
    } catch {
      this.#ctx.counters.sendErrors++;
    }
  }

  /** @internal The publisher's SR of `layer`, mapped into this consumer's stream. */
  sendSenderReport(sr: SenderReport, layer: number): void {
    const sw = this.#switch;
    if (!this.#ready || layer !== sw.current) return;
    const mapped = { ...sr, rtpTimestamp: sw.outTimestampOf(sr.rtpTimestamp) };
    try {
      this.#track!.sendMessageBinary(buildSenderReport(this.ssrc, mapped, this.#packets, this.#octets));
    } catch {
      this.#ctx.counters.sendErrors++;
    }
  }

  /** A NACKed packet, resent at most once per RESEND_INTERVAL_MS and within the subscriber's budget. */
  #retransmit(outSeq: number, nowMs: number): boolean {
    const sw = this.#switch;
    if (!this.#resends.shouldResend(outSeq, nowMs)) {
      // Too old to resend, yet the picture waits for it: a key frame restarts it now.
      if (this.kind === 'video' && sw.current >= 0 && !this.#producer.closed && this.#resends.needsKeyFrame(outSeq, nowMs)) {
        this.#ctx.counters.keyFramesForUnrepairedLoss++;
        this.#producer.requestKeyFrame(sw.current);
      }
      return false;
    }
    const srcSeq = sw.sourceSeq(outSeq);
    if (srcSeq < 0) return false;
    const r = this.#retransmission;
    const pkt = this.#producer.packetForRetransmission(sw.current, srcSeq, r);
    if (!pkt) return false;
    if (this.#feedback && !this.#feedback.mayRetransmit(pkt.length, nowMs)) return false;
    const vp8 = this.#retransmissionVp8;
    parseVp8(pkt, rtpPayloadOffset(pkt), vp8);
    r.pictureIdBits = vp8.pictureIdBits;
    if (!sw.accept(sw.current, r, nowMs)) return false;
    this.#send(pkt, sw, vp8);
    this.#resends.onResent(outSeq, nowMs);
    return true;
  }

  #handleRtcp(buf: Buffer): void {
    if (this.#closed || !isRtcp(buf)) return;
    const counters = this.#ctx.counters;
    counters.rtcpIn++;
    try {
      // The engine hands a compound packet to every track whose SSRC it mentions: act only on
      // feedback aimed at this consumer's SSRC so nothing is handled twice.
      for (const p of parseRtcpCompound(buf)) {
        if (p.type === 200 || p.type === 201) {
          forEachReportBlock(buf, p, (block) => {
            if (block.ssrc !== this.ssrc) return;
            const report = this.#reportedLoss.next(block);
            if (report) this.#feedback?.onLoss(report, this.kind);
          });
          continue;
        }
        const fb = readFeedback(buf, p);
        if (!fb) continue;
        if (fb.kind === 'remb') {
          if (fb.ssrcs.includes(this.ssrc)) this.#feedback?.onRemb(fb.bitrate);
        } else if (
          (fb.kind === 'pli' && fb.mediaSsrc === this.ssrc) ||
          (fb.kind === 'fir' && fb.mediaSsrcs.includes(this.ssrc))
        ) {
          const sw = this.#switch;
          const layer = sw.switching ? sw.target : sw.current;
          if (!this.#producer.closed && layer >= 0) this.#producer.requestKeyFrame(layer);
        } else if (fb.kind === 'nack' && fb.mediaSsrc === this.ssrc) {
          const now = performance.now();
          this.#feedback?.onNack(fb.seqs.length, now);
          for (const seq of fb.seqs) if (this.#retransmit(seq, now)) counters.nackRetransmits++;
        }
      }
    } catch {
      counters.rtcpParseErrors++;
    }
  }
}
