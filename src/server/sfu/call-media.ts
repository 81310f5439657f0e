/**
 * The media of one call on the SFU: each admitted participant gets a publish
 * transport (its camera and microphone in) and a subscribe transport (everyone
 * else's out). Who gets transports at all is decided by the Room.
 */
import { Router, type RouterOptions } from '../media/router.js';
import type { PublishTransport } from '../media/publish-transport.js';
import type { SubscribeTransport } from '../media/subscribe-transport.js';
import type { Producer } from '../media/producer.js';
import { LinkcallError } from '../../protocol/errors.js';
import type { ViewportTile } from '../../protocol/messages.js';
import type { RoomMedia, SendLayers } from '../rooms/room.js';

interface PeerMedia {
  subscriber: SubscribeTransport;
  publisher?: PublishTransport;
  /** Only admitted participants are forwarded anything (a connected lobby guest gets nothing). */
  admitted: boolean;
  /** The last viewport the participant reported: a subscriber made anew (after a failure) starts from it. */
  tiles?: readonly ViewportTile[];
}

export class CallMedia implements RoomMedia {
  /** The call's SFU router (read-only handle: tests attach to it to check what the SFU can see). */
  readonly router: Router;
  private readonly peers = new Map<string, PeerMedia>();

  constructor(options?: RouterOptions) {
    this.router = new Router(options);
  }

  connect(participantId: string, sendOffer: (sdp: string) => void): void {
    const subscriber = this.router.createSubscribeTransport(participantId, sendOffer);
    this.drop(participantId);
    this.peers.set(participantId, { subscriber, admitted: false });
    subscriber.connect();
  }

  admit(participantId: string, sendOffer: (sdp: string) => void): void {
    let peer = this.peers.get(participantId);
    if (!peer) {
      peer = { subscriber: this.router.createSubscribeTransport(participantId, sendOffer), admitted: true };
      this.peers.set(participantId, peer);
    } else if (peer.subscriber.closed) {
      peer.subscriber = this.router.createSubscribeTransport(participantId, sendOffer);
      if (peer.tiles) peer.subscriber.setViewport(peer.tiles);
    }
    peer.admitted = true;
    const { subscriber } = peer;
    for (const [otherId, other] of this.peers) {
      if (otherId === participantId) continue;
      for (const producer of other.publisher?.producers.values() ?? []) if (other.admitted && !producer.closed) subscriber.consume(producer);
    }
    subscriber.offerNow();
    // What it published while waiting (connected, sending nothing yet) goes to everyone now.
    for (const producer of peer.publisher?.producers.values() ?? []) if (!producer.closed) this.forward(participantId, producer);
  }

  /**
   * A waiting guest publishes too (its page connects while it waits, sending nothing): its
   * tracks are consumed by no one until it is admitted.
   */
  async publish(participantId: string, offerSdp: string, sendLayers?: SendLayers): Promise<string> {
    const peer = this.peers.get(participantId);
    if (!peer) throw new LinkcallError('not_in_call');
    // A new offer replaces the old publisher (e.g. after the page restarted its media).
    peer.publisher?.close();
    const publisher = this.router.createPublishTransport(participantId);
    peer.publisher = publisher;
    publisher.on('producer', (producer: Producer) => {
      if (sendLayers) producer.on('sendLayers', (layers, from, thinSmall) => sendLayers(producer.mid, layers, from, thinSmall));
      if (peer.admitted && this.peers.get(participantId) === peer) this.forward(participantId, producer);
    });
    try {
      return await publisher.answer(offerSdp);
    } catch {
      throw new LinkcallError('media_failed');
    }
  }

  /** Every other admitted participant consumes `producer`. */
  private forward(participantId: string, producer: Producer): void {
    for (const [otherId, other] of this.peers) {
      // A subscriber whose connection already failed is skipped: it gets fresh transports on restartMedia.
      if (otherId !== participantId && other.admitted && !other.subscriber.closed) other.subscriber.consume(producer);
    }
  }

  async answer(participantId: string, answerSdp: string): Promise<void> {
    const peer = this.peers.get(participantId);
    if (!peer) throw new LinkcallError('not_in_call');
    try {
      await peer.subscriber.setAnswer(answerSdp);
    } catch {
      throw new LinkcallError('media_failed');
    }
  }

  viewport(participantId: string, tiles: readonly ViewportTile[]): void {
    const peer = this.peers.get(participantId);
    if (!peer?.admitted) throw new LinkcallError('not_in_call');
    peer.tiles = tiles;
    // A failed connection awaits the page's restartMedia; the new one starts from these tiles.
    if (!peer.subscriber.closed) peer.subscriber.setViewport(tiles);
  }

  keyFrame(participantId: string): void {
    const peer = this.peers.get(participantId);
    if (!peer?.admitted) return;
    for (const producer of peer.publisher?.producers.values() ?? []) if (!producer.closed) producer.requestKeyFrame();
  }

  silence(participantId: string, on: boolean): void {
    this.router.silence(participantId, on);
  }

  drop(participantId: string): void {
    const peer = this.peers.get(participantId);
    if (!peer) return;
    this.peers.delete(participantId);
    peer.publisher?.close();
    peer.subscriber.close();
  }

  close(): void {
    this.peers.clear();
    this.router.close();
  }
}
