/**
 * A Room is the call behind one link. It owns every admission rule — who is
 * in the lobby, who may answer knocks, who may remove or end, who may send
 * media — and talks to participants only through the RoomPeer interface, so
 * it never knows about sockets.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ERRORS, LinkcallError, type ErrorCode } from '../../protocol/errors.js';
import type { KnockInfo, ParticipantInfo, Role, ServerMessage, ViewportTile } from '../../protocol/messages.js';

/** How the room reaches one participant's connection. */
export interface RoomPeer {
  send(message: ServerMessage): void;
  /** Tell the participant why its time in the call is over, then disconnect it. */
  close(code: ErrorCode): void;
  /** The participant came back on another connection: drop this one without a word to the room. */
  detach(): void;
}

/**
 * Carries the SFU's word to a publisher: of its simulcast track `mid` (layers in the order of its
 * offer), send layers `from` up to, not including, `layers` (nobody's tile needs the others);
 * `thinSmall`: send the smallest at a lower bitrate and size (a subscriber cannot fit its tiles' smallest).
 */
export type SendLayers = (mid: string, layers: number, from: number, thinSmall: boolean) => void;

/** The media side of a call, as the room needs it (implemented in sfu/: CallMedia in this process, WorkerRoomMedia in a worker). */
export interface RoomMedia {
  /**
   * Connect a knocking guest's receiving transport ahead of time, forwarding nothing
   * (`sendOffer` carries subscriber offers to it): once admitted, media flows without
   * waiting for ICE and DTLS.
   */
  connect(participantId: string, sendOffer: (sdp: string) => void): void;
  /** Give an admitted participant its transports (reusing a connected one); `sendOffer` as above. */
  admit(participantId: string, sendOffer: (sdp: string) => void): void;
  /**
   * Take a participant's publishing offer. A waiting guest may publish (its connection is up
   * before it is let in), but none of its tracks is forwarded to anyone before `admit`.
   */
  publish(participantId: string, offerSdp: string, sendLayers?: SendLayers): Promise<string>;
  answer(participantId: string, answerSdp: string): Promise<void>;
  /** How big the participant shows each other participant's video (picks simulcast layers). */
  viewport?(participantId: string, tiles: readonly ViewportTile[]): void;
  /** Ask a participant's camera (and screen) for a key frame of every layer it sends (rate-limited per layer). */
  keyFrame?(participantId: string): void;
  /** Stop (or resume) forwarding a participant's audio (the host muted it; it unmuted itself). */
  silence?(participantId: string, on: boolean): void;
  drop(participantId: string): void;
  close(): void;
  /**
   * Media that can fail for good (a media worker process that died) calls `listener` once
   * with the code the call ends with; in-process media never does.
   */
  onFailure?(listener: (code: ErrorCode) => void): void;
}

export interface RoomLimits {
  maxParticipants: number;
  maxLobby: number;
  /** How long a knock waits for an answer (or for a host to arrive) before it is given up. */
  knockTimeoutMs: number;
  /** While the host is away, participants admitted this long ago may answer knocks. */
  approverDelayMs: number;
  /** How long a participant whose connection dropped keeps its place, waiting to resume. */
  resumeGraceMs: number;
  /**
   * Lobby guests whose media connects while they wait (the first to knock while a place is free):
   * anyone who knows a link id can knock, so the SFU resources knocks cost are bounded per call.
   * The others connect when they are let in.
   */
  lobbyMediaSlots: number;
}

export const DEFAULT_ROOM_LIMITS: RoomLimits = {
  maxParticipants: 33,
  maxLobby: 20,
  knockTimeoutMs: 10 * 60_000,
  approverDelayMs: 30_000,
  resumeGraceMs: 30_000,
  lobbyMediaSlots: 4,
};

/**
 * Room messages kept per participant for replay after a lost connection: those
 * of the last few seconds while connected (what may have been in flight when
 * the connection died), everything while away, up to a cap.
 */
const REPLAY_WINDOW_MS = 10_000;
/** Chat, hands and reactions per participant: 5 a second, bursts of 10. */
const APP_MESSAGES_PER_SECOND = 5;
const APP_MESSAGE_BURST = 10;
const MAX_REPLAY = 512;

/**
 * What happens to a participant's place, as the room decides it: a cluster keeps its resume
 * records from these (written while the participant's time in the call lasts, and ended with it).
 */
export interface ParticipantEvents {
  knocked: [resumeToken: string];
  admitted: [resumeToken: string, who: ReturningParticipant];
  /** Its time in the call is over (left, removed, declined, gone past the grace, call ended): the token is dead. */
  ended: [resumeToken: string, code: ErrorCode];
}

export type ParticipantListener = <E extends keyof ParticipantEvents>(event: E, ...args: ParticipantEvents[E]) => void;

export interface RoomOptions {
  linkId: string;
  /** This call's instance (a later call of the same link has another); new calls get a random one. */
  callId?: string;
  linkName: string;
  ownerAccountId: string;
  hostName: string;
  media: RoomMedia;
  limits?: Partial<RoomLimits>;
  now?: () => number;
  /** Called once when the last participant (admitted or waiting) is gone. */
  onEmpty?: () => void;
  /** A participant's time here ended with this reason (a resume with its token later learns why). */
  onDismissed?: (resumeToken: string, code: ErrorCode) => void;
  /** Counts for /metrics: a guest knocked, someone was let in. */
  onEvent?: (event: 'knock' | 'admitted') => void;
  onParticipant?: ParticipantListener;
}

type Status = 'lobby' | 'admitted';

interface Participant {
  readonly id: string;
  /** Name and public key sealed with the link's lobby key: relayed, never read. */
  readonly card: string;
  readonly role: Role;
  peer: RoomPeer;
  /** Secret that lets this participant come back on a new connection (see resume). */
  readonly resumeToken: string;
  /** Room messages delivered so far, and the most recent of them for replay. */
  delivered: number;
  readonly replay: { at: number; message: ServerMessage }[];
  /** Set while the connection is lost: when it fires, the participant is gone. */
  awayTimer?: NodeJS.Timeout;
  status: Status;
  knockedAt: number;
  admittedAt: number;
  audio: boolean;
  video: boolean;
  canApprove: boolean;
  knockTimer?: NodeJS.Timeout;
  /** Made a co-host by the host: may approve, decline, remove and lock. */
  coHost?: boolean;
  /** Application messages it may still send now (see appMessage). */
  appBudget?: { tokens: number; at: number };
  /** In the lobby: holds one of the room's lobby media slots (its transports connect while it waits). */
  preconnected: boolean;
  /** In the lobby without a slot: its publishing offer, answered once it has media (a slot, or admission). */
  heldOffer?: string;
}

/** Who a participant was in a call whose node is gone (kept by the cluster directory, see adopt). */
export interface ReturningParticipant {
  participantId: string;
  role: Role;
  card: string;
  /** When it was admitted (shown only; membership is the MLS group's). */
  since: number;
}

export function newParticipantId(): string {
  return randomBytes(9).toString('base64url');
}

export class Room {
  readonly linkId: string;
  readonly callId: string;
  readonly linkName: string;
  readonly ownerAccountId: string;
  readonly hostName: string;
  /** The call's media (read-only handle: tests attach to it to check what the SFU can see). */
  readonly media: RoomMedia;
  private readonly limits: RoomLimits;
  private readonly now: () => number;
  private readonly onEmpty?: () => void;
  private readonly onDismissed?: (resumeToken: string, code: ErrorCode) => void;
  /** Participants by the SHA-256 of their resume token. */
  private readonly tokens = new Map<string, Participant>();
  private readonly onEvent?: (event: 'knock' | 'admitted') => void;
  private readonly onParticipant?: ParticipantListener;
  private readonly participants = new Map<string, Participant>();
  private approverTimer?: NodeJS.Timeout;
  private closed = false;
  /** The slot the next commit takes (see protocol `commitSlot`). */
  private slot = 0;
  /** False in a call taken over from a lost node until its first commit: the members know the slot, we don't. */
  private slotKnown = true;
  /** No new knocks while locked (routing, not a secret: the server enforces it). */
  private locked = false;

  constructor(options: RoomOptions) {
    this.linkId = options.linkId;
    this.callId = options.callId ?? randomBytes(12).toString('base64url');
    this.linkName = options.linkName;
    this.ownerAccountId = options.ownerAccountId;
    this.hostName = options.hostName;
    this.media = options.media;
    this.limits = { ...DEFAULT_ROOM_LIMITS, ...options.limits };
    this.now = options.now ?? Date.now;
    this.onEmpty = options.onEmpty;
    this.onDismissed = options.onDismissed;
    this.onEvent = options.onEvent;
    this.onParticipant = options.onParticipant;
    // Without its media the call cannot go on: everyone is told why and may join again.
    this.media.onFailure?.((code) => this.close(code));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get admittedCount(): number {
    return this.list('admitted').length;
  }

  get lobbyCount(): number {
    return this.list('lobby').length;
  }

  /** The slot the next commit must name (see protocol `commitSlot`). */
  get commitSlot(): number {
    return this.slot;
  }

  get hostPresent(): boolean {
    return this.list('admitted').some((p) => p.role === 'host');
  }

  /**
   * A new participant arrives. The link's owner enters at once as host; anyone
   * else knocks and waits in the lobby. Returns the participant's id.
   */
  join(peer: RoomPeer, card: string, accountId: string | undefined): string {
    this.assertOpen();
    const isOwner = accountId !== undefined && accountId === this.ownerAccountId;
    const participant: Participant = {
      id: newParticipantId(),
      card,
      role: isOwner ? 'host' : 'guest',
      peer,
      resumeToken: randomBytes(16).toString('base64url'),
      delivered: 0,
      replay: [],
      status: 'lobby',
      knockedAt: this.now(),
      admittedAt: 0,
      audio: true,
      video: true,
      canApprove: false,
      preconnected: false,
    };
    if (isOwner) {
      if (this.admittedCount >= this.limits.maxParticipants) throw new LinkcallError('call_full');
      this.participants.set(participant.id, participant);
      this.tokens.set(tokenKey(participant.resumeToken), participant);
      this.sendResumable(participant);
      this.onParticipant?.('knocked', participant.resumeToken);
      this.admit(participant);
      return participant.id;
    }
    if (this.locked) throw new LinkcallError('call_locked');
    if (this.lobbyCount >= this.limits.maxLobby) throw new LinkcallError('lobby_full');
    this.participants.set(participant.id, participant);
    this.tokens.set(tokenKey(participant.resumeToken), participant);
    this.sendResumable(participant);
    this.onParticipant?.('knocked', participant.resumeToken);
    this.onEvent?.('knock');
    participant.knockTimer = setTimeout(() => {
      this.dismiss(participant, this.hostPresent ? 'no_answer' : 'host_absent');
    }, this.limits.knockTimeoutMs);
    participant.knockTimer.unref?.();
    this.toApprovers({ type: 'knock', knock: knockInfo(participant) });
    this.deliver(participant, this.waitingNotice());
    if (this.list('lobby').filter((p) => p.preconnected).length < this.limits.lobbyMediaSlots) this.preconnect(participant);
    return participant.id;
  }

  /**
   * A participant whose connection dropped comes back on `peer`: same id, same
   * place (lobby or call), no new knock. `received` is how many room messages
   * it got; the rest are replayed in order after `resumed`.
   */
  resume(peer: RoomPeer, resumeToken: string, received: number): string {
    this.assertOpen();
    const participant = this.byResumeToken(resumeToken);
    if (!participant) throw new LinkcallError('resume_failed');
    const firstKept = participant.delivered - participant.replay.length;
    if (received > participant.delivered || received < firstKept) {
      this.dismiss(participant, 'resume_failed');
      throw new LinkcallError('resume_failed');
    }
    // The old connection may still look open (a network change): it is replaced.
    if (participant.peer !== peer) participant.peer.detach();
    participant.peer = peer;
    const wasAway = participant.awayTimer !== undefined;
    clearTimeout(participant.awayTimer);
    participant.awayTimer = undefined;
    peer.send({ type: 'resumed' });
    for (const { message } of participant.replay.slice(received - firstKept)) peer.send(message);
    if (wasAway && participant.status === 'admitted') {
      this.toAdmitted({ type: 'participantUpdated', participant: participantInfo(participant) }, participant.id);
    }
    return participant.id;
  }

  /**
   * A participant of this call that lived on a node that is gone comes back
   * here (cluster re-homing): same id and role, admitted at once — it was
   * admitted before and proves it with its resume token. It gets `resumed` and
   * a fresh `joined`; the others see it join as returning. It keeps its MLS
   * state: nobody hands it a key.
   */
  adopt(peer: RoomPeer, resumeToken: string, who: ReturningParticipant, received: number): string {
    this.assertOpen();
    if (this.participants.has(who.participantId) || this.byResumeToken(resumeToken)) throw new LinkcallError('resume_failed');
    if (this.admittedCount >= this.limits.maxParticipants) throw new LinkcallError('call_full');
    // The members carry on from their slot; this node learns it from their next commit.
    if (this.admittedCount === 0) this.slotKnown = false;
    const participant: Participant = {
      id: who.participantId,
      card: who.card,
      role: who.role,
      peer,
      resumeToken,
      delivered: received,
      replay: [],
      status: 'lobby',
      knockedAt: this.now(),
      admittedAt: who.since,
      audio: true,
      video: true,
      canApprove: false,
      preconnected: false,
    };
    this.participants.set(participant.id, participant);
    this.tokens.set(tokenKey(participant.resumeToken), participant);
    peer.send({ type: 'resumed' });
    this.admit(participant, undefined, true);
    return participant.id;
  }

  hasResumeToken(resumeToken: string): boolean {
    return this.byResumeToken(resumeToken) !== undefined;
  }

  /**
   * Let a waiting guest in. The approver's Add commit takes the next commit slot and goes to every
   * member; the Welcome goes to the guest with `joined`. Both are relayed unread: whether the guest
   * is in the encrypted call is for every member's client to check.
   */
  approve(actorId: string, targetId: string, slot: number, commit: string, welcome: string): void {
    const actor = this.requireApprover(actorId);
    const target = this.lobbyGuest(targetId);
    if (this.admittedCount >= this.limits.maxParticipants) {
      this.dismiss(target, 'call_full');
      throw new LinkcallError('call_full');
    }
    this.relayCommit(actor, slot, commit);
    this.admit(target, welcome);
  }

  /**
   * Any other commit (a Remove; the Add of a host who re-entered, with its Welcome for `welcomeTo`):
   * takes the next slot and goes, in order, to every admitted participant (the sender included).
   */
  commit(actorId: string, slot: number, commit: string, welcome?: string, welcomeTo?: string): void {
    const actor = this.requireAdmitted(actorId);
    const target = welcomeTo === undefined ? undefined : this.participants.get(welcomeTo);
    if (welcomeTo !== undefined && (!target || target.status !== 'admitted' || target === actor || !welcome)) {
      throw new LinkcallError('participant_not_found');
    }
    this.relayCommit(actor, slot, commit);
    if (target && welcome) this.deliver(target, { type: 'welcome', welcome });
  }

  /** A sealed note from someone who may answer knocks to one waiting guest, relayed unread. */
  lobbyNote(actorId: string, targetId: string, sealed: string): void {
    this.requireApprover(actorId);
    this.deliver(this.lobbyGuest(targetId), { type: 'lobbyNote', sealed });
  }

  /**
   * Host or co-host: mute someone (or everyone else): the SFU stops forwarding their audio at once,
   * their page mutes its microphone and says who did. Only they can unmute (setMediaState).
   */
  mute(actorId: string, targetId: string | undefined, everyone = false): void {
    const actor = this.requireModerator(actorId);
    const targets = everyone
      ? this.list('admitted').filter((p) => p !== actor && p.role !== 'host')
      : [this.participants.get(targetId ?? '')].filter((p): p is Participant => p?.status === 'admitted' && p !== actor);
    if (!everyone && targets.length === 0) throw new LinkcallError('participant_not_found');
    for (const target of targets) {
      if (target.role === 'host') throw new LinkcallError('not_allowed');
      this.media.silence?.(target.id, true);
      target.audio = false;
      this.deliver(target, { type: 'mutedBy', by: actor.id });
      this.toAdmitted({ type: 'participantUpdated', participant: participantInfo(target) }, target.id);
    }
  }

  /** Host or co-host: ask someone to unmute; only they can. */
  askUnmute(actorId: string, targetId: string): void {
    const actor = this.requireModerator(actorId);
    const target = this.participants.get(targetId);
    if (!target || target.status !== 'admitted' || target === actor) throw new LinkcallError('participant_not_found');
    this.deliver(target, { type: 'unmuteRequest', from: actor.id });
  }

  /** Host only: make an admitted guest a co-host, or not. */
  setCoHost(actorId: string, targetId: string, coHost: boolean): void {
    const actor = this.requireAdmitted(actorId);
    if (actor.role !== 'host') throw new LinkcallError('not_allowed');
    const target = this.participants.get(targetId);
    if (!target || target.status !== 'admitted' || target.role === 'host') throw new LinkcallError('participant_not_found');
    if ((target.coHost === true) === coHost) return;
    target.coHost = coHost;
    this.toAdmitted({ type: 'participantUpdated', participant: participantInfo(target) });
    this.refreshApprovers();
  }

  /** Host or co-host: lock or unlock the call. Guests already waiting stay in the lobby; new knocks are refused. */
  lock(actorId: string, locked: boolean): void {
    const actor = this.requireAdmitted(actorId);
    if (actor.role !== 'host' && !actor.coHost) throw new LinkcallError('not_allowed');
    if (this.locked === locked) return;
    this.locked = locked;
    this.toAdmitted({ type: 'locked', locked });
  }

  /**
   * An application message (chat and the like) to everyone else in the call, relayed unread: at most
   * APP_MESSAGES_PER_SECOND per participant (a burst of twice that), so a flood reaches nobody.
   */
  appMessage(actorId: string, data: string): void {
    const actor = this.requireAdmitted(actorId);
    const now = this.now();
    const bucket = (actor.appBudget ??= { tokens: APP_MESSAGE_BURST, at: now });
    bucket.tokens = Math.min(APP_MESSAGE_BURST, bucket.tokens + ((now - bucket.at) / 1000) * APP_MESSAGES_PER_SECOND);
    bucket.at = now;
    if (bucket.tokens < 1) throw new LinkcallError('rate_limited');
    bucket.tokens -= 1;
    this.toAdmitted({ type: 'appMessage', from: actor.id, data }, actor.id);
  }

  decline(actorId: string, targetId: string): void {
    this.requireApprover(actorId);
    this.dismiss(this.lobbyGuest(targetId), 'declined');
  }

  /** Host or co-host: take someone out of the call (or the lobby); nobody removes the host. */
  remove(actorId: string, targetId: string): void {
    const actor = this.requireAdmitted(actorId);
    if (actor.role !== 'host' && !actor.coHost) throw new LinkcallError('not_allowed');
    const target = this.participants.get(targetId);
    if (!target || target.id === actor.id) throw new LinkcallError('participant_not_found');
    if (target.role === 'host') throw new LinkcallError('not_allowed');
    this.dismiss(target, 'removed');
  }

  /** Host only: end the call for everyone, waiting guests included. */
  end(actorId: string): void {
    const actor = this.requireAdmitted(actorId);
    if (actor.role !== 'host') throw new LinkcallError('not_allowed');
    this.close('call_ended');
  }

  /** Anyone may leave, from the lobby or the call. */
  leave(actorId: string): void {
    const participant = this.participants.get(actorId);
    if (!participant) return;
    this.dismiss(participant, 'left');
  }

  /**
   * The connection behind a participant is gone (no notice can reach it). A
   * deliberate close (the page went away) is a leave; otherwise its place is
   * kept for a grace period: the others see it reconnecting, and
   * room messages wait for it to resume.
   */
  disconnected(actorId: string, peer: RoomPeer, deliberate = false): void {
    const participant = this.participants.get(actorId);
    if (!participant || participant.peer !== peer || participant.awayTimer) return;
    if (deliberate) return this.forget(participant, 'left');
    participant.awayTimer = setTimeout(() => this.forget(participant, 'left'), this.limits.resumeGraceMs);
    participant.awayTimer.unref?.();
    if (participant.status === 'admitted') {
      this.toAdmitted({ type: 'participantUpdated', participant: participantInfo(participant) }, participant.id);
    }
  }

  /**
   * The participant's media connections failed: replace its SFU transports (it publishes
   * again). A guest in the lobby gets a new, still empty, receiving transport.
   */
  restartMedia(actorId: string): void {
    const actor = this.participants.get(actorId);
    if (!actor) throw new LinkcallError('not_in_call');
    this.media.drop(actor.id);
    this.deliver(actor, { type: 'mediaRestarted' });
    if (actor.status === 'admitted') this.attachMedia(actor);
    else if (actor.preconnected) this.media.connect(actor.id, this.offerSender(actor));
  }

  setMediaState(actorId: string, audio: boolean, video: boolean): void {
    const actor = this.requireAdmitted(actorId);
    // Unmuting oneself lifts a mute by the host: the SFU forwards the microphone again.
    if (audio && !actor.audio) this.media.silence?.(actor.id, false);
    actor.audio = audio;
    actor.video = video;
    this.toAdmitted({ type: 'participantUpdated', participant: participantInfo(actor) }, actor.id);
  }

  /**
   * A waiting guest's page publishes too, so its connection is up when it is let in; the media
   * layer forwards nothing of it before then (RoomMedia.publish).
   */
  async publish(actorId: string, offerSdp: string): Promise<void> {
    const actor = this.participants.get(actorId);
    if (!actor) throw new LinkcallError('not_in_call');
    if (actor.status === 'lobby' && !actor.preconnected) {
      actor.heldOffer = offerSdp;
      return;
    }
    const sdp = await this.media.publish(actor.id, offerSdp, (mid, layers, from, thinSmall) => {
      // `from` and `thinSmall` only when they say something: a page loaded before they existed refuses unknown fields.
      if (this.participants.get(actor.id) === actor) this.deliver(actor, { type: 'sendLayers', mid, layers, ...(from > 0 ? { from } : {}), ...(thinSmall ? { thinSmall } : {}) });
    });
    if (this.participants.get(actor.id) === actor) this.deliver(actor, { type: 'publishAnswer', sdp });
  }

  /** A waiting guest answers too: its receiving transport connects before it is let in (see RoomMedia.connect). */
  async subscribeAnswer(actorId: string, answerSdp: string): Promise<void> {
    const actor = this.participants.get(actorId);
    if (!actor) throw new LinkcallError('not_in_call');
    await this.media.answer(actor.id, answerSdp);
  }

  /** What an admitted participant's screen shows: the SFU forwards video to fit (and nothing unseen). */
  setViewport(actorId: string, tiles: readonly ViewportTile[]): void {
    const actor = this.requireAdmitted(actorId);
    this.media.viewport?.(actor.id, tiles);
  }

  /** An admitted participant's frames changed key for a newcomer: its video's next frame is a key frame. */
  requestKeyFrame(actorId: string): void {
    const actor = this.requireAdmitted(actorId);
    this.media.keyFrame?.(actor.id);
  }

  /** End the room for everyone with one reason (call ended, link deleted, shutdown). */
  close(code: ErrorCode): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.approverTimer);
    for (const participant of [...this.participants.values()]) {
      clearTimeout(participant.knockTimer);
      clearTimeout(participant.awayTimer);
      this.participants.delete(participant.id);
      this.tokens.delete(tokenKey(participant.resumeToken));
      this.onParticipant?.('ended', participant.resumeToken, code);
      this.onDismissed?.(participant.resumeToken, code);
      participant.peer.close(code);
    }
    this.media.close();
    this.onEmpty?.();
  }

  /** Whether this participant may answer knocks right now (host, or admitted ≥ 30 s while the host is away). */
  mayApprove(participantId: string): boolean {
    const p = this.participants.get(participantId);
    if (!p || p.status !== 'admitted') return false;
    if (p.role === 'host' || p.coHost) return true;
    return !this.hostPresent && this.now() - p.admittedAt >= this.limits.approverDelayMs;
  }

  // ------------------------------------------------------------------ internals

  /** First commit for a slot wins; a later one for the same slot is told to retry. */
  private relayCommit(actor: Participant, slot: number, commit: string): void {
    if (this.slotKnown && slot !== this.slot) throw new LinkcallError('commit_conflict');
    this.slot = slot + 1;
    this.slotKnown = true;
    this.toAdmitted({ type: 'handshake', slot, from: actor.id, commit });
  }

  private admit(participant: Participant, welcome?: string, returning = false): void {
    clearTimeout(participant.knockTimer);
    const wasWaiting = participant.role === 'guest' && !returning;
    participant.status = 'admitted';
    this.onEvent?.('admitted');
    if (!returning) participant.admittedAt = this.now();
    if (wasWaiting) this.toApprovers({ type: 'knockGone', participantId: participant.id });
    this.onParticipant?.('admitted', participant.resumeToken, {
      participantId: participant.id,
      role: participant.role,
      card: participant.card,
      since: participant.admittedAt,
    });
    participant.canApprove = this.mayApprove(participant.id);
    // Media first: a guest connected while it waited gets the offer for everyone's media ahead of
    // `joined`, so its browser answers before it gets busy drawing the call.
    this.attachMedia(participant);
    this.answerHeldOffer(participant);
    if (participant.preconnected) {
      participant.preconnected = false;
      this.fillLobbyMediaSlot();
    }
    this.deliver(participant, {
      type: 'joined',
      you: participantInfo(participant),
      participants: this.list('admitted')
        .filter((p) => p.id !== participant.id)
        .map(participantInfo),
      knocks: participant.canApprove ? this.list('lobby').map(knockInfo) : [],
      canApprove: participant.canApprove,
      linkName: this.linkName,
      slot: this.slot,
      locked: this.locked,
      ...(welcome ? { welcome } : {}),
    });
    this.toAdmitted(
      { type: 'participantJoined', participant: participantInfo(participant), ...(returning ? { returning } : {}) },
      participant.id,
    );
    this.refreshApprovers();
  }

  private attachMedia(participant: Participant): void {
    this.media.admit(participant.id, this.offerSender(participant));
  }

  /** Connect a lobby guest's media ahead of its admission (it holds a lobby media slot from now on). */
  private preconnect(participant: Participant): void {
    participant.preconnected = true;
    this.media.connect(participant.id, this.offerSender(participant));
    this.answerHeldOffer(participant);
  }

  /** A slot came free: the guest who knocked last among those without one gets it. */
  private fillLobbyMediaSlot(): void {
    const lobby = this.list('lobby');
    if (lobby.filter((p) => p.preconnected).length >= this.limits.lobbyMediaSlots) return;
    const next = lobby.filter((p) => !p.preconnected).at(-1);
    if (next) this.preconnect(next);
  }

  private answerHeldOffer(participant: Participant): void {
    const offer = participant.heldOffer;
    if (offer === undefined) return;
    participant.heldOffer = undefined;
    this.publish(participant.id, offer).catch(() => {
      // Not a room message (not counted for replay): as the answer to the publish would have been.
      if (this.participants.get(participant.id) === participant) {
        participant.peer.send({ type: 'error', code: 'media_failed', message: ERRORS.media_failed.message });
      }
    });
  }

  private offerSender(participant: Participant): (sdp: string) => void {
    return (sdp) => {
      if (this.participants.get(participant.id) === participant) this.deliver(participant, { type: 'subscribeOffer', sdp });
    };
  }

  private sendResumable(participant: Participant): void {
    this.deliver(participant, { type: 'resumable', token: participant.resumeToken, graceMs: this.limits.resumeGraceMs });
  }

  /** Every room message goes out through here, numbered and kept for replay. */
  private deliver(participant: Participant, message: ServerMessage): void {
    const now = this.now();
    const replay = participant.replay;
    replay.push({ at: now, message });
    participant.delivered++;
    const keepFrom = participant.awayTimer ? -Infinity : now - REPLAY_WINDOW_MS;
    while (replay.length > MAX_REPLAY || (replay.length > 0 && replay[0]!.at < keepFrom)) replay.shift();
    if (!participant.awayTimer) participant.peer.send(message);
  }

  /** Looked up by the token's hash: no comparison that leaks, as it goes, how much of a guess was right. */
  private byResumeToken(resumeToken: string): Participant | undefined {
    const p = this.tokens.get(tokenKey(resumeToken));
    return p && this.participants.get(p.id) === p ? p : undefined;
  }

  /** Send a participant away with a reason and forget it. */
  private dismiss(participant: Participant, code: ErrorCode): void {
    this.forget(participant, code);
    this.onDismissed?.(participant.resumeToken, code);
    participant.peer.close(code);
  }

  /** The participant's time here is over (`code` says why): its place and its resume token end. */
  private forget(participant: Participant, code: ErrorCode): void {
    if (this.participants.get(participant.id) !== participant) return;
    clearTimeout(participant.knockTimer);
    clearTimeout(participant.awayTimer);
    this.participants.delete(participant.id);
    this.tokens.delete(tokenKey(participant.resumeToken));
    this.onParticipant?.('ended', participant.resumeToken, code);
    this.media.drop(participant.id);
    if (participant.status === 'lobby') {
      this.toApprovers({ type: 'knockGone', participantId: participant.id });
      if (participant.preconnected) this.fillLobbyMediaSlot();
    } else {
      this.toAdmitted({ type: 'participantLeft', participantId: participant.id });
      this.refreshApprovers();
    }
    if (this.participants.size === 0) this.close('call_ended');
  }

  /**
   * Recompute who may answer knocks, tell those whose permission changed (with
   * the current knocks when they gain it), and wake up again when the next
   * participant passes the 30-second mark.
   */
  private refreshApprovers(): void {
    clearTimeout(this.approverTimer);
    const hostPresent = this.hostPresent;
    let nextChange = Infinity;
    for (const p of this.list('admitted')) {
      const may = this.mayApprove(p.id);
      if (may !== p.canApprove) {
        p.canApprove = may;
        this.deliver(p, { type: 'canApprove', canApprove: may });
        if (may) for (const k of this.list('lobby')) this.deliver(p, { type: 'knock', knock: knockInfo(k) });
      }
      if (!may && !hostPresent && p.role === 'guest') {
        nextChange = Math.min(nextChange, p.admittedAt + this.limits.approverDelayMs - this.now());
      }
    }
    // Lobby guests learn whether anyone can let them in now.
    for (const k of this.list('lobby')) this.deliver(k, this.waitingNotice());
    if (nextChange !== Infinity) {
      this.approverTimer = setTimeout(() => this.refreshApprovers(), Math.max(nextChange, 0) + 5);
      this.approverTimer.unref?.();
    }
  }

  private waitingNotice(): ServerMessage {
    const anyoneCanApprove = this.list('admitted').some((p) => this.mayApprove(p.id));
    return {
      type: 'waiting',
      hostName: this.hostName,
      hostPresent: anyoneCanApprove,
      timeoutMs: this.limits.knockTimeoutMs,
    };
  }

  private requireAdmitted(actorId: string): Participant {
    const actor = this.participants.get(actorId);
    if (!actor || actor.status !== 'admitted') throw new LinkcallError('not_in_call');
    return actor;
  }

  /** The host or a co-host. */
  private requireModerator(actorId: string): Participant {
    const actor = this.requireAdmitted(actorId);
    if (actor.role !== 'host' && !actor.coHost) throw new LinkcallError('not_allowed');
    return actor;
  }

  private requireApprover(actorId: string): Participant {
    const actor = this.requireAdmitted(actorId);
    if (!this.mayApprove(actor.id)) throw new LinkcallError('not_allowed');
    return actor;
  }

  private lobbyGuest(targetId: string): Participant {
    const target = this.participants.get(targetId);
    if (!target || target.status !== 'lobby') throw new LinkcallError('participant_not_found');
    return target;
  }

  private list(status: Status): Participant[] {
    return [...this.participants.values()].filter((p) => p.status === status);
  }

  private toAdmitted(message: ServerMessage, exceptId?: string): void {
    for (const p of this.list('admitted')) if (p.id !== exceptId) this.deliver(p, message);
  }

  private toApprovers(message: ServerMessage): void {
    for (const p of this.list('admitted')) if (this.mayApprove(p.id)) this.deliver(p, message);
  }

  private assertOpen(): void {
    if (this.closed) throw new LinkcallError('call_ended');
  }
}

function participantInfo(p: Participant): ParticipantInfo {
  return {
    id: p.id,
    card: p.card,
    role: p.role,
    since: p.admittedAt,
    audio: p.audio,
    video: p.video,
    reconnecting: p.awayTimer !== undefined,
    coHost: p.coHost === true,
  };
}

function knockInfo(p: Participant): KnockInfo {
  return { id: p.id, card: p.card, since: p.knockedAt };
}

function tokenKey(resumeToken: string): string {
  return createHash('sha256').update(resumeToken).digest('base64url');
}
