import { EventEmitter } from 'node:events';
import nodeDataChannel, { type PeerConnection, type Track } from 'node-datachannel';
import { ConnectionCandidates } from './candidates.js';
import { assertNotClosed, InvalidStateError, shown } from './checks.js';
import { isolateListeners, warn, type MediaContext } from './context.js';
import { holdUntilClosed } from './live-tracks.js';
import { Producer, type ProducerLayer } from './producer.js';
import {
  buildReceiverReport,
  buildRemb,
  findHeaderExtension,
  isRtcp,
  isValidRtp,
  parseRtcpCompound,
  randomSsrc,
  readSenderReport,
  type ReportBlock,
} from './rtp.js';
import { waitForGathering } from './gathering.js';
import { prepareRemoteOffer, type OfferedMedia } from './sdp.js';
import { TRANSPORT_CC_INTERVAL_MS, TransportFeedbackRecorder } from './transport-cc.js';

/** Where packets of one SSRC go. */
interface Route {
  producer: Producer;
  layer: ProducerLayer;
}

/** Unknown SSRCs tried this often (waiting for a rid/mid extension) before they are ignored for good. */
const MAX_CLASSIFY_ATTEMPTS = 200;

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
  /** Announced address and relay entrance for our answers. */
  #candidates: ConnectionCandidates;
  #pc: PeerConnection;
  #producers = new Map<string, Producer>();
  #producersByMid = new Map<string, Producer>();
  #tracksByMid = new Map<string, Track>();
  /** The one m-line the engine knows (see prepareRemoteOffer): every packet arrives on its track. */
  #engineMid: string | undefined;
  #media: readonly OfferedMedia[] = [];
  #routes = new Map<number, Route | null>();
  #classifyAttempts = new Map<number, number>();
  /** One-entry cache: consecutive packets mostly share an SSRC. */
  #lastSsrc = -1;
  #lastRoute: Route | null = null;
  #extLength = new Int32Array(1);
  /** Our RTCP sender SSRC towards this publisher. */
  #rtcpSsrc = randomSsrc();
  #reportTimer: NodeJS.Timeout | undefined;
  /** Transport-wide sequence number extension id (0: not negotiated), its arrivals, their feedback. */
  #transportCcId = 0;
  #arrivals = new TransportFeedbackRecorder();
  #feedbackTimer: NodeJS.Timeout | undefined;
  #answering = false;
  #closed = false;

  /** @internal Use Router.createPublishTransport(). */
  constructor(peerId: string, ctx: MediaContext) {
    super();
    this.peerId = peerId;
    this.#ctx = ctx;
    this.#candidates = new ConnectionCandidates(ctx.network ?? {});
    isolateListeners(this, ctx);
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
    if (this.#answering) throw new InvalidStateError('PublishTransport.answer() is already in progress');
    if (typeof offerSdp !== 'string' || offerSdp.length === 0) throw new TypeError(`offer SDP is empty: got ${shown(offerSdp)}`);
    this.#answering = true;
    try {
      const prepared = prepareRemoteOffer(offerSdp, this.#engineMid);
      if (!prepared.media.some((m) => m.sending)) {
        throw new Error('offer has no audio or video the SFU can receive (needs opus or VP8)');
      }
      if (this.#engineMid !== undefined && prepared.engineMid !== this.#engineMid) {
        throw new Error('a renegotiation must keep the first audio/video m-line');
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
      const engineAnswer = this.#pc.localDescription()?.sdp;
      if (!engineAnswer) throw new Error('media engine produced no answer');
      this.#engineMid = prepared.engineMid;
      this.#media = prepared.media;
      this.#transportCcId = prepared.media.find((m) => m.transportCcExtensionId > 0)?.transportCcExtensionId ?? 0;
      this.#reconcileProducers(prepared.media);
      const answer = prepared.completeAnswer(await this.#candidates.describe(engineAnswer, (m) => warn(this.#ctx, m)));
      assertNotClosed(this.#closed, 'PublishTransport');
      return answer;
    } finally {
      this.#answering = false;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#candidates.close();
    clearInterval(this.#reportTimer);
    clearInterval(this.#feedbackTimer);
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
        existing &&
        existing.payloadType === m.payloadType &&
        existing.layers.length === m.layers.length &&
        m.layers.every((l, i) => l.ssrc === undefined || l.ssrc === existing.layers[i]!.ssrc);
      if (existing && (!m.sending || !unchanged)) existing.close();
      if (!m.sending || unchanged) continue;
      const producer = new Producer({
        peerId: this.peerId,
        kind: m.kind,
        mid: m.mid,
        payloadType: m.payloadType,
        codec: m.codec,
        layers: m.layers,
        audioLevelExtensionId: m.audioLevelExtensionId,
        ctx: this.#ctx,
        rtcpSsrc: this.#rtcpSsrc,
        onFirstPacket: () => this.#sendReports(),
      });
      const track = this.#engineTrack();
      if (track) producer.attachTrack(track);
      this.#producers.set(producer.id, producer);
      this.#producersByMid.set(m.mid, producer);
      producer.once('close', () => {
        this.#producers.delete(producer.id);
        if (this.#producersByMid.get(producer.mid) === producer) this.#producersByMid.delete(producer.mid);
        this.#forgetRoutes();
      });
      created.push(producer);
    }
    this.#forgetRoutes();
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
    // The engine knows one m-line, so this is the one track; PLIs and NACKs for any SSRC go out on it.
    for (const producer of this.#producers.values()) producer.attachTrack(track);
    track.onOpen(() => {
      this.#reportTimer ??= setInterval(() => this.#sendReports(), REPORT_INTERVAL_MS).unref();
      this.#feedbackTimer ??= setInterval(() => this.#sendTransportFeedback(), TRANSPORT_CC_INTERVAL_MS).unref();
    });
    track.onMessage((buf) => this.#onPacket(buf));
  }

  #engineTrack(): Track | undefined {
    return this.#engineMid === undefined ? undefined : this.#tracksByMid.get(this.#engineMid);
  }

  /** Hot path: every packet of the connection. */
  #onPacket(buf: Buffer): void {
    if (this.#closed) return;
    const now = performance.now();
    if (isRtcp(buf)) {
      this.#ctx.counters.rtcpIn++;
      try {
        for (const p of parseRtcpCompound(buf)) {
          const sr = readSenderReport(buf, p);
          if (!sr) continue;
          const route = this.#routes.get(sr.ssrc);
          if (route) route.producer.handleSenderReport(sr, route.layer, now);
        }
      } catch {
        this.#ctx.counters.rtcpParseErrors++;
      }
      return;
    }
    if (!isValidRtp(buf)) {
      this.#ctx.counters.rtpDropped++;
      return;
    }
    if (this.#transportCcId > 0) {
      const at = findHeaderExtension(buf, this.#transportCcId, this.#extLength);
      if (at >= 0 && this.#extLength[0] === 2) this.#arrivals.onPacket((buf[at]! << 8) | buf[at + 1]!, now);
    }
    const ssrc = buf.readUInt32BE(8);
    let route: Route | null | undefined;
    if (ssrc === this.#lastSsrc) route = this.#lastRoute;
    else {
      route = this.#routes.get(ssrc);
      if (route === undefined) route = this.#classify(buf, ssrc);
      if (route !== undefined) {
        this.#lastSsrc = ssrc;
        this.#lastRoute = route;
      }
    }
    if (route) route.producer.handleRtp(buf, route.layer, now);
    else this.#ctx.counters.rtpDropped++;
  }

  #forgetRoutes(): void {
    this.#routes.clear();
    this.#classifyAttempts.clear();
    this.#lastSsrc = -1;
    this.#lastRoute = null;
  }

  /**
   * Which producer and layer an SSRC belongs to, in this order: declared in the offer (a=ssrc,
   * a=ssrc-group:SIM); the mid and rid header extensions (rid simulcast, whose SSRCs browsers do
   * not declare); the payload type, for a single-layer stream whose SSRC was not declared.
   * Returns undefined while undecided (a later packet may carry the extensions), null when the
   * SSRC is ignored for good (RTX, FEC, unknown).
   */
  #classify(buf: Buffer, ssrc: number): Route | null | undefined {
    const decide = (route: Route | null): Route | null => {
      this.#routes.set(ssrc, route);
      this.#classifyAttempts.delete(ssrc);
      if (route && route.layer.ssrc === undefined) route.layer.ssrc = ssrc;
      return route;
    };
    for (const producer of this.#producers.values()) {
      for (const layer of producer.layers) if (layer.ssrc === ssrc) return decide({ producer, layer });
    }
    const pt = buf[1]! & 0x7f;
    let byMid: Producer | undefined;
    for (const m of this.#media) {
      if (m.midExtensionId === 0) continue;
      const at = findHeaderExtension(buf, m.midExtensionId, this.#extLength);
      if (at < 0) continue;
      const mid = buf.toString('ascii', at, at + this.#extLength[0]!);
      byMid = this.#producersByMid.get(mid);
      break;
    }
    const candidates = byMid ? [byMid] : [...this.#producers.values()].filter((p) => p.payloadType === pt);
    for (const producer of candidates) {
      if (producer.payloadType !== pt) continue;
      const media = this.#media.find((m) => m.mid === producer.mid);
      const free = producer.layers.filter((l) => l.ssrc === undefined);
      if (free.length === 0) continue;
      if (media && media.ridExtensionId > 0 && producer.layers.some((l) => l.rid !== undefined)) {
        const at = findHeaderExtension(buf, media.ridExtensionId, this.#extLength);
        if (at < 0) continue;
        const rid = buf.toString('ascii', at, at + this.#extLength[0]!);
        const layer = free.find((l) => l.rid === rid);
        if (layer) return decide({ producer, layer });
        continue;
      }
      // A single-layer stream whose SSRC was not declared: adopt the first one with its payload type.
      if (producer.layers.length === 1) return decide({ producer, layer: producer.layers[0]! });
    }
    const attempts = (this.#classifyAttempts.get(ssrc) ?? 0) + 1;
    if (attempts >= MAX_CLASSIFY_ATTEMPTS || this.#classifyAttempts.size > 64) return decide(null);
    this.#classifyAttempts.set(ssrc, attempts);
    return undefined;
  }

  /** When each transport-wide sequence number arrived, for the browser's delay-based controller. */
  #sendTransportFeedback(): void {
    if (this.#closed || this.#transportCcId === 0) return;
    const track = this.#engineTrack();
    if (!track?.isOpen()) return;
    let mediaSsrc = 0;
    for (const p of this.#producers.values()) mediaSsrc ||= p.layers[0]?.ssrc ?? 0;
    const packet = this.#arrivals.build(this.#rtcpSsrc, mediaSsrc);
    if (!packet) return;
    try {
      track.sendMessageBinary(packet);
    } catch {
      this.#ctx.counters.sendErrors++;
    }
  }

  /**
   * Receiver reports + REMB. With transport-cc negotiated the browser's delay-based controller
   * sets the rate (see #sendTransportFeedback) and the REMB is only its upper limit (our cap);
   * a browser without transport-cc falls back to REMB + loss. RRs feed loss and RTT.
   */
  #sendReports(): void {
    if (this.#closed) return;
    const now = performance.now();
    const blocks: ReportBlock[] = [];
    for (const producer of this.#producers.values()) producer.reportBlocks(now, blocks);
    const track = this.#engineTrack();
    if (!track?.isOpen() || blocks.length === 0) return;
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
