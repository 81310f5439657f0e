import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Track } from 'node-datachannel';
import { assertNotClosed } from './checks.js';
import { isolateListeners, type MediaContext, type MediaKind } from './context.js';
import type { Consumer } from './consumer.js';
import { KeyFrameRequestLimiter } from './keyframes.js';
import { MissingPackets } from './retransmission.js';
import { LayerDemand, LayerRate, type LayerState } from './layers.js';
import {
  buildNack,
  buildPli,
  findHeaderExtension,
  newVp8Info,
  parseVp8,
  ReceiveStats,
  rtpPayloadOffset,
  type ReportBlock,
  type SenderReport,
} from './rtp.js';
import type { CodecInfo } from './sdp.js';
import { AudioLevel, SILENT_LEVEL } from './speakers.js';
import type { SourcePacket } from './switcher.js';

/**
 * At most one key-frame request per interval reaches each layer of the publisher: a subscriber
 * that cannot decode (e.g. wrong E2EE key) sends PLIs continuously, and every key frame costs
 * all subscribers bandwidth. Requests inside the window are coalesced into one at its end.
 */
export const KEY_FRAME_REQUEST_INTERVAL_MS = 500;

// ~3 s of VGA video at ~150 packets/s: enough to answer NACKs on any sane RTT. Power of two.
const HISTORY_SIZE = 512;
/**
 * A subscriber that starts on a layer (or switches to it) is sent the layer's last key frame and
 * what followed it, when that key frame began at most this long ago: no round trip to the
 * publisher's encoder (50–80 ms on loopback, more on a real network). A newcomer's members ask for
 * that key frame as soon as they re-key for it (the `keyFrame` message). Older than this, the
 * burst would replay too much video at once, and the frame may be of an epoch before the
 * newcomer's.
 */
export const KEY_FRAME_REPLAY_MS = 150;
/** A layer without packets for this long is not offered to subscribers. */
const LAYER_ACTIVE_MS = 1500;
/** Upstream gaps up to this many packets are NACKed to the publisher. */
const MAX_NACK_GAP = 64;

export interface ProducerEvents {
  close: [];
  /**
   * Which simulcast layers the publisher should send now: from layer `from` up to, not
   * including, `layers` (smallest first); the others are needed by nobody (see LayerDemand).
   * Emitted on changes only; a publisher starts sending all.
   */
  sendLayers: [layers: number, from: number, thinSmall: boolean];
}

export interface ProducerStats {
  packets: number;
  bytes: number;
  /** PLIs actually sent to the publisher. */
  keyFrameRequests: number;
  consumers: number;
  /** Simulcast layers, smallest first: size from their last key frame, rate, whether they flow. */
  layers: LayerState[];
}

/** @internal */
export interface LayerInit {
  ssrc: number | undefined;
  rid: string | undefined;
}

/** @internal */
export interface ProducerInit {
  peerId: string;
  kind: MediaKind;
  mid: string;
  payloadType: number;
  codec: CodecInfo;
  /** Simulcast layers, smallest first; one for a single-layer stream. */
  layers: LayerInit[];
  /** Header extension id of ssrc-audio-level (audio; 0: not negotiated). */
  audioLevelExtensionId?: number;
  ctx: MediaContext;
  /** SSRC the publish connection uses as RTCP sender. */
  rtcpSsrc: number;
  onFirstPacket: () => void;
}

/** @internal One simulcast layer (or the only stream) of a producer. */
export class ProducerLayer {
  readonly index: number;
  readonly rid: string | undefined;
  ssrc: number | undefined;
  readonly recv: ReceiveStats;
  readonly limiter = new KeyFrameRequestLimiter(KEY_FRAME_REQUEST_INTERVAL_MS);
  keyFrameTimer: NodeJS.Timeout | undefined;
  readonly state: LayerState = { width: 0, height: 0, bitrate: 0, active: false };
  lastPacketAt = -Infinity;
  bytesSinceTick = 0;
  readonly rate = new LayerRate();
  /** Packets lost upstream already added to the counters (see reportBlocks). */
  lostCounted = 0;
  /** Highest sequence number seen (for upstream NACKs), -1 before the first packet. */
  maxSeq = -1;
  /** Gaps NACKed and not filled yet, to NACK again (video only). */
  readonly missing = new MissingPackets();
  nextNackRetryAt = 0;
  /** Where the last key frame began (its first packet's sequence number, -1: none yet) and when it arrived. */
  keyFrameSeq = -1;
  keyFrameAt = 0;
  historySeqs: Int32Array | undefined;
  historyTimestamps: Uint32Array | undefined;
  historyPictureIds: Int32Array | undefined;
  historyTl0s: Int16Array | undefined;
  historyPackets: (Buffer | undefined)[] | undefined;

  constructor(index: number, init: LayerInit, clockRate: number, video: boolean) {
    this.index = index;
    this.rid = init.rid;
    this.ssrc = init.ssrc;
    this.recv = new ReceiveStats(clockRate);
    if (video) {
      this.historySeqs = new Int32Array(HISTORY_SIZE).fill(-1);
      this.historyTimestamps = new Uint32Array(HISTORY_SIZE);
      this.historyPictureIds = new Int32Array(HISTORY_SIZE);
      this.historyTl0s = new Int16Array(HISTORY_SIZE);
      this.historyPackets = new Array<Buffer | undefined>(HISTORY_SIZE);
    }
  }
}

/** One incoming track (audio or video, one or more simulcast layers) of a publishing participant. */
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
  /** @internal Smallest first. */
  readonly layers: readonly ProducerLayer[];
  /** @internal Loudness from ssrc-audio-level (audio with the extension negotiated). */
  readonly audioLevel: AudioLevel | undefined;
  #audioLevelExtensionId: number;
  #extLength = new Int32Array(1);
  #ctx: MediaContext;
  #rtcpSsrc: number;
  #onFirstPacket: (() => void) | undefined;
  #track: Track | undefined;
  /** An array, not a Set: iterated once per packet. */
  #consumers: Consumer[] = [];
  /** Audio: whether the speaker selection forwards this microphone now. */
  #forwarding = true;
  /** The packet being forwarded, parsed once and read by every consumer. */
  #packet: SourcePacket & { layer: number } = {
    layer: 0,
    seq: 0,
    timestamp: 0,
    keyFrameStart: true,
    pictureId: -1,
    pictureIdBits: 0,
    tl0: -1,
  };
  #vp8 = newVp8Info();
  /** Parsing scratch for replayKeyFrame (never the one of the packet being forwarded). */
  #replayVp8 = newVp8Info();
  #nackSeqs: number[] = [];
  #packets = 0;
  #bytes = 0;
  #keyFrameRequests = 0;
  /** Simulcast video only: which layers subscribers' tiles need. */
  #demand: LayerDemand | undefined;
  /** Whether some subscriber asks for the smallest layer thinner (SmallLayerSqueeze). */
  #thinSmall = false;
  #closed = false;

  /** @internal Created by PublishTransport only. */
  constructor(init: ProducerInit) {
    super();
    this.peerId = init.peerId;
    this.kind = init.kind;
    this.mid = init.mid;
    this.payloadType = init.payloadType;
    this.codec = init.codec;
    this.#ctx = init.ctx;
    isolateListeners(this, init.ctx);
    this.#rtcpSsrc = init.rtcpSsrc;
    this.#onFirstPacket = init.onFirstPacket;
    const layers = init.layers.length > 0 ? init.layers : [{ ssrc: undefined, rid: undefined }];
    this.layers = layers.map((l, i) => new ProducerLayer(i, l, init.codec.clockRate, init.kind === 'video'));
    if (init.kind === 'video' && this.layers.length > 1) {
      this.#demand = new LayerDemand(this.layers.length);
    }
    this.#audioLevelExtensionId = init.audioLevelExtensionId ?? 0;
    this.audioLevel = init.kind === 'audio' && this.#audioLevelExtensionId > 0 ? new AudioLevel() : undefined;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal The first layer's SSRC. */
  get ssrc(): number | undefined {
    return this.layers[0]!.ssrc;
  }

  /** @internal */
  get consumers(): readonly Consumer[] {
    return this.#consumers;
  }

  stats(): ProducerStats {
    return {
      packets: this.#packets,
      bytes: this.#bytes,
      keyFrameRequests: this.#keyFrameRequests,
      consumers: this.#consumers.length,
      layers: this.layers.map((l) => ({ ...l.state })),
    };
  }

  /**
   * Asks the publisher for a key frame (PLI) of one layer, or of every layer that flows when
   * none is given; at most once per KEY_FRAME_REQUEST_INTERVAL_MS per layer.
   */
  requestKeyFrame(layer?: number): void {
    assertNotClosed(this.#closed, 'Producer');
    if (this.kind !== 'video') return;
    if (layer === undefined) {
      for (const l of this.layers) if (l.state.active || this.layers.length === 1) this.#requestLayerKeyFrame(l);
      return;
    }
    const l = this.layers[layer];
    if (l) this.#requestLayerKeyFrame(l);
  }

  #requestLayerKeyFrame(layer: ProducerLayer): void {
    const decision = layer.limiter.request(performance.now());
    if (decision.send) {
      this.#sendPli(layer);
      return;
    }
    this.#ctx.counters.keyFrameRequestsCoalesced++;
    if (decision.alreadyScheduled) return;
    layer.keyFrameTimer = setTimeout(() => {
      layer.keyFrameTimer = undefined;
      if (this.#closed) layer.limiter.cancel();
      else this.#sendPli(layer);
    }, decision.delayMs).unref();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const l of this.layers) {
      clearTimeout(l.keyFrameTimer);
      l.keyFrameTimer = undefined;
      l.historyPackets = undefined;
    }
    for (const consumer of [...this.#consumers]) consumer.close();
    this.#consumers = [];
    this.#track = undefined;
    this.emit('close');
  }

  #sendPli(layer: ProducerLayer): void {
    const track = this.#track;
    // Before the track is open nothing has been sent yet, and a browser's first frame is a key
    // frame anyway: nothing to request, and no reason to start the rate-limit window.
    if (!track || layer.ssrc === undefined || !track.isOpen()) {
      layer.limiter.cancel();
      return;
    }
    layer.limiter.sent(performance.now());
    try {
      track.sendMessageBinary(buildPli(this.#rtcpSsrc, layer.ssrc));
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
    if (!this.#consumers.includes(consumer)) this.#consumers = [...this.#consumers, consumer];
    consumer.setTargetLayer(this.kind === 'audio' ? (this.#forwarding ? 0 : -1) : -1);
  }

  /** @internal */
  removeConsumer(consumer: Consumer): void {
    this.#consumers = this.#consumers.filter((c) => c !== consumer);
  }

  /** @internal Audio: the speaker selection turned this microphone on or off for everyone. */
  setForwarding(on: boolean): void {
    if (on === this.#forwarding) return;
    this.#forwarding = on;
    for (const c of this.#consumers) c.setTargetLayer(on ? 0 : -1);
  }

  /** @internal */
  get forwarding(): boolean {
    return this.#forwarding;
  }

  /** Muted by the host (audio): nothing of it is forwarded, whatever the speaker selection says. */
  silenced = false;

  /**
   * @internal Hot path: one call per incoming RTP packet of this producer (the transport has
   * already matched its SSRC to `layer`). Parses the header once, in place; each consumer then
   * rewrites the same buffer and sends it (the engine copies on send): no allocation per
   * subscriber.
   */
  handleRtp(buf: Buffer, layer: ProducerLayer, nowMs: number): void {
    const counters = this.#ctx.counters;
    counters.rtpIn++;
    if (this.#closed || (buf[1]! & 0x7f) !== this.payloadType) {
      // RTX, FEC or anything we did not negotiate: never forwarded.
      counters.rtpDropped++;
      return;
    }
    const seq = (buf[2]! << 8) | buf[3]!;
    const timestamp = buf.readUInt32BE(4);
    this.#packets++;
    this.#bytes += buf.length;
    counters.rtpBytesIn += buf.length;
    layer.bytesSinceTick += buf.length;
    layer.lastPacketAt = nowMs;
    if (!layer.state.active) layer.state.active = true;
    layer.recv.onRtp(seq, timestamp, nowMs);
    this.#checkGap(layer, seq, nowMs);
    const p = this.#packet;
    p.layer = layer.index;
    p.seq = seq;
    p.timestamp = timestamp;
    if (this.kind === 'video') {
      const vp8 = this.#vp8;
      if (!parseVp8(buf, rtpPayloadOffset(buf), vp8)) {
        // Padding-only (bandwidth probe) or truncated: keeps the sequence continuous downstream.
        vp8.keyFrameStart = false;
      }
      p.keyFrameStart = vp8.keyFrameStart;
      p.pictureId = vp8.pictureIdOffset >= 0 ? vp8.pictureId : -1;
      p.pictureIdBits = vp8.pictureIdBits;
      p.tl0 = vp8.tl0Offset >= 0 ? vp8.tl0 : -1;
      if (vp8.keyFrameStart && vp8.width > 0) {
        layer.state.width = vp8.width;
        layer.state.height = vp8.height;
      }
      if (vp8.keyFrameStart) {
        layer.keyFrameSeq = seq;
        layer.keyFrameAt = nowMs;
      }
      const slot = seq & (HISTORY_SIZE - 1);
      layer.historySeqs![slot] = seq;
      layer.historyTimestamps![slot] = timestamp;
      layer.historyPictureIds![slot] = p.pictureId;
      layer.historyTl0s![slot] = p.tl0;
      layer.historyPackets![slot] = buf;
    } else if (this.audioLevel) {
      const at = findHeaderExtension(buf, this.#audioLevelExtensionId, this.#extLength);
      this.audioLevel.add(at >= 0 ? buf[at]! & 0x7f : SILENT_LEVEL);
    }
    if (this.#onFirstPacket) {
      const cb = this.#onFirstPacket;
      this.#onFirstPacket = undefined;
      cb();
    }
    if (!this.#forwarding || this.silenced) return;
    const consumers = this.#consumers;
    for (let i = 0; i < consumers.length; i++) consumers[i]!.forward(buf, p, nowMs, vp8OffsetsOf(this.kind, this.#vp8));
  }

  /**
   * Sequence gaps from the publisher are NACKed at once and again with backoff until the packet
   * arrives (retransmissions come on the same SSRC: no RTX upstream): a hole left unrepaired
   * costs every subscriber a key frame.
   */
  #checkGap(layer: ProducerLayer, seq: number, nowMs: number): void {
    if (layer.maxSeq < 0) {
      layer.maxSeq = seq;
      return;
    }
    const delta = (seq - layer.maxSeq) & 0xffff;
    if (delta === 0 || delta >= 0x8000) {
      // Duplicate or late (maybe our NACK's answer).
      layer.missing.arrived(seq);
      return;
    }
    const prev = layer.maxSeq;
    layer.maxSeq = seq;
    if (this.kind !== 'video' || layer.ssrc === undefined) return;
    const missing = this.#nackSeqs;
    missing.length = 0;
    if (delta > 1 && delta <= MAX_NACK_GAP) {
      for (let s = 1; s < delta; s++) {
        const lost = (prev + s) & 0xffff;
        missing.push(lost);
        layer.missing.add(lost, nowMs);
      }
    }
    if (layer.missing.size > 0 && nowMs >= layer.nextNackRetryAt) {
      layer.nextNackRetryAt = nowMs + 20;
      layer.missing.due(nowMs, missing);
    }
    if (missing.length === 0) return;
    const track = this.#track;
    if (!track?.isOpen()) return;
    try {
      track.sendMessageBinary(buildNack(this.#rtcpSsrc, layer.ssrc, missing));
      this.#ctx.counters.nacksSent++;
    } catch {
      this.#ctx.counters.sendErrors++;
    }
  }

  /** @internal */
  handleSenderReport(sr: SenderReport, layer: ProducerLayer, nowMs: number): void {
    if (this.#closed) return;
    layer.recv.onSenderReport(sr, nowMs);
    // Subscribers need the publisher's NTP<->RTP mapping to lip-sync audio with video; each
    // consumer maps the timestamp into its own continuous stream.
    for (const consumer of this.#consumers) consumer.sendSenderReport(sr, layer.index);
  }

  /** @internal Receiver-report blocks, one per layer that has received packets. */
  reportBlocks(nowMs: number, out: ReportBlock[]): void {
    if (this.#closed) return;
    for (const l of this.layers) {
      if (l.ssrc === undefined) continue;
      const block = l.recv.reportBlock(l.ssrc, nowMs);
      if (!block) continue;
      out.push(block);
      // Upstream loss for /metrics, counted once per report interval.
      if (block.cumulativeLost > l.lostCounted) this.#ctx.counters.rtpLost += block.cumulativeLost - l.lostCounted;
      l.lostCounted = block.cumulativeLost;
    }
  }

  /** @internal Periodic: layer rates and activity for the layer selection. */
  tick(nowMs: number, elapsedMs: number): void {
    for (const l of this.layers) {
      const rate = elapsedMs > 0 ? (l.bytesSinceTick * 8000) / elapsedMs : 0;
      l.bytesSinceTick = 0;
      l.state.bitrate = l.rate.update(rate);
      l.state.active = nowMs - l.lastPacketAt < LAYER_ACTIVE_MS;
    }
  }

  /**
   * @internal Periodic, after the subscribers chose their layers: asks the publisher to stop
   * encoding layers no tile needs, or to resume them (`sendLayers`).
   */
  updateDemand(nowMs: number): void {
    if (!this.#demand || this.#closed) return;
    let highest = -1;
    let lowest = -1;
    for (const c of this.#consumers) {
      if (c.demand > highest) highest = c.demand;
      if (c.lowestNeeded >= 0 && (lowest < 0 || c.lowestNeeded < lowest)) lowest = c.lowestNeeded;
    }
    let thin = false;
    for (const c of this.#consumers) thin ||= c.thinSmall;
    const d = this.#demand;
    const count = d.update(highest, nowMs);
    const from = d.updateFrom(lowest, nowMs);
    const thinChanged = thin !== this.#thinSmall;
    this.#thinSmall = thin;
    if (count !== undefined || from !== undefined || thinChanged) this.emit('sendLayers', d.count, d.from, thin);
  }

  /** @internal Layer states for the selector (live objects, updated by tick()). */
  get layerStates(): readonly LayerState[] {
    return this.layers.map((l) => l.state);
  }

  /**
   * @internal Sends `consumer` the last key frame of `layer` and every packet of the layer since,
   * in order, if that key frame began at most KEY_FRAME_REPLAY_MS ago and all of it is still
   * stored (see KEY_FRAME_REPLAY_MS). Returns whether it did.
   */
  replayKeyFrame(consumer: Consumer, layer: number, nowMs: number): boolean {
    const l = this.layers[layer];
    if (this.#closed || this.kind !== 'video' || !l?.historySeqs || l.keyFrameSeq < 0 || nowMs - l.keyFrameAt > KEY_FRAME_REPLAY_MS) return false;
    const count = ((l.maxSeq - l.keyFrameSeq) & 0xffff) + 1;
    if (count > HISTORY_SIZE / 2 || l.historySeqs[l.keyFrameSeq & (HISTORY_SIZE - 1)] !== l.keyFrameSeq) return false;
    const p: SourcePacket & { layer: number } = { layer, seq: 0, timestamp: 0, keyFrameStart: false, pictureId: -1, pictureIdBits: 0, tl0: -1 };
    const vp8 = this.#replayVp8;
    for (let i = 0; i < count; i++) {
      const seq = (l.keyFrameSeq + i) & 0xffff;
      const slot = seq & (HISTORY_SIZE - 1);
      const buf = l.historyPackets![slot];
      // A hole (lost upstream, never repaired) stays a hole: the subscriber NACKs it like any other.
      if (l.historySeqs[slot] !== seq || !buf) continue;
      if (!parseVp8(buf, rtpPayloadOffset(buf), vp8)) vp8.keyFrameStart = false;
      p.seq = seq;
      p.timestamp = l.historyTimestamps![slot]!;
      // The buffer's PictureID holds what the last consumer wrote: the source's is in the history.
      p.pictureId = l.historyPictureIds![slot]!;
      p.pictureIdBits = vp8.pictureIdBits;
      p.tl0 = l.historyTl0s![slot]!;
      p.keyFrameStart = vp8.keyFrameStart;
      consumer.forward(buf, p, nowMs, vp8);
    }
    return true;
  }

  /**
   * @internal For NACK answers: the stored packet of `layer` with source sequence number `seq`,
   * and its source fields in `out` (the buffer's header holds whatever the last consumer wrote).
   */
  packetForRetransmission(layer: number, seq: number, out: SourcePacket): Buffer | undefined {
    const l = this.layers[layer];
    if (!l?.historySeqs) return undefined;
    const slot = seq & (HISTORY_SIZE - 1);
    if (l.historySeqs[slot] !== seq) return undefined;
    out.seq = seq;
    out.timestamp = l.historyTimestamps![slot]!;
    out.pictureId = l.historyPictureIds![slot]!;
    out.tl0 = l.historyTl0s![slot]!;
    out.keyFrameStart = false;
    return l.historyPackets?.[slot];
  }
}

/** Where PictureID / TL0PICIDX sit in the current packet (consumers write them there). */
export interface Vp8Offsets {
  pictureIdOffset: number;
  pictureIdBits: number;
  tl0Offset: number;
}

const NO_OFFSETS: Vp8Offsets = { pictureIdOffset: -1, pictureIdBits: 0, tl0Offset: -1 };

function vp8OffsetsOf(kind: MediaKind, vp8: Vp8Offsets): Vp8Offsets {
  return kind === 'video' ? vp8 : NO_OFFSETS;
}
