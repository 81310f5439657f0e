/** What every media object of a call shares (its Router's context), and how their events reach listeners. */
import type { EventEmitter } from 'node:events';
import type { RtcConfig } from 'node-datachannel';
import type { MediaNetwork } from './candidates.js';
import type { MediaCounters } from './counters.js';

export type MediaKind = 'audio' | 'video';

/** Only warnings go out, never packet contents or SDP (SDP carries DTLS fingerprints and ICE passwords). */
export interface MediaLogger {
  warn(msg: string): void;
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
