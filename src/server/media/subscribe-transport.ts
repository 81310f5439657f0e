import { EventEmitter } from 'node:events';
import nodeDataChannel, { type Audio, type PeerConnection, type Track, type Video } from 'node-datachannel';
import { assertNotClosed, InvalidStateError, shown } from './checks.js';
import { isolateListeners, warn, type MediaContext } from './context.js';
import { holdUntilClosed } from './live-tracks.js';
import { ConnectionCandidates } from './candidates.js';
import { Consumer, type ConsumerFeedback } from './consumer.js';
import { waitForGathering } from './gathering.js';
import { allocateLayers, nextUpgradeBitrate, BandwidthEstimator, SmallLayerSqueeze, lowestNeeded, neededBitrate, tileDemand, type LayerState, type Tile } from './layers.js';
import type { Producer } from './producer.js';
import { PlayoutDelayFloor } from './playout-delay.js';
import { BandwidthProbe, PROBE_MS } from './probing.js';
import { RetransmissionBudget } from './retransmission.js';
import { randomSsrc } from './rtp.js';
import { answeredPayloadType, DOWNSTREAM, offerPlayoutDelay, parseAnswer, PLAYOUT_DELAY_EXTENSION, withoutCandidates } from './sdp.js';

/** Consumer mids are "0", "1", …; this one can never collide with them. */
const PLACEHOLDER_MID = 'keepalive';

/** Probe packets: their size, how often they go out, and a payload type no offer of ours uses. */
const PROBE_PACKET_BYTES = 1200;
const PROBE_PACING_MS = 10;
const PROBE_PAYLOAD_TYPE = 127;

/** A participant the subscriber's viewport has not mentioned yet: assume a small tile. */
const NEW_TILE = { width: 1, height: 1 };

export interface SubscribeTransportEvents {
  close: [];
}

/** How big the subscriber shows one participant's video, in device pixels (0×0: not shown). */
export interface ViewportTile {
  participantId: string;
  width: number;
  height: number;
}

/**
 * The connection a participant receives everyone else on. The server offers; every change
 * (consume, consumer closed) leads to a new offer via onOffer, one at a time: while an offer is
 * outstanding, changes queue up and go out together in the next one.
 *
 * A closed consumer's m-line is removed (port 0): the browser ends that track. Marking it
 * inactive instead would need a second Track wrapper for the same native track, which
 * node-datachannel can never release (see holdUntilClosed). Because Chromium tears down the
 * whole transport once every m-line of the BUNDLE group is removed, the first m-line is an
 * inactive placeholder that stays for the connection's lifetime (no track, no cost).
 */
export class SubscribeTransport extends EventEmitter<SubscribeTransportEvents> {
  readonly peerId: string;
  #ctx: MediaContext;
  /** Announced address and relay entrance for our offers. */
  #candidates: ConnectionCandidates;
  #pc: PeerConnection;
  #onOffer: (sdp: string) => void;
  #ownsProducer: (producer: Producer) => boolean;
  #consumers = new Map<string, Consumer>();
  /** Consumers whose m-line is in an offer the browser has not answered yet. */
  #offered = new Set<Consumer>();
  #pendingAdd: Consumer[] = [];
  /** A consumer whose m-line the browser still has was closed. */
  #removalPending = false;
  #placeholder: Track | undefined;
  /** Consumers whose m-line the browser rejected: closing them needs no new offer. */
  #silentlyClosed = new WeakSet<Consumer>();
  #usedSsrcs = new Set<number>();
  #nextMid = 0;
  #scheduled = false;
  /** connect() asked for a first offer even with nothing to forward yet. */
  #connectWanted = false;
  #negotiating = false;
  #offerOutstanding = false;
  /**
   * Offers leave our candidates out until the browser has answered one, and the next offer
   * carries them. A browser that has them checks at once, before its answer reaches us; ICE then
   * connects as libdatachannel 0.24.5 takes the answer, and DTLS starts before the answer's
   * fingerprint is stored: the connection fails (4 of 10 loaded runs of the browser test; see
   * docs/MEDIA.md). Without them it waits for our checks, sent once the answer is stored, or for
   * the next offer (behind a NAT that lets nothing in first, or relayed). A connection made while
   * a guest waits to be let in is ready by the time a person's ✓ comes; one made and used at once
   * (a ✓ given the instant the knock shows) shows its first frame ~300 ms later than before
   * (bench/join --reaction-ms 0; with a 1 s reaction, no difference).
   */
  #ourCandidates: 'withheld' | 'owed' | 'sent' = 'withheld';
  #closed = false;
  #bandwidth = new BandwidthEstimator();
  #playoutFloor = new PlayoutDelayFloor();
  #probe = new BandwidthProbe();
  /** What the subscriber's shown streams would take at the layers their tiles want (bit/s). */
  #needed = 0;
  /** The budget at which some tile would get a larger layer (bit/s; Infinity: none would). */
  #nextStep = Infinity;
  /** Video tiles shown at the last allocation, and how many of them on the smallest layer. */
  #shown = 0;
  #onSmallest = 0;
  #squeeze = new SmallLayerSqueeze();
  #thinSmall = false;
  /** Probe packets: paced by a timer while a probe sends, never in any SDP. */
  #probeTimer: NodeJS.Timeout | undefined;
  #probeRate = 0;
  #probeEndsAt = 0;
  #probeCredit = 0;
  #probeAt = 0;
  #packetsAtProbe = 0;
  #probePacket: Buffer | undefined;
  /** What we sent this subscriber over the last tick (bit/s), and the byte count it came from. */
  #sendingRate = 0;
  #octetsAtTick = 0;
  /**
   * What the audio streams took over the last tick (bit/s): the estimate is for everything sent,
   * so video gets what audio leaves. Counted as video, two people's audio (~80 kbit/s with
   * headers) put a 640×480 layer on a 400 kbit/s downlink in the three-person lab call: 14 % lost
   * and the picture frozen 5 s until the estimate came down.
   */
  #audioRate = 0;
  #audioOctetsAtTick = 0;
  /**
   * Octets sent by consumers since closed: the sending rate is measured on a total that never
   * falls. Summed over the open consumers only, it read 0 for the tick in which someone left, and
   * a budget of 0 asked every publisher at once to restart the small layer it had stopped: the
   * encoders' reconfiguration froze the others' video for 2-8 s (three-person test, Firefox and
   * Chromium, on a loaded machine).
   */
  #octetsOfClosed = 0;
  #audioOctetsOfClosed = 0;
  #tickAt = performance.now();
  /** Tile per publisher peerId; undefined until the subscriber sends its first viewport. */
  #tiles: Map<string, { width: number; height: number }> | undefined;
  /** Every participant any viewport named: one never named is new, not hidden. */
  #named = new Set<string>();
  #feedback: ConsumerFeedback = {
    onRemb: (bitrate) => {
      const now = performance.now();
      const estimate = this.#bandwidth.estimate;
      this.#bandwidth.onRemb(bitrate, this.#sendingRate, now);
      // A link that just narrowed: step down now, not at the next tick.
      if (this.#bandwidth.estimate < estimate * 0.8) this.allocate();
      if (this.#probe.onRemb(bitrate, now)) this.#stopProbing();
    },
    onLoss: (report, kind) => {
      // During a probe, and until its reports are in, loss is the probe's: not the estimator's.
      const now = performance.now();
      if (kind === 'video' ? this.#probe.onLoss(report, now) : this.#probe.probing) return;
      this.#bandwidth.onLoss(report, now);
      if (kind === 'video') this.#playoutFloor.onLoss(report);
    },
    onNack: (count, nowMs) => {
      if (this.#probe.onNack(count, this.#packetsSent() - this.#packetsAtProbe, nowMs)) {
        this.#stopProbing();
      }
    },
    onReady: () => this.allocate(),
    mayRetransmit: (bytes, nowMs) => this.#retransmissions.take(bytes, this.#bandwidth.estimate, nowMs),
  };
  #retransmissions = new RetransmissionBudget();

  /** @internal Use Router.createSubscribeTransport(). */
  constructor(
    peerId: string,
    ctx: MediaContext,
    onOffer: (sdp: string) => void,
    ownsProducer: (producer: Producer) => boolean,
  ) {
    super();
    this.peerId = peerId;
    this.#ctx = ctx;
    this.#candidates = new ConnectionCandidates(ctx.network ?? {});
    isolateListeners(this, ctx);
    this.#onOffer = onOffer;
    this.#ownsProducer = ownsProducer;
    // We decide when to offer; the engine must not start offers of its own.
    this.#pc = new nodeDataChannel.PeerConnection(`sub-${peerId}`, {
      ...ctx.rtcConfig,
      disableAutoNegotiation: true,
    });
    this.#pc.onStateChange((state) => {
      if (state === 'failed' || state === 'closed') this.close();
    });
  }

  get consumers(): ReadonlyMap<string, Consumer> {
    return this.#consumers;
  }

  /** The subscriber's bandwidth estimate and what was sent over the last tick (bit/s), for diagnostics. */
  get rates(): { estimate: number; sending: number; audio: number } {
    return { estimate: this.#bandwidth.estimate, sending: this.#sendingRate, audio: this.#audioRate };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal Where the offer/answer exchange stands (for diagnosing a subscriber that gets nothing). */
  get negotiation(): { offerOutstanding: boolean; negotiating: boolean; scheduled: boolean; pending: number; state: string } {
    let state = 'unknown';
    try {
      state = `${this.#pc.state()}/${this.#pc.signalingState()}`;
    } catch {
      // closed
    }
    return { offerOutstanding: this.#offerOutstanding, negotiating: this.#negotiating, scheduled: this.#scheduled, pending: this.#pendingAdd.length, state };
  }

  /** Starts forwarding producer to this subscriber; the browser gets it with the next offer. */
  consume(producer: Producer): Consumer {
    assertNotClosed(this.#closed, 'SubscribeTransport');
    if (!this.#ownsProducer(producer)) throw new TypeError(`Producer ${shown(producer?.id)} does not belong to this Router`);
    assertNotClosed(producer.closed, 'Producer');
    const consumer = new Consumer({
      producer,
      mid: String(this.#nextMid++),
      ssrc: this.#newSsrc(),
      ctx: this.#ctx,
      onClose: (c) => this.#onConsumerClosed(c),
      feedback: this.#feedback,
    });
    producer.addConsumer(consumer);
    this.#consumers.set(consumer.id, consumer);
    this.#pendingAdd.push(consumer);
    this.#scheduleNegotiation();
    return consumer;
  }

  /**
   * Offers the connection now, with nothing to forward yet (only the inactive placeholder),
   * so ICE and DTLS are done before the first consumer: a participant waiting to be let in is
   * connected already, and media flows within one renegotiation of being admitted.
   */
  connect(): void {
    assertNotClosed(this.#closed, 'SubscribeTransport');
    this.#connectWanted = true;
    this.#scheduleNegotiation();
  }

  /**
   * What the subscriber shows: each listed participant gets the smallest layer that fills its
   * tile, within the bandwidth; one listed 0×0, or named before and left out now (off-screen,
   * paused), gets nothing; one never named yet (just joined) gets the smallest layer until the
   * next viewport says otherwise.
   */
  setViewport(tiles: readonly ViewportTile[]): void {
    assertNotClosed(this.#closed, 'SubscribeTransport');
    const map = new Map<string, { width: number; height: number }>();
    for (const t of tiles) {
      this.#named.add(t.participantId);
      if (t.width > 0 && t.height > 0) map.set(t.participantId, { width: t.width, height: t.height });
    }
    this.#tiles = map;
    this.allocate();
  }

  /** @internal Periodic (Router tick): fold in loss reports, then choose layers again. */
  tick(nowMs: number, updateBandwidth: boolean): void {
    if (this.#closed) return;
    let octets = this.#octetsOfClosed;
    let audioOctets = this.#audioOctetsOfClosed;
    for (const c of this.#consumers.values()) {
      octets += c.octets;
      if (c.kind === 'audio') audioOctets += c.octets;
    }
    if (nowMs > this.#tickAt) {
      this.#sendingRate = (Math.max(0, octets - this.#octetsAtTick) * 8000) / (nowMs - this.#tickAt);
      this.#audioRate = (Math.max(0, audioOctets - this.#audioOctetsAtTick) * 8000) / (nowMs - this.#tickAt);
    }
    this.#octetsAtTick = octets;
    this.#audioOctetsAtTick = audioOctets;
    this.#tickAt = nowMs;
    if (updateBandwidth) {
      this.#bandwidth.update(nowMs, this.#sendingRate);
      // The probe weighs everything sent against the estimate: video's needs plus the audio.
      const audio = this.#audioRate;
      const probe = this.#probe.update(nowMs, this.#bandwidth.estimate, this.#needed + audio, this.#sendingRate, this.#bandwidth.lastLoss, this.#nextStep + audio);
      if (probe.confirmed !== undefined) this.#bandwidth.raiseTo(probe.confirmed);
      if (probe.paddingRate > 0) this.#startProbing(probe.paddingRate, nowMs);
      else this.#stopProbing();
      const floor = this.#playoutFloor.update(nowMs);
      for (const c of this.#consumers.values()) c.playoutDelayMinMs = floor;
      this.#thinSmall = this.#squeeze.update(nowMs, this.#playoutFloor.loss, this.#shown, this.#onSmallest);
    }
    this.allocate();
    for (const c of this.#consumers.values()) c.requestKeyFrameIfSwitching();
  }

  /** @internal Chooses a layer for every ready video consumer of this subscriber. */
  allocate(): void {
    if (this.#closed) return;
    const video: Consumer[] = [];
    const demands: { tile: Tile; layers: readonly LayerState[] }[] = [];
    for (const c of this.#consumers.values()) {
      if (c.kind !== 'video' || c.producer.closed) continue;
      const demand = { tile: this.#tileOf(c.producer.peerId), layers: c.producer.layerStates };
      // What the tile asks the publisher to encode, counted whether or not media flows yet.
      c.demand = tileDemand(demand.tile, demand.layers);
      c.lowestNeeded = -1;
      c.thinSmall = false;
      if (!c.ready) continue;
      video.push(c);
      demands.push(demand);
    }
    if (video.length === 0) {
      this.#shown = this.#onSmallest = 0;
      return;
    }
    // Video gets what the audio leaves of the estimate (and of what is sent).
    const audio = this.#audioRate;
    const chosen = allocateLayers(demands, Math.max(0, this.#bandwidth.estimate - audio));
    // What it gets now without loss it can take, whatever the estimate says: a publisher's
    // congested uplink shows in the subscriber's REMB too, and must not bring back the layer that
    // takes that uplink's share.
    const lossFree = this.#bandwidth.lastLoss < 0.02;
    // Nor on an estimate that crept up while little was sent: unproven beyond twice that.
    const budget = Math.max(0, Math.min(this.#bandwidth.estimate, 2 * this.#sendingRate) - audio);
    const lowest = lowestNeeded(demands, budget, lossFree ? Math.max(0, this.#sendingRate - audio) : 0);
    this.#needed = neededBitrate(demands);
    this.#nextStep = nextUpgradeBitrate(demands, chosen);
    for (let i = 0; i < video.length; i++) video[i]!.lowestNeeded = lowest[i]!;
    let shown = 0;
    let onSmallest = 0;
    for (let i = 0; i < video.length; i++) {
      let layer = chosen[i]!;
      // Nothing measured yet (a publisher that just started): take the first layer if shown.
      if (layer < 0 && demands[i]!.tile !== null && !demands[i]!.layers.some((l) => l.active)) layer = 0;
      video[i]!.setTargetLayer(layer);
      if (layer >= 0) shown++;
      if (layer === 0) onSmallest++;
      video[i]!.thinSmall = this.#thinSmall && layer === 0;
    }
    this.#shown = shown;
    this.#onSmallest = onSmallest;
  }

  #packetsSent(): number {
    let n = 0;
    for (const c of this.#consumers.values()) n += c.packets;
    return n;
  }

  /**
   * Sends probe packets at `rate` (bit/s) on top of the media until told to stop: 1200-byte RTP
   * packets under an SSRC and payload type the subscriber never negotiated, which its browser
   * decrypts and drops (see probing.ts).
   */
  #startProbing(rate: number, nowMs: number): void {
    this.#probeRate = rate;
    // Bandwidth ticks are a second apart: the probe's own end stops it (it sent for the whole
    // second, over three times PROBE_MS, and every overshoot filled the queue and lost media).
    this.#probeEndsAt = nowMs + PROBE_MS;
    if (this.#probeTimer) return;
    if (!this.#probePacket) {
      const b = Buffer.alloc(PROBE_PACKET_BYTES);
      b[0] = 0x80;
      b[1] = PROBE_PAYLOAD_TYPE;
      b.writeUInt32BE(this.#newSsrc(), 8);
      this.#probePacket = b;
    }
    this.#packetsAtProbe = this.#packetsSent();
    this.#probeCredit = 0;
    this.#probeAt = nowMs;
    this.#probeTimer = setInterval(() => this.#sendProbePackets(), PROBE_PACING_MS).unref();
  }

  #stopProbing(): void {
    clearInterval(this.#probeTimer);
    this.#probeTimer = undefined;
    this.#probeRate = 0;
  }

  #sendProbePackets(): void {
    const now = performance.now();
    if (now >= this.#probeEndsAt) {
      this.#stopProbing();
      return;
    }
    this.#probeCredit = Math.min(this.#probeCredit + ((now - this.#probeAt) * this.#probeRate) / 8000, 4 * PROBE_PACKET_BYTES);
    this.#probeAt = now;
    let carrier: Consumer | undefined;
    for (const c of this.#consumers.values()) {
      if (c.kind === 'video' && c.ready) {
        carrier = c;
        break;
      }
    }
    const b = this.#probePacket!;
    while (carrier && this.#probeCredit >= PROBE_PACKET_BYTES) {
      this.#probeCredit -= PROBE_PACKET_BYTES;
      const seq = (b.readUInt16BE(2) + 1) & 0xffff;
      b.writeUInt16BE(seq, 2);
      b.writeUInt32BE(Math.floor(now * 90) >>> 0, 4);
      if (!carrier.sendForeign(b)) break;
      this.#ctx.counters.probeBytes += PROBE_PACKET_BYTES;
    }
  }

  #tileOf(peerId: string): Tile {
    const tiles = this.#tiles;
    if (tiles === undefined) return undefined;
    if (tiles.has(peerId)) return tiles.get(peerId);
    return this.#named.has(peerId) ? null : NEW_TILE;
  }

  /** Applies the browser's answer to the outstanding offer. */
  async setAnswer(sdp: string): Promise<void> {
    assertNotClosed(this.#closed, 'SubscribeTransport');
    if (!this.#offerOutstanding) throw new InvalidStateError('SubscribeTransport has no outstanding offer to answer');
    if (typeof sdp !== 'string' || sdp.length === 0) throw new TypeError(`answer SDP is empty: got ${shown(sdp)}`);
    const answered = parseAnswer(sdp);
    try {
      this.#pc.setRemoteDescription(sdp, 'answer');
    } catch {
      // The engine's message may quote SDP lines (ICE password, fingerprint): not passed on.
      throw new Error('answer rejected by the media engine');
    }
    this.#offerOutstanding = false;
    if (this.#ourCandidates === 'withheld') this.#ourCandidates = 'owed';
    const offered = [...this.#offered];
    this.#offered.clear();
    for (const consumer of offered) {
      if (consumer.closed) continue;
      const media = answered.get(consumer.mid);
      const pt = media && !media.rejected ? answeredPayloadType(media, DOWNSTREAM[consumer.kind].codec) : undefined;
      if (pt === undefined) {
        // The browser refused this m-line or our codec: nothing can flow, and it needs no
        // deactivation either.
        this.#closeWithoutRenegotiation(consumer);
        continue;
      }
      const playoutDelayId = media!.extensions.get(PLAYOUT_DELAY_EXTENSION);
      if (playoutDelayId !== undefined) consumer.setPlayoutDelayExtension(playoutDelayId);
      consumer.setPayloadType(pt);
    }
    this.#scheduleNegotiation();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#candidates.close();
    this.#stopProbing();
    this.#pendingAdd = [];
    for (const consumer of [...this.#consumers.values()]) consumer.close();
    try {
      this.#placeholder?.close();
    } catch {
      // Already destroyed with the connection.
    }
    try {
      this.#pc.close();
    } catch {
      // Already torn down by the engine.
    }
    this.emit('close');
  }

  #newSsrc(): number {
    let ssrc: number;
    do ssrc = randomSsrc();
    while (this.#usedSsrcs.has(ssrc));
    this.#usedSsrcs.add(ssrc);
    return ssrc;
  }

  #closeWithoutRenegotiation(consumer: Consumer): void {
    this.#silentlyClosed.add(consumer);
    consumer.close();
  }

  #onConsumerClosed(consumer: Consumer): void {
    if (this.#consumers.delete(consumer.id)) {
      this.#octetsOfClosed += consumer.octets;
      if (consumer.kind === 'audio') this.#audioOctetsOfClosed += consumer.octets;
    }
    if (this.#closed) return;
    const pending = this.#pendingAdd.indexOf(consumer);
    if (pending >= 0) {
      // Never offered: just forget it.
      this.#pendingAdd.splice(pending, 1);
      return;
    }
    this.#offered.delete(consumer);
    if (this.#silentlyClosed.has(consumer)) return;
    this.#removalPending = true;
    this.#scheduleNegotiation();
  }

  /**
   * Sends the offer for what changed now rather than at the end of this turn, when the
   * connection can make it at once (already connected): the room has it reach the browser
   * before the message that makes the browser busy drawing the call.
   */
  offerNow(): void {
    if (!this.#scheduled || this.#closed) return;
    this.#scheduled = false;
    void this.#negotiate();
  }

  #scheduleNegotiation(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    // Deferred so that a burst of consume()/close() calls in one turn becomes one offer.
    setImmediate(() => {
      if (!this.#scheduled) return; // offerNow() came first
      this.#scheduled = false;
      void this.#negotiate();
    });
  }

  async #negotiate(): Promise<void> {
    if (this.#closed || this.#negotiating || this.#offerOutstanding) return;
    const firstOffer = this.#connectWanted && !this.#placeholder;
    if (this.#pendingAdd.length === 0 && !this.#removalPending && !firstOffer && this.#ourCandidates !== 'owed') return;
    this.#negotiating = true;
    try {
      if (!this.#placeholder) {
        const { payloadType, codec } = DOWNSTREAM.audio;
        const media = new nodeDataChannel.Audio(PLACEHOLDER_MID, 'Inactive');
        media.addAudioCodec(payloadType, `${codec.name}/${codec.clockRate}/${codec.channels ?? 1}`);
        this.#placeholder = this.#pc.addTrack(media);
        holdUntilClosed(this.#placeholder);
      }
      for (const consumer of this.#pendingAdd.splice(0)) {
        consumer.attachTrack(this.#pc.addTrack(this.#describe(consumer)));
        this.#offered.add(consumer);
      }
      // Closed consumers' native tracks are gone: the engine now describes their m-lines as
      // removed by itself.
      this.#removalPending = false;
      this.#pc.setLocalDescription('offer');
      // Once connected, nothing is gathered again: the offer goes out in this very turn (offerNow).
      if (this.#pc.gatheringState() !== 'complete') await waitForGathering(this.#pc);
      if (this.#closed) return;
      const engineSdp = this.#pc.localDescription()?.sdp;
      if (!engineSdp) throw new Error('media engine produced no offer');
      const described = this.#candidates.describe(engineSdp, (m) => warn(this.#ctx, m));
      const full = offerPlayoutDelay(typeof described === 'string' ? described : await described);
      if (this.#closed) return;
      const sdp = this.#ourCandidates === 'withheld' ? withoutCandidates(full) : full;
      if (this.#ourCandidates === 'owed') this.#ourCandidates = 'sent';
      this.#offerOutstanding = true;
      this.#onOffer(sdp);
    } catch (err) {
      warn(this.#ctx, `media: subscriber negotiation failed: ${err instanceof Error ? err.message : 'unknown'}`);
      this.close();
    } finally {
      this.#negotiating = false;
    }
  }

  #describe(consumer: Consumer): Video | Audio {
    const { payloadType, codec } = DOWNSTREAM[consumer.kind];
    if (consumer.kind === 'video') {
      const video = new nodeDataChannel.Video(consumer.mid, 'SendOnly');
      // No RTX downstream: retransmissions go out on the media SSRC (see Consumer NACK).
      // The binding rejects an explicit undefined profile.
      if (codec.fmtp === undefined) video.addVideoCodec(payloadType, codec.name);
      else video.addVideoCodec(payloadType, codec.name, codec.fmtp);
      this.#addSsrc(video, consumer);
      return video;
    }
    const audio = new nodeDataChannel.Audio(consumer.mid, 'SendOnly');
    const rtpmap = `${codec.name}/${codec.clockRate}/${codec.channels ?? 1}`;
    if (codec.fmtp === undefined) audio.addAudioCodec(payloadType, rtpmap);
    else audio.addAudioCodec(payloadType, rtpmap, codec.fmtp);
    this.#addSsrc(audio, consumer);
    return audio;
  }

  #addSsrc(media: Video | Audio, consumer: Consumer): void {
    const peerId = consumer.producer.peerId;
    // msid "<peerId> <consumerId>": the browser's ontrack then has streams[0].id === peerId,
    // which is how the UI groups a participant's audio and video.
    media.addSSRC(consumer.ssrc, peerId, peerId, consumer.id);
  }
}
