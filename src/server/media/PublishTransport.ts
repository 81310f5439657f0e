import { EventEmitter } from 'node:events';
import nodeDataChannel, { type PeerConnection, type Track } from 'node-datachannel';
import { assertNotClosed, holdUntilClosed, randomSsrc, type MediaContext } from './common.js';
import { Producer } from './Producer.js';
import {
  buildReceiverReport,
  buildRemb,
  isRtcp,
  isValidRtp,
  parseRtcpCompound,
  readSenderReport,
  type ReportBlock,
} from './rtp.js';
import { waitForGathering } from './gathering.js';
import { prepareRemoteOffer, type OfferedMedia } from './sdp.js';

const REPORT_INTERVAL_MS = 1000;

export interface PublishTransportEvents {
  producer: [Producer];
  close: [];
}

/**
 * The connection a participant publishes on. The browser offers (sendonly audio + video, all
 * candidates inside); answer() returns our answer with all our candidates inside.
 */
export class PublishTransport extends EventEmitter<PublishTransportEvents> {
  readonly peerId: string;
  #ctx: MediaContext;
  #pc: PeerConnection;
  #producers = new Map<string, Producer>();
  #producersByMid = new Map<string, Producer>();
  #tracksByMid = new Map<string, Track>();
  /** Our RTCP sender SSRC towards this publisher. */
  #rtcpSsrc = randomSsrc();
  #reportTimer: NodeJS.Timeout | undefined;
  #answering = false;
  #closed = false;

  /** @internal Use Router.createPublishTransport(). */
  constructor(peerId: string, ctx: MediaContext) {
    super();
    this.peerId = peerId;
    this.#ctx = ctx;
    // We answer explicitly: auto-negotiation could start offers of its own.
    this.#pc = new nodeDataChannel.PeerConnection(`pub-${peerId}`, {
      ...ctx.rtcConfig,
      disableAutoNegotiation: true,
    });
    this.#pc.onTrack((track) => this.#onTrack(track));
    this.#pc.onStateChange((state) => {
      if (state === 'failed' || state === 'closed') this.close();
    });
  }

  get producers(): ReadonlyMap<string, Producer> {
    return this.#producers;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Applies the browser's offer (first one or a renegotiation) and resolves with the answer.
   * Emits 'producer' for each newly sending m-line; m-lines that stop sending close theirs.
   */
  async answer(offerSdp: string): Promise<string> {
    assertNotClosed(this.#closed, 'PublishTransport');
    if (this.#answering) throw new Error('PublishTransport.answer() is already in progress');
    if (typeof offerSdp !== 'string' || offerSdp.length === 0) throw new Error('offer SDP is empty');
    this.#answering = true;
    try {
      const prepared = prepareRemoteOffer(offerSdp);
      if (!prepared.media.some((m) => m.sending)) {
        throw new Error('offer has no audio or video the SFU can receive (needs opus or VP8)');
      }
      try {
        this.#pc.setRemoteDescription(prepared.sdp, 'offer');
        this.#pc.setLocalDescription('answer');
      } catch {
        // The engine's message may quote SDP lines (ICE password, fingerprint): not passed on.
        throw new Error('offer rejected by the media engine');
      }
      await waitForGathering(this.#pc);
      assertNotClosed(this.#closed, 'PublishTransport');
      const answer = this.#pc.localDescription()?.sdp;
      if (!answer) throw new Error('media engine produced no answer');
      this.#reconcileProducers(prepared.media);
      return answer;
    } finally {
      this.#answering = false;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#reportTimer);
    for (const producer of [...this.#producers.values()]) producer.close();
    for (const track of this.#tracksByMid.values()) {
      try {
        track.close();
      } catch {
        // Already destroyed with the connection.
      }
    }
    this.#tracksByMid.clear();
    try {
      this.#pc.close();
    } catch {
      // Already torn down by the engine.
    }
    this.emit('close');
  }

  #reconcileProducers(media: readonly OfferedMedia[]): void {
    const created: Producer[] = [];
    for (const m of media) {
      const existing = this.#producersByMid.get(m.mid);
      const unchanged =
        existing && existing.payloadType === m.payloadType && existing.ssrc === m.ssrc;
      if (existing && (!m.sending || !unchanged)) existing.close();
      if (!m.sending || unchanged) continue;
      const producer = new Producer({
        peerId: this.peerId,
        kind: m.kind,
        mid: m.mid,
        payloadType: m.payloadType,
        codec: m.codec,
        ssrc: m.ssrc,
        ctx: this.#ctx,
        rtcpSsrc: this.#rtcpSsrc,
        onFirstPacket: () => this.#sendReports(),
      });
      const track = this.#tracksByMid.get(m.mid);
      if (track) producer.attachTrack(track);
      this.#producers.set(producer.id, producer);
      this.#producersByMid.set(m.mid, producer);
      producer.once('close', () => {
        this.#producers.delete(producer.id);
        if (this.#producersByMid.get(producer.mid) === producer) this.#producersByMid.delete(producer.mid);
      });
      created.push(producer);
    }
    for (const producer of created) if (!producer.closed) this.emit('producer', producer);
  }

  #onTrack(track: Track): void {
    holdUntilClosed(track);
    if (this.#closed) {
      track.close();
      return;
    }
    const mid = track.mid();
    this.#tracksByMid.set(mid, track);
    this.#producersByMid.get(mid)?.attachTrack(track);
    track.onOpen(() => {
      this.#reportTimer ??= setInterval(() => this.#sendReports(), REPORT_INTERVAL_MS).unref();
    });
    track.onMessage((buf) => this.#onPacket(mid, buf));
  }

  #onPacket(mid: string, buf: Buffer): void {
    if (this.#closed) return;
    const now = performance.now();
    if (isRtcp(buf)) {
      this.#ctx.counters.rtcpIn++;
      try {
        for (const p of parseRtcpCompound(buf)) {
          const sr = readSenderReport(buf, p);
          if (sr) this.#producersByMid.get(mid)?.handleSenderReport(sr, now);
        }
      } catch {
        this.#ctx.counters.rtcpParseErrors++;
      }
      return;
    }
    const producer = this.#producersByMid.get(mid);
    if (producer && isValidRtp(buf)) producer.handleRtp(buf, now);
    else this.#ctx.counters.rtpDropped++;
  }

  /**
   * Receiver reports + REMB, because transport-cc is stripped from the negotiation: without any
   * feedback Chromium's bandwidth estimate stays at its start value or collapses. A REMB within
   * the first seconds lifts the estimate straight to our cap; RRs feed loss and RTT.
   */
  #sendReports(): void {
    if (this.#closed) return;
    const now = performance.now();
    const blocks: ReportBlock[] = [];
    let track: Track | undefined;
    for (const producer of this.#producers.values()) {
      const block = producer.reportBlock(now);
      if (block) blocks.push(block);
      if (!track && producer.track?.isOpen()) track = producer.track;
    }
    if (!track || blocks.length === 0) return;
    const packet = Buffer.concat([
      buildReceiverReport(this.#rtcpSsrc, blocks),
      buildRemb(this.#rtcpSsrc, this.#ctx.maxIncomingBitrate, blocks.map((b) => b.ssrc)),
    ]);
    try {
      track.sendMessageBinary(packet);
    } catch {
      this.#ctx.counters.sendErrors++;
    }
  }
}
