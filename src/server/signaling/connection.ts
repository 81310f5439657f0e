/**
 * One signaling connection: parses and validates every frame where it
 * arrives, binds the connection to at most one participant, and hands
 * actions to the Room, which decides whether they are allowed.
 */
import type { WebSocket } from 'ws';
import { closeCodeFor, errorMessage, LinkcallError, type ErrorCode } from '../../protocol/errors.js';
import {
  CLIENT_MESSAGE_TYPES,
  clientMessage,
  MAX_FRAME_BYTES,
  type ClientMessage,
  type ServerMessage,
} from '../../protocol/messages.js';
import { addressKey, type RateLimiter } from '../access/rate-limit.js';
import { usableLink } from '../access/usable-link.js';
import type { ReturningParticipant, Room, RoomPeer } from '../rooms/room.js';
import type { Rooms } from '../rooms/rooms.js';
import type { Account, Link, Store } from '../store/store.js';

export interface SignalingContext {
  store: Store;
  rooms: Rooms;
  /** Knocks per link and per address. */
  knocksPerLink: RateLimiter;
  knocksPerAddress: RateLimiter;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /** Messages a connection may send per second before being told to slow down (default 40). */
  messagesPerSecond?: number;
  /** Counts a connection cut because its peer stopped reading (`too_slow`). */
  onTooSlow?: () => void;
  /** Observability hook (see AppOptions.tap): every frame in and out, as sent on the wire. */
  tap?: (event: WsTapEvent) => void;
  /**
   * Cluster: who a resume token's participant was, when its call lived on a node that is
   * gone, or why its time in the call ended (undefined: nothing to take back here; on a
   * single node the token is simply unknown).
   */
  recoverParticipant?: (
    resumeToken: string,
  ) => Promise<(ReturningParticipant & { linkId: string; callId: string }) | { ended: ErrorCode } | undefined>;
}

export type WsTapEvent = { kind: 'ws-in'; data: Buffer; isBinary: boolean } | { kind: 'ws-out'; data: string };

const HEARTBEAT_MS = 15_000;
/**
 * Bytes that may wait to be sent to one peer. A peer that stops reading (a frozen tab, a
 * stalled network) is cut past this, or at its missed pong (at most two heartbeats after it
 * stopped), whichever comes first: its queue never grows without bound, and since every
 * connection has its own socket, nobody else's messages wait for it.
 */
export const MAX_SEND_QUEUE_BYTES = 1024 * 1024;
/**
 * Messages a connection may send per second on average before being told to slow down, with
 * bursts of up to BURST_SECONDS' worth: admitting many guests sends approvals and media answers
 * together.
 */
const MESSAGES_PER_SECOND = 40;
const BURST_SECONDS = 3;
/** Past this many refused messages in a row the connection is closed. */
const MAX_STRIKES = 200;

/**
 * A join refused for these ends the connection with `closed`: the knock has no call to wait in, and
 * the page says why and offers to join again. (A knock over its rate limit was once only refused
 * with `error`, and the page said "Connecting…" for ever.)
 */
const TERMINAL_JOIN_ERRORS = new Set<ErrorCode>(['link_not_found', 'link_deleted', 'link_expired', 'call_full', 'lobby_full', 'call_locked', 'server_shutdown', 'rate_limited']);

export class Connection implements RoomPeer {
  private room?: Room;
  private participantId?: string;
  private alive = true;
  private closing = false;
  private strikes = 0;
  private readonly heartbeat: NodeJS.Timeout;
  /** Token bucket: messages this connection may send now (starts full). */
  private tokens = Infinity;
  private tokensAt = performance.now();
  /**
   * A join or resume under way: messages that arrive meanwhile wait for it. A page publishes right
   * behind its join; handled while the join still read the store, the publish was refused as "not
   * in a call", and that page's video never reached anyone (lab, 40 ms links: 1 call in 12).
   */
  private entering?: Promise<unknown>;

  constructor(
    private readonly socket: WebSocket,
    private readonly ctx: SignalingContext,
    private readonly account: Account | undefined,
    private readonly address: string,
  ) {
    socket.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    socket.on('pong', () => (this.alive = true));
    socket.on('close', (code: number) => this.onClosed(code));
    socket.on('error', () => socket.terminate());
    // Dead peers (no pong within a heartbeat) are cut, which frees their place in the room.
    this.heartbeat = setInterval(() => {
      if (!this.alive) return this.cutTooSlow();
      this.alive = false;
      socket.ping();
    }, HEARTBEAT_MS);
  }

  send(message: ServerMessage): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    const text = JSON.stringify(message);
    if (this.socket.bufferedAmount + text.length > MAX_SEND_QUEUE_BYTES) return this.cutTooSlow();
    this.ctx.tap?.({ kind: 'ws-out', data: text });
    this.socket.send(text);
  }

  /** The peer stopped reading: cut it (a drop it may resume from, like any lost connection). */
  private cutTooSlow(): void {
    if (this.socket.readyState === this.socket.CLOSED) return;
    this.ctx.onTooSlow?.();
    this.ctx.log.warn({ code: 'too_slow', queuedBytes: this.socket.bufferedAmount }, 'closing a signaling connection that stopped reading');
    this.socket.terminate();
  }

  close(code: ErrorCode): void {
    if (this.closing) return;
    this.closing = true;
    this.room = undefined;
    this.participantId = undefined;
    this.send({ type: 'closed', code, message: errorMessage(code) });
    this.socket.close(closeCodeFor(code));
  }

  detach(): void {
    this.room = undefined;
    this.participantId = undefined;
    this.closing = true;
    this.socket.terminate();
  }

  private refuse(code: ErrorCode, seq?: number): void {
    this.send({ type: 'error', code, message: errorMessage(code), seq });
    if (++this.strikes > MAX_STRIKES) this.close('rate_limited');
  }

  private withinMessageRate(): boolean {
    const rate = this.ctx.messagesPerSecond ?? MESSAGES_PER_SECOND;
    const now = performance.now();
    this.tokens = Math.min(rate * BURST_SECONDS, this.tokens + ((now - this.tokensAt) * rate) / 1000);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    this.ctx.tap?.({ kind: 'ws-in', data, isBinary });
    if (this.closing) return;
    if (!this.withinMessageRate()) return this.refuse('rate_limited');
    if (isBinary) return this.refuse('bad_message');
    if (data.length > MAX_FRAME_BYTES) return this.refuse('message_too_large');
    let raw: unknown;
    try {
      raw = JSON.parse(data.toString('utf8'));
    } catch {
      return this.refuse('bad_message');
    }
    const parsed = clientMessage.safeParse(raw);
    const seq = seqOf(raw);
    if (!parsed.success) {
      const type = (raw as { type?: unknown } | null)?.type;
      const known = typeof type === 'string' && (CLIENT_MESSAGE_TYPES as string[]).includes(type);
      return this.refuse(known ? 'bad_message' : 'unknown_type', seq);
    }
    this.strikes = 0;
    const message = parsed.data;
    const run = () => this.dispatch(message);
    const handled = this.entering && message.type !== 'ping' ? this.entering.then(run) : run();
    if (message.type === 'join' || message.type === 'resume') {
      const entering = handled.catch(() => {});
      this.entering = entering;
      void entering.then(() => {
        if (this.entering === entering) this.entering = undefined;
      });
    }
    handled.catch((err: unknown) => {
      if (err instanceof LinkcallError) {
        if (message.type === 'join' && TERMINAL_JOIN_ERRORS.has(err.code)) return this.close(err.code);
        return this.refuse(err.code, seq);
      }
      this.ctx.log.error({ err: (err as Error)?.name, type: message.type }, 'signaling handler failed');
      this.refuse('internal', seq);
    });
  }

  private async dispatch(message: ClientMessage): Promise<void> {
    if (message.type === 'ping') return this.send({ type: 'pong', seq: message.seq });
    if (message.type === 'join') return this.join(message.linkId, message.card);
    if (message.type === 'resume') return this.resume(message.token, message.received);
    const room = this.room;
    const me = this.participantId;
    if (!room || !me) throw new LinkcallError('not_in_call');
    switch (message.type) {
      case 'approve':
        return room.approve(me, message.participantId, message.slot, message.commit, message.welcome);
      case 'commit':
        return room.commit(me, message.slot, message.commit, message.welcome, message.welcomeTo);
      case 'appMessage':
        return room.appMessage(me, message.data);
      case 'lock':
        return room.lock(me, message.locked);
      case 'mute':
        return room.mute(me, message.participantId, message.everyone);
      case 'askUnmute':
        return room.askUnmute(me, message.participantId);
      case 'coHost':
        return room.setCoHost(me, message.participantId, message.coHost);
      case 'lobbyNote':
        return room.lobbyNote(me, message.participantId, message.sealed);
      case 'decline':
        return room.decline(me, message.participantId);
      case 'remove':
        return room.remove(me, message.participantId);
      case 'end':
        return room.end(me);
      case 'leave':
        return room.leave(me);
      case 'mediaState':
        return room.setMediaState(me, message.audio, message.video);
      case 'publish':
        return room.publish(me, message.sdp);
      case 'subscribeAnswer':
        return room.subscribeAnswer(me, message.sdp);
      case 'viewport':
        return room.setViewport(me, message.tiles);
      case 'keyFrame':
        return room.requestKeyFrame(me);
      case 'restartMedia':
        return room.restartMedia(me);
    }
  }

  private async join(linkId: string, card: string): Promise<void> {
    if (this.room) throw new LinkcallError('already_joined');
    const link = await usableLink(this.ctx.store, linkId);
    const isOwner = this.account?.id === link.ownerId;
    if (!isOwner) {
      const okLink = this.ctx.knocksPerLink.take(linkId);
      const okAddress = this.ctx.knocksPerAddress.take(addressKey(this.address));
      if (!okLink || !okAddress) throw new LinkcallError('rate_limited');
    }
    const room = await this.openRoom(link);
    if (!room) return;
    // Set before join: the room may answer (joined/waiting) synchronously.
    this.room = room;
    try {
      this.participantId = room.join(this, card, this.account?.id);
    } catch (err) {
      this.room = undefined;
      throw err;
    }
    // Shown as "last used" in the host's link list. After the join, whose knock is already on its
    // way: a SQLite write is synchronous. A failed write must not end the join.
    this.ctx.store.markLinkUsed(link.id, Date.now()).catch(() => {});
  }

  /** The link's call (opened if none is); undefined when this connection was closed or joined meanwhile. */
  private async openRoom(link: Link, callId?: string): Promise<Room | undefined> {
    const owner = await this.ctx.store.findAccount(link.ownerId);
    if (this.closing || this.room) return undefined;
    return this.ctx.rooms.open({
      linkId: link.id,
      linkName: link.name,
      ownerAccountId: link.ownerId,
      hostName: owner?.username ?? 'the host',
      ...(callId ? { callId } : {}),
    });
  }

  /** Come back as the participant a resume token belongs to; a call that is over says why. */
  private async resume(token: string, received: number): Promise<void> {
    if (this.room) throw new LinkcallError('already_joined');
    const found = this.ctx.rooms.findResumable(token);
    if (found === 'resume_failed' && this.ctx.recoverParticipant) return this.adopt(token, received);
    if (typeof found === 'string') return this.close(found);
    this.room = found;
    try {
      this.participantId = found.resume(this, token, received);
    } catch (err) {
      this.room = undefined;
      if (err instanceof LinkcallError) return this.close(err.code);
      throw err;
    }
  }

  /** The call this token belongs to lived on a node that is gone: it continues here. */
  private async adopt(token: string, received: number): Promise<void> {
    const who = await this.ctx.recoverParticipant!(token).catch(() => undefined);
    if (!who) return this.close('resume_failed');
    if ('ended' in who) return this.close(who.ended);
    let link;
    try {
      link = await usableLink(this.ctx.store, who.linkId);
    } catch (err) {
      return this.close(err instanceof LinkcallError ? err.code : 'resume_failed');
    }
    let room;
    try {
      // The same call instance only: a later call of the link does not take this token.
      room = await this.openRoom(link, who.callId);
    } catch (err) {
      return this.close(err instanceof LinkcallError ? err.code : 'resume_failed');
    }
    if (!room) return;
    // Another client of the same call may have just come back here too.
    if (room.hasResumeToken(token)) return this.resume(token, received);
    this.room = room;
    try {
      this.participantId = room.adopt(this, token, who, received);
    } catch (err) {
      this.room = undefined;
      if (err instanceof LinkcallError) return this.close(err.code);
      throw err;
    }
  }

  private onClosed(code: number): void {
    clearInterval(this.heartbeat);
    // A clean close (the page went away, or the client closed it) is a leave; anything else is a drop
    // the participant may come back from.
    const deliberate = code === 1000 || code === 1001;
    if (this.room && this.participantId) this.room.disconnected(this.participantId, this, deliberate);
    this.room = undefined;
    this.participantId = undefined;
  }
}

function seqOf(raw: unknown): number | undefined {
  const seq = (raw as { seq?: unknown } | null)?.seq;
  return typeof seq === 'number' && Number.isInteger(seq) && seq >= 0 && seq <= 2 ** 31 ? seq : undefined;
}
