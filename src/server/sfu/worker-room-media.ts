/**
 * A call's media in a media worker process: the RoomMedia the Room talks to, forwarding each
 * call as a typed message to the worker the call is pinned to (opened by MediaWorker.openRoom),
 * and the worker's subscriber offers back to the right participant.
 */
import { LinkcallError, type ErrorCode } from '../../protocol/errors.js';
import type { ViewportTile } from '../../protocol/messages.js';
import type { RoomMedia, SendLayers } from '../rooms/room.js';
import type { SfuLog } from './sfu.js';
import type { FromWorker, ToWorker, WorkerRequest } from './worker-messages.js';

/** What a call needs of the worker process it is pinned to (given by MediaWorker.openRoom). */
export interface WorkerChannel {
  /** Undefined while the process starts. */
  pid(): number | undefined;
  send(message: ToWorker): void;
  /** Rejects with `media_failed` if the worker dies first. */
  request(build: (id: number) => WorkerRequest): Promise<FromWorker>;
  /** The call is closed: the worker forgets it. */
  closed(): void;
}

interface OfferRoute {
  sendOffer: (sdp: string) => void;
  /** Offers of receiving transports older than this one (dropped, replaced) are stale. */
  since: number;
}

export class WorkerRoomMedia implements RoomMedia {
  private readonly routes = new Map<string, OfferRoute>();
  private readonly layerRoutes = new Map<string, SendLayers>();
  private generation = 0;
  private readonly failureListeners: ((code: ErrorCode) => void)[] = [];
  private failed: ErrorCode | undefined;
  private closed = false;

  constructor(
    /** Names the call in messages to the worker (no link id or anything else about it leaves). */
    readonly roomId: string,
    private readonly worker: WorkerChannel,
    private readonly log?: SfuLog,
  ) {}

  /** The worker process the call is pinned to (undefined while it starts). */
  get pid(): number | undefined {
    return this.worker.pid();
  }

  /** Participants with media transports (connected or admitted). */
  get participants(): number {
    return this.routes.size;
  }

  connect(participantId: string, sendOffer: (sdp: string) => void): void {
    // Always a new receiving transport (the worker closes any old one).
    this.route('connect', participantId, sendOffer, true);
  }

  admit(participantId: string, sendOffer: (sdp: string) => void): void {
    // Reuses the transport connected while it waited, whose offers stay valid.
    this.route('admit', participantId, sendOffer, false);
  }

  async publish(participantId: string, offerSdp: string, sendLayers?: SendLayers): Promise<string> {
    this.assertUsable();
    if (sendLayers) this.layerRoutes.set(participantId, sendLayers);
    else this.layerRoutes.delete(participantId);
    const reply = await this.worker.request((id) => ({ type: 'publish', id, roomId: this.roomId, participantId, sdp: offerSdp }));
    if (reply.type !== 'reply' || reply.sdp === undefined) throw new LinkcallError('media_failed');
    return reply.sdp;
  }

  async answer(participantId: string, answerSdp: string): Promise<void> {
    this.assertUsable();
    await this.worker.request((id) => ({ type: 'answer', id, roomId: this.roomId, participantId, sdp: answerSdp }));
  }

  viewport(participantId: string, tiles: readonly ViewportTile[]): void {
    if (this.closed || this.failed) return;
    this.worker.send({ type: 'viewport', roomId: this.roomId, participantId, tiles: [...tiles] });
  }

  keyFrame(participantId: string): void {
    if (this.closed || this.failed) return;
    this.worker.send({ type: 'keyFrame', roomId: this.roomId, participantId });
  }

  silence(participantId: string, on: boolean): void {
    this.worker.send({ type: 'silence', roomId: this.roomId, participantId, on });
  }

  drop(participantId: string): void {
    this.layerRoutes.delete(participantId);
    if (!this.routes.delete(participantId) || this.closed || this.failed) return;
    this.worker.send({ type: 'drop', roomId: this.roomId, participantId });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.routes.clear();
    this.layerRoutes.clear();
    this.worker.closed();
    this.worker.send({ type: 'close', roomId: this.roomId });
  }

  onFailure(listener: (code: ErrorCode) => void): void {
    const failed = this.failed;
    if (failed) queueMicrotask(() => listener(failed));
    else this.failureListeners.push(listener);
  }

  /** From the worker: an offer for one participant's receiving transport. */
  deliverOffer(participantId: string, generation: number, sdp: string): void {
    const route = this.routes.get(participantId);
    if (!route || generation < route.since || this.closed) return;
    route.sendOffer(sdp);
  }

  /** From the worker: which simulcast layers a participant should send. */
  deliverSendLayers(participantId: string, mid: string, layers: number, from: number, thinSmall: boolean): void {
    if (this.closed || !this.routes.has(participantId)) return;
    this.layerRoutes.get(participantId)?.(mid, layers, from, thinSmall);
  }

  /** The worker died: this call's media is gone for good. */
  fail(code: ErrorCode): void {
    if (this.closed || this.failed) return;
    this.failed = code;
    this.routes.clear();
    for (const listener of this.failureListeners.splice(0)) {
      try {
        listener(code);
      } catch (err) {
        this.log?.error({ err: { name: (err as Error)?.name } }, 'ending a call whose media worker died failed');
      }
    }
  }

  private route(type: 'connect' | 'admit', participantId: string, sendOffer: (sdp: string) => void, newTransport: boolean): void {
    if (this.closed || this.failed) return;
    const generation = ++this.generation;
    const known = this.routes.get(participantId);
    this.routes.set(participantId, { sendOffer, since: newTransport || !known ? generation : known.since });
    this.worker.send({ type, roomId: this.roomId, participantId, generation });
  }

  private assertUsable(): void {
    if (this.failed) throw new LinkcallError(this.failed);
    if (this.closed) throw new LinkcallError('not_in_call');
  }
}
