/**
 * One path of "Check my connection": a PeerConnection with no media, answering the page's offer
 * and echoing every data-channel message, on the SFU's network (MEDIA_ADDRESS, MEDIA_PORTS, the
 * announced address, a relay entrance when TURN is configured), so a path that works here works
 * for a call. Closes itself after `lifetimeMs`.
 */
import nodeDataChannel, { type DataChannel, type PeerConnection } from 'node-datachannel';
import { ConnectionCandidates, type MediaNetwork } from './candidates.js';
import { waitForGathering } from './gathering.js';

export class ConnectionProbe {
  readonly #pc: PeerConnection;
  readonly #candidates: ConnectionCandidates;
  readonly #channels: DataChannel[] = [];
  readonly #timer: NodeJS.Timeout;
  #closed = false;
  onClose?: () => void;

  constructor(network: MediaNetwork, lifetimeMs: number) {
    this.#pc = new nodeDataChannel.PeerConnection('check', {
      iceServers: [],
      ...(network.bindAddress ? { bindAddress: network.bindAddress } : {}),
      ...(network.portRange ? { portRangeBegin: network.portRange.begin, portRangeEnd: network.portRange.end } : {}),
    });
    this.#candidates = new ConnectionCandidates(network);
    this.#pc.onDataChannel((channel) => {
      this.#channels.push(channel);
      channel.onMessage((message) => {
        // Echo, bounded: a check sends a few short strings.
        if (typeof message === 'string' && message.length <= 64) channel.sendMessage(message);
      });
    });
    this.#pc.onStateChange((state) => {
      if (state === 'failed' || state === 'closed') this.close();
    });
    this.#timer = setTimeout(() => this.close(), lifetimeMs);
    this.#timer.unref();
  }

  /** The answer to the page's offer (its candidates inside, as ours are). */
  async answer(offerSdp: string): Promise<string> {
    try {
      this.#pc.setRemoteDescription(offerSdp, 'offer');
    } catch {
      throw new TypeError('the offer was not understood');
    }
    await waitForGathering(this.#pc, 3000);
    const sdp = this.#pc.localDescription()?.sdp;
    if (this.#closed || !sdp) throw new Error('the check ended before it was answered');
    return this.#candidates.describe(sdp);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#candidates.close();
    for (const channel of this.#channels) {
      try {
        channel.close();
      } catch {
        // gone with the connection
      }
    }
    try {
      this.#pc.close();
    } catch {
      // already closed
    }
    this.onClose?.();
  }
}
