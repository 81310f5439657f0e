// Small shared pieces of the media layer: logger/counter plumbing, ids, validation.
import type { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import type { RtcConfig, Track } from 'node-datachannel';
import type { MediaNetwork } from './candidates.js';

export type MediaKind = 'audio' | 'video';

/** Only warnings go out, never packet contents or SDP (SDP carries DTLS fingerprints and ICE passwords). */
export interface MediaLogger {
  warn(msg: string): void;
}

/** Failures on the packet path are counted, not logged: one bad subscriber must not flood the logs. */
export interface MediaCounters {
  rtpIn: number;
  rtpForwarded: number;
  /** RTX, padding on unknown SSRCs, other payload types: never forwarded. */
  rtpDropped: number;
  /** RTP bytes (headers included) received from publishers and sent to subscribers. */
  rtpBytesIn: number;
  rtpBytesForwarded: number;
  /** Packets publishers sent that never arrived (sequence-number gaps, as in receiver reports). */
  rtpLost: number;
  rtcpIn: number;
  keyFrameRequestsSent: number;
  /** PLIs/FIRs swallowed by the per-producer rate limit (coalesced into the next one). */
  keyFrameRequestsCoalesced: number;
  nackRetransmits: number;
  /** NACKs the SFU sent to publishers for gaps in what they sent. */
  nacksSent: number;
  /** Bytes of bandwidth probes sent to subscribers (see probing.ts). */
  probeBytes: number;
  sendErrors: number;
  rtcpParseErrors: number;
  /** Event listeners (the call's code, outside the media layer) that threw: caught, the rest ran. */
  listenerErrors: number;
}

export function newCounters(): MediaCounters {
  return {
    rtpIn: 0,
    rtpForwarded: 0,
    rtpDropped: 0,
    rtpBytesIn: 0,
    rtpBytesForwarded: 0,
    rtpLost: 0,
    rtcpIn: 0,
    keyFrameRequestsSent: 0,
    keyFrameRequestsCoalesced: 0,
    nackRetransmits: 0,
    nacksSent: 0,
    probeBytes: 0,
    sendErrors: 0,
    rtcpParseErrors: 0,
    listenerErrors: 0,
  };
}

/** What a Router hands down to its transports. */
export interface MediaContext {
  readonly rtcConfig: RtcConfig;
  /** Announced address and relay entrance, applied to every local description. */
  readonly network?: MediaNetwork;
  /** Sent as REMB to each publisher: caps its total send rate (bit/s). */
  readonly maxIncomingBitrate: number;
  readonly logger: MediaLogger | undefined;
  readonly counters: MediaCounters;
}

export function assertNotClosed(closed: boolean, what: string): void {
  if (closed) throw new Error(`${what} is closed`);
}

/** Non-zero 32-bit SSRC; collisions inside one subscriber connection are avoided by the caller. */
export function randomSsrc(): number {
  return randomInt(1, 0xffffffff);
}

// RFC 4566 token-char, up to 64 chars (RFC 8830 msid-id): peerId ends up verbatim in a=msid.
const MSID_TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,64}$/;

export function assertValidPeerId(peerId: string): void {
  if (typeof peerId !== 'string' || !MSID_TOKEN.test(peerId)) {
    throw new Error('peerId must be 1-64 characters of [A-Za-z0-9] or !#$%&\'*+-.^_`{|}~');
  }
}

export function warn(ctx: MediaContext, msg: string): void {
  try {
    ctx.logger?.warn(msg);
  } catch {
    // A broken logger must not break media.
  }
}

/**
 * Media objects emit from the engine's callbacks and from the Router's tick: a listener that
 * throws there would stop the listeners after it, the tick's other work, or the process. Each
 * listener of `emitter` runs on its own; a throw is counted (`listenerErrors`, in /metrics) and
 * logged by name only, and the others still run.
 */
export function isolateListeners(emitter: EventEmitter, ctx: MediaContext): void {
  emitter.emit = function emit(event: string | symbol, ...args: unknown[]): boolean {
    const listeners = emitter.rawListeners(event) as ((...a: unknown[]) => unknown)[];
    if (listeners.length === 0) {
      if (event === 'error') throw args[0] instanceof Error ? args[0] : new Error('unhandled media error event');
      return false;
    }
    for (const listener of listeners) {
      try {
        listener.apply(emitter, args);
      } catch (error) {
        ctx.counters.listenerErrors++;
        warn(ctx, `a '${String(event)}' listener threw (${error instanceof Error ? error.name : typeof error}); the others ran`);
      }
    }
    return true;
  };
}

/**
 * node-datachannel 0.33.4 keeps every Track wrapper in a native registry (with a thread-safe
 * function that keeps the event loop alive) until the native track reports closed to a JS
 * onClosed handler. A wrapper garbage-collected before that stays in the registry as a dangling
 * pointer, and cleanup() crashes on it. So every wrapper gets a handler and is held here until
 * the handler has run. For the same reason there must only ever be one wrapper per native
 * track: a track reports closed once, so a second wrapper (pc.addTrack() with an existing mid
 * returns one) could never leave the registry; nor can a wrapper handed out already closed.
 */
const liveTracks = new Set<Track>();

export function holdUntilClosed(track: Track, onClosed?: () => void): void {
  liveTracks.add(track);
  track.onClosed(() => {
    liveTracks.delete(track);
    onClosed?.();
  });
}

/** @internal After nodeDataChannel.cleanup() every wrapper has been released natively. */
export function forgetTracks(): void {
  liveTracks.clear();
}
