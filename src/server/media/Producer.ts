import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Track } from 'node-datachannel';
import { assertNotClosed, type MediaContext, type MediaKind } from './common.js';
import type { Consumer } from './Consumer.js';
import {
  buildPli,
  ReceiveStats,
  rtpPayloadType,
  rtpSequenceNumber,
  rtpSsrc,
  rtpTimestamp,
  type ReportBlock,
  type SenderReport,
} from './rtp.js';
import type { CodecInfo } from './sdp.js';

/**
 * At most one key-frame request per interval reaches the publisher: a subscriber that cannot
 * decode (e.g. wrong E2EE key) sends PLIs continuously, and every key frame costs all
 * subscribers bandwidth. Requests inside the window are coalesced into one at its end.
 */
export const KEY_FRAME_REQUEST_INTERVAL_MS = 500;

// ~3 s of VGA video at ~150 packets/s: enough to answer NACKs on any sane RTT.
const HISTORY_SIZE = 512;

export interface ProducerEvents {
  close: [];
}

export interface ProducerStats {
  packets: number;
  bytes: number;
  /** PLIs actually sent to the publisher. */
  keyFrameRequests: number;
  consumers: number;
}

/** @internal */
export interface ProducerInit {
  peerId: string;
  kind: MediaKind;
  mid: string;
  payloadType: number;
  codec: CodecInfo;
  ssrc: number | undefined;
  ctx: MediaContext;
  /** SSRC the publish connection uses as RTCP sender. */
  rtcpSsrc: number;
  onFirstPacket: () => void;
}

/** One incoming track (audio or video) of a publishing participant. */
export class Producer extends EventEmitter<ProducerEvents> {
  readonly id = randomUUID();
  readonly peerId: string;
  readonly kind: MediaKind;
  /** @internal */
  readonly mid: string;
  /** @internal */
  readonly payloadType: number;
  /** @internal */
  readonly codec: CodecInfo;
  #ssrc: number | undefined;
  #ctx: MediaContext;
  #rtcpSsrc: number;
  #onFirstPacket: (() => void) | undefined;
  #track: Track | undefined;
  #consumers = new Set<Consumer>();
  #recv: ReceiveStats;
  #lastKeyFrameRequestAt = -Infinity;
  #keyFrameTimer: NodeJS.Timeout | undefined;
  #historySeqs: Int32Array | undefined;
  #historyPackets: (Buffer | undefined)[] | undefined;
  #packets = 0;
  #bytes = 0;
  #keyFrameRequests = 0;
  #closed = false;

  /** @internal Created by PublishTransport only. */
  constructor(init: ProducerInit) {
    super();
    this.peerId = init.peerId;
    this.kind = init.kind;
    this.mid = init.mid;
    this.payloadType = init.payloadType;
    this.codec = init.codec;
    this.#ssrc = init.ssrc;
    this.#ctx = init.ctx;
    this.#rtcpSsrc = init.rtcpSsrc;
    this.#onFirstPacket = init.onFirstPacket;
    this.#recv = new ReceiveStats(init.codec.clockRate);
    if (this.kind === 'video') {
      this.#historySeqs = new Int32Array(HISTORY_SIZE).fill(-1);
      this.#historyPackets = new Array<Buffer | undefined>(HISTORY_SIZE);
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  get ssrc(): number | undefined {
    return this.#ssrc;
  }

  stats(): ProducerStats {
    return {
      packets: this.#packets,
      bytes: this.#bytes,
      keyFrameRequests: this.#keyFrameRequests,
      consumers: this.#consumers.size,
    };
  }

  /** Asks the publisher for a key frame (PLI), at most once per KEY_FRAME_REQUEST_INTERVAL_MS. */
  requestKeyFrame(): void {
    assertNotClosed(this.#closed, 'Producer');
    if (this.kind !== 'video') return;
    const wait = this.#lastKeyFrameRequestAt + KEY_FRAME_REQUEST_INTERVAL_MS - performance.now();
    if (wait <= 0) {
      this.#sendPli();
      return;
    }
    this.#ctx.counters.keyFrameRequestsCoalesced++;
    this.#keyFrameTimer ??= setTimeout(() => {
      this.#keyFrameTimer = undefined;
      if (!this.#closed) this.#sendPli();
    }, wait).unref();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#keyFrameTimer);
    this.#keyFrameTimer = undefined;
    for (const consumer of [...this.#consumers]) consumer.close();
    this.#consumers.clear();
    this.#historyPackets = undefined;
    this.#track = undefined;
    this.emit('close');
  }

  #sendPli(): void {
    const track = this.#track;
    // Before the track is open nothing has been sent yet, and a browser's first frame is a key
    // frame anyway: nothing to request, and no reason to start the rate-limit window.
    if (!track || this.#ssrc === undefined || !track.isOpen()) return;
    this.#lastKeyFrameRequestAt = performance.now();
    try {
      track.sendMessageBinary(buildPli(this.#rtcpSsrc, this.#ssrc));
      this.#keyFrameRequests++;
      this.#ctx.counters.keyFrameRequestsSent++;
    } catch {
      this.#ctx.counters.sendErrors++;
    }
  }

  /** @internal */
  attachTrack(track: Track): void {
    this.#track = track;
  }

  /** @internal */
  get track(): Track | undefined {
    return this.#track;
  }

  /** @internal */
  addConsumer(consumer: Consumer): void {
    this.#consumers.add(consumer);
  }

  /** @internal */
  removeConsumer(consumer: Consumer): void {
    this.#consumers.delete(consumer);
  }

  /** @internal Hot path: one call per incoming RTP packet. */
  handleRtp(buf: Buffer, nowMs: number): void {
    const counters = this.#ctx.counters;
    counters.rtpIn++;
    if (this.#closed || rtpPayloadType(buf) !== this.payloadType) {
      // RTX, FEC or anything we did not negotiate: never forwarded.
      counters.rtpDropped++;
      return;
    }
    const ssrc = rtpSsrc(buf);
    if (this.#ssrc === undefined) {
      // The offer declared no SSRC (only possible with a single m-line): adopt the first one.
      this.#ssrc = ssrc;
    } else if (ssrc !== this.#ssrc) {
      counters.rtpDropped++;
      return;
    }
    this.#packets++;
    this.#bytes += buf.length;
    const seq = rtpSequenceNumber(buf);
    this.#recv.onRtp(seq, rtpTimestamp(buf), nowMs);
    if (this.#historySeqs && this.#historyPackets) {
      const slot = seq & (HISTORY_SIZE - 1);
      this.#historySeqs[slot] = seq;
      this.#historyPackets[slot] = buf;
    }
    if (this.#onFirstPacket) {
      const cb = this.#onFirstPacket;
      this.#onFirstPacket = undefined;
      cb();
    }
    // Each consumer rewrites PT and SSRC in place before sending; the engine copies on send,
    // so one buffer serves all consumers without per-subscriber allocation.
    for (const consumer of this.#consumers) consumer.forward(buf);
  }

  /** @internal */
  handleSenderReport(sr: SenderReport, nowMs: number): void {
    if (this.#closed || sr.ssrc !== this.#ssrc) return;
    this.#recv.onSenderReport(sr, nowMs);
    // Subscribers need the publisher's NTP<->RTP mapping to lip-sync audio with video; RTP
    // timestamps pass through unchanged, so the mapping stays valid under the consumer's SSRC.
    for (const consumer of this.#consumers) consumer.sendSenderReport(sr);
  }

  /** @internal */
  reportBlock(nowMs: number): ReportBlock | undefined {
    if (this.#closed || this.#ssrc === undefined) return undefined;
    return this.#recv.reportBlock(this.#ssrc, nowMs);
  }

  /** @internal For NACK answers. The buffer's PT/SSRC are whatever the last consumer wrote. */
  packetForRetransmission(seq: number): Buffer | undefined {
    const slot = seq & (HISTORY_SIZE - 1);
    if (!this.#historySeqs || this.#historySeqs[slot] !== seq) return undefined;
    return this.#historyPackets?.[slot];
  }
}
