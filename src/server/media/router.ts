import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import nodeDataChannel from 'node-datachannel';
import { assertNotClosed, assertValidPeerId, shown } from './checks.js';
import { isolateListeners, type MediaContext, type MediaLogger } from './context.js';
import { newCounters, type MediaCounters } from './counters.js';
import { forgetTracks } from './live-tracks.js';
import type { Producer } from './producer.js';
import { PublishTransport } from './publish-transport.js';
import { LoudestSpeakers, type LoudestSpeakersOptions } from './speakers.js';
import { SubscribeTransport } from './subscribe-transport.js';

export type { MediaKind, MediaLogger } from './context.js';
export type { MediaCounters } from './counters.js';
export type { Consumer } from './consumer.js';
export type { Producer, ProducerStats } from './producer.js';
export type { PublishTransport } from './publish-transport.js';
export type { SubscribeTransport, ViewportTile } from './subscribe-transport.js';

/** How often layers, speakers and bandwidth are re-evaluated. */
const TICK_MS = 500;

export interface RouterOptions {
  /** Local address ICE binds to (e.g. '127.0.0.1' in tests). Default: all interfaces. */
  bindAddress?: string;
  portRangeBegin?: number;
  portRangeEnd?: number;
  /** Public address behind NAT, relay entrance (see candidates.ts). */
  announcedAddress?: string;
  relayEntrance?: boolean;
  /** libdatachannel URLs, e.g. 'stun:stun.example.org:3478', 'turn:user:pass@host:3478'. */
  iceServers?: string[];
  /** REMB sent to each publisher, bit/s for all its tracks together. Default 2 Mbit/s. */
  maxIncomingBitrate?: number;
  /** Receives rare warnings (never SDP, keys or packet bytes). Default: silent. */
  logger?: MediaLogger;
  /** Loudest-speaker selection (default: 3 microphones forwarded, 6 dB margin, 1.5 s hold). */
  speakers?: Partial<LoudestSpeakersOptions>;
}

export interface RouterEvents {
  /** A publisher in this call started a track. */
  producer: [Producer];
  close: [];
}

const DEFAULT_MAX_INCOMING_BITRATE = 2_000_000;

const liveRouters = new Set<Router>();

/** One per call. Owns its transports; media never crosses Routers. */
export class Router extends EventEmitter<RouterEvents> {
  readonly id = randomUUID();
  #ctx: MediaContext;
  #publishTransports = new Set<PublishTransport>();
  #subscribeTransports = new Set<SubscribeTransport>();
  #producers = new Map<string, Producer>();
  #speakers: LoudestSpeakers;
  #timer: NodeJS.Timeout;
  #ticks = 0;
  #lastTickAt = performance.now();
  #closed = false;

  constructor(opts: RouterOptions = {}) {
    super();
    const rtcConfig: MediaContext['rtcConfig'] = { iceServers: opts.iceServers ?? [] };
    if (opts.bindAddress !== undefined) rtcConfig.bindAddress = opts.bindAddress;
    if (opts.portRangeBegin !== undefined) rtcConfig.portRangeBegin = opts.portRangeBegin;
    if (opts.portRangeEnd !== undefined) rtcConfig.portRangeEnd = opts.portRangeEnd;
    const portRange = opts.portRangeBegin !== undefined && opts.portRangeEnd !== undefined ? { begin: opts.portRangeBegin, end: opts.portRangeEnd } : undefined;
    this.#ctx = {
      rtcConfig,
      network: { bindAddress: opts.bindAddress, announcedAddress: opts.announcedAddress, portRange, relayEntrance: opts.relayEntrance },
      maxIncomingBitrate: opts.maxIncomingBitrate ?? DEFAULT_MAX_INCOMING_BITRATE,
      logger: opts.logger,
      counters: newCounters(),
    };
    isolateListeners(this, this.#ctx);
    this.#speakers = new LoudestSpeakers(opts.speakers);
    this.#timer = setInterval(() => this.#tick(), TICK_MS).unref();
    liveRouters.add(this);
  }

  /** Microphones forwarded now (producer ids): the loudest few. */
  get speakers(): ReadonlySet<string> {
    return this.#speakers.selected;
  }

  /**
   * Periodic: layer rates and activity, the loudest speakers, subscribers' bandwidth, and then
   * each subscriber's layers. O(consumers) every TICK_MS; nothing of this is on the packet path.
   */
  #tick(): void {
    if (this.#closed) return;
    const now = performance.now();
    const elapsed = now - this.#lastTickAt;
    this.#lastTickAt = now;
    const updateBandwidth = this.#ticks++ % 2 === 1;
    const loudness = new Map<string, number>();
    for (const p of this.#producers.values()) {
      p.tick(now, elapsed);
      if (p.audioLevel) loudness.set(p.id, p.audioLevel.settle());
    }
    this.#speakers.update(loudness, now);
    for (const p of this.#producers.values()) {
      // Microphones without the audio-level extension cannot be ranked: they are always forwarded.
      if (p.audioLevel) p.setForwarding(this.#speakers.has(p.id));
    }
    for (const t of this.#subscribeTransports) t.tick(now, updateBandwidth);
    for (const p of this.#producers.values()) p.updateDemand(now);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Every live producer of this call, by id. */
  get producers(): ReadonlyMap<string, Producer> {
    return this.#producers;
  }

  /** Every open receiving transport of this call (one per participant, admitted or waiting). */
  get subscribeTransports(): ReadonlySet<SubscribeTransport> {
    return this.#subscribeTransports;
  }

  /** Packet-path counters (a snapshot). */
  stats(): MediaCounters {
    return { ...this.#ctx.counters };
  }

  /** Peers whose microphone the host muted: their audio is not forwarded, now or after they publish again. */
  readonly #silenced = new Set<string>();

  /** Stop (or resume) forwarding a peer's audio at once; no key is needed to drop packets. */
  silence(peerId: string, on: boolean): void {
    if (on) this.#silenced.add(peerId);
    else this.#silenced.delete(peerId);
    for (const p of this.#producers.values()) if (p.peerId === peerId && p.kind === 'audio') p.silenced = on;
  }

  /** Only for participants the room has admitted: whatever they send is forwarded. */
  createPublishTransport(peerId: string): PublishTransport {
    assertNotClosed(this.#closed, 'Router');
    assertValidPeerId(peerId);
    const transport = new PublishTransport(peerId, this.#ctx);
    this.#publishTransports.add(transport);
    transport.on('producer', (producer) => {
      this.#producers.set(producer.id, producer);
      // A new microphone starts silent: it is forwarded once it is among the loudest.
      if (producer.audioLevel) producer.setForwarding(false);
      if (producer.kind === 'audio' && this.#silenced.has(peerId)) producer.silenced = true;
      producer.once('close', () => this.#producers.delete(producer.id));
      this.emit('producer', producer);
    });
    transport.once('close', () => this.#publishTransports.delete(transport));
    return transport;
  }

  createSubscribeTransport(peerId: string, onOffer: (sdp: string) => void): SubscribeTransport {
    assertNotClosed(this.#closed, 'Router');
    assertValidPeerId(peerId);
    if (typeof onOffer !== 'function') throw new TypeError(`onOffer must be a function, got ${shown(onOffer)}`);
    const transport = new SubscribeTransport(
      peerId,
      this.#ctx,
      onOffer,
      (producer) => this.#producers.get(producer.id) === producer,
    );
    this.#subscribeTransports.add(transport);
    transport.once('close', () => this.#subscribeTransports.delete(transport));
    return transport;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    // Subscribers first: closing publishers would otherwise trigger pointless renegotiations.
    for (const t of [...this.#subscribeTransports]) t.close();
    for (const t of [...this.#publishTransports]) t.close();
    liveRouters.delete(this);
    this.emit('close');
  }
}

/**
 * Closes every Router and stops the native engine's threads. Call once at process exit (after
 * it no Router can be created): open PeerConnections otherwise keep the process alive.
 */
export function shutdownMediaEngine(): void {
  for (const router of [...liveRouters]) router.close();
  nodeDataChannel.cleanup();
  forgetTracks();
}
