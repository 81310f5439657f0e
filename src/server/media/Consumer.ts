import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Track } from 'node-datachannel';
import { holdUntilClosed, type MediaContext, type MediaKind } from './common.js';
import type { Producer } from './Producer.js';
import {
  buildSenderReport,
  isRtcp,
  parseRtcpCompound,
  readFeedback,
  rewriteRtp,
  type SenderReport,
} from './rtp.js';

export interface ConsumerEvents {
  close: [];
}

/** @internal */
export interface ConsumerInit {
  producer: Producer;
  mid: string;
  ssrc: number;
  ctx: MediaContext;
  onClose: (consumer: Consumer) => void;
}

/** One producer's track forwarded to one subscriber, under that subscriber's own SSRC and PT. */
export class Consumer extends EventEmitter<ConsumerEvents> {
  readonly id = randomUUID();
  readonly producerId: string;
  readonly kind: MediaKind;
  /** @internal */
  readonly mid: string;
  /** @internal */
  readonly ssrc: number;
  #producer: Producer;
  #ctx: MediaContext;
  #onClose: (consumer: Consumer) => void;
  #track: Track | undefined;
  #trackOpen = false;
  #payloadType: number | undefined;
  /** Track open and answer applied: packets may flow. Cached for the hot path. */
  #ready = false;
  #started = false;
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
    this.#ctx = init.ctx;
    this.#onClose = init.onClose;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  get producer(): Producer {
    return this.#producer;
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
    this.#update();
  }

  #update(): void {
    this.#ready = !this.#closed && this.#trackOpen && this.#payloadType !== undefined;
    if (this.#ready && !this.#started) {
      this.#started = true;
      // A browser decodes nothing until it sees a key frame, and publishers send one only at
      // start or on request: a late subscriber would otherwise wait forever.
      if (this.kind === 'video' && !this.#producer.closed) this.#producer.requestKeyFrame();
    }
  }

  /** @internal Hot path. Mutates buf (PT, SSRC); the engine copies it on send. */
  forward(buf: Buffer): void {
    if (!this.#ready) return;
    rewriteRtp(buf, this.#payloadType!, this.ssrc);
    try {
      this.#track!.sendMessageBinary(buf);
      this.#packets++;
      this.#octets += buf.length - 12;
      this.#ctx.counters.rtpForwarded++;
    } catch {
      this.#ctx.counters.sendErrors++;
    }
  }

  /** @internal */
  sendSenderReport(sr: SenderReport): void {
    if (!this.#ready) return;
    try {
      this.#track!.sendMessageBinary(buildSenderReport(this.ssrc, sr, this.#packets, this.#octets));
    } catch {
      this.#ctx.counters.sendErrors++;
    }
  }

  #handleRtcp(buf: Buffer): void {
    if (this.#closed || !isRtcp(buf)) return;
    const counters = this.#ctx.counters;
    counters.rtcpIn++;
    try {
      // The engine hands a compound packet to every track whose SSRC it mentions: act only on
      // feedback aimed at this consumer's SSRC so nothing is handled twice.
      for (const p of parseRtcpCompound(buf)) {
        const fb = readFeedback(buf, p);
        if (!fb) continue;
        if (
          (fb.kind === 'pli' && fb.mediaSsrc === this.ssrc) ||
          (fb.kind === 'fir' && fb.mediaSsrcs.includes(this.ssrc))
        ) {
          if (!this.#producer.closed) this.#producer.requestKeyFrame();
        } else if (fb.kind === 'nack' && fb.mediaSsrc === this.ssrc) {
          for (const seq of fb.seqs) {
            const pkt = this.#producer.packetForRetransmission(seq);
            if (!pkt) continue;
            this.forward(pkt);
            counters.nackRetransmits++;
          }
        }
      }
    } catch {
      counters.rtcpParseErrors++;
    }
  }
}
