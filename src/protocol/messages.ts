/**
 * Every signaling message, defined once and imported by the server, the
 * browser app and Node bots. Incoming messages are parsed with these schemas
 * where they arrive; unknown fields are refused (strict objects).
 */
import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from './errors.js';
import { linkId, participantId, resumeToken } from './ids.js';
import { trimmedText } from './names.js';

// Names are defined in names.ts; client/ still imports this one from here.
export { parseDisplayName } from './names.js';

/** Largest WebSocket frame either side accepts, in bytes (SDP offers for big calls fit). */
export const MAX_FRAME_BYTES = 64 * 1024;
export const MAX_SDP_LENGTH = 60_000;
const sdp = z.string().min(1).max(MAX_SDP_LENGTH);
const base64url = (max: number) => z.string().min(1).max(max).regex(/^[A-Za-z0-9_-]+$/);

/**
 * A participant's name card: its MLS KeyPackage (credential: display name, time, nonce), sealed
 * with the link's lobby key in the participant's browser. The server relays it and cannot read it.
 */
export const sealedCard = base64url(4096);

/** Longest chat message, in characters. */
export const MAX_CHAT_LENGTH = 2000;
const CHAT_CONTROL_CHARACTERS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
/**
 * A chat message's text, checked by the sender before sealing and by every receiver after opening
 * (the server never sees it): trimmed, 1–2000 characters, line breaks allowed, no other control
 * characters. Markup is just text.
 */
export const chatText = trimmedText(MAX_CHAT_LENGTH, CHAT_CONTROL_CHARACTERS);

/** An MLS handshake message (a commit, as a PrivateMessage) or a Welcome: opaque to the server. */
export const mlsBytes = base64url(60_000);
/**
 * The server's order of commits: every commit the server relays takes the next slot. A commit
 * names the slot it expects to take; if another took it first, the server answers `commit_conflict`
 * and the sender retries (members decide, each for itself, whether a relayed commit is valid).
 */
export const commitSlot = z.number().int().nonnegative().max(2 ** 31);

/**
 * One participant's video tile on the sender's screen, in device pixels. 0×0: not shown
 * (off-screen, paused). The SFU forwards the smallest simulcast layer that fills the tile.
 */
export const viewportTile = z.strictObject({
  participantId,
  width: z.number().int().min(0).max(16384),
  height: z.number().int().min(0).max(16384),
});
export type ViewportTile = z.infer<typeof viewportTile>;

/** A number of simulcast layers. */
export const simulcastLayers = z.number().int().min(1).max(8);
/** The index of a simulcast layer, smallest first. */
export const simulcastLayerIndex = z.number().int().min(0).max(7);
/** An SDP m-line's identifier (a=mid). */
export const mediaId = z.string().max(32);
/** Optional client-chosen sequence number, echoed in the error that refuses the message. */
const seq = z.number().int().nonnegative().max(2 ** 31).optional();

// ---------------------------------------------------------------- client → server

export const clientMessage = z.discriminatedUnion('type', [
  /** Ask to enter the call of a link. The link's owner enters at once; anyone else knocks. */
  z.strictObject({ type: z.literal('join'), seq, linkId, card: sealedCard }),
  /**
   * After a lost connection: be the same participant again (no new knock).
   * `received` counts the room messages this participant got before the loss
   * (every server message except pong, error, closed, resumed and shutdown); the server
   * replays the rest.
   */
  z.strictObject({ type: z.literal('resume'), seq, token: resumeToken, received: z.number().int().nonnegative() }),
  /** A note to a waiting guest, sealed with the lobby key (see keys.ts sealLobbyNote); from those who may answer knocks. */
  z.strictObject({ type: z.literal('lobbyNote'), seq, participantId, sealed: base64url(2048) }),
  /** Host or co-host: mute someone's microphone (the SFU stops forwarding it at once), or everyone's but our own. */
  z.strictObject({ type: z.literal('mute'), seq, participantId: participantId.optional(), everyone: z.boolean().optional() }),
  /** Host or co-host: ask someone to unmute (only they can). */
  z.strictObject({ type: z.literal('askUnmute'), seq, participantId }),
  /** Host only: make an admitted guest a co-host (or not). Members learn it from the host's MLS message too. */
  z.strictObject({ type: z.literal('coHost'), seq, participantId, coHost: z.boolean() }),
  /** Host only: lock the call (no new knocks reach the lobby; those already waiting stay) or unlock it. */
  z.strictObject({ type: z.literal('lock'), seq, locked: z.boolean() }),
  /** An MLS application message (chat and the like) for everyone else in the call; relayed unread. */
  z.strictObject({ type: z.literal('appMessage'), seq, data: base64url(24_000) }),
  /** Our media connections failed (e.g. the network changed): give us fresh SFU transports. */
  z.strictObject({ type: z.literal('restartMedia'), seq }),
  /**
   * Let a waiting guest in: the approver's MLS Add commit (relayed to the members) and the Welcome
   * (handed to the guest with `joined`). The server checks who may approve; every member checks the commit.
   */
  z.strictObject({ type: z.literal('approve'), seq, participantId, slot: commitSlot, commit: mlsBytes, welcome: mlsBytes }),
  /**
   * Any other MLS commit (a Remove; the Add of a host who re-entered, whose Welcome goes to
   * `welcomeTo`). Relayed in order to every admitted participant, sender included, as `handshake`.
   */
  z.strictObject({
    type: z.literal('commit'),
    seq,
    slot: commitSlot,
    commit: mlsBytes,
    welcome: mlsBytes.optional(),
    welcomeTo: participantId.optional(),
  }),
  z.strictObject({ type: z.literal('decline'), seq, participantId }),
  z.strictObject({ type: z.literal('remove'), seq, participantId }),
  z.strictObject({ type: z.literal('end'), seq }),
  z.strictObject({ type: z.literal('leave'), seq }),
  /** The sender's own microphone/camera state, shown to the others. */
  z.strictObject({ type: z.literal('mediaState'), seq, audio: z.boolean(), video: z.boolean() }),
  /** Offer of the sender's publishing PeerConnection (non-trickle: candidates inside). */
  z.strictObject({ type: z.literal('publish'), seq, sdp }),
  /** Answer to the server's latest `subscribeOffer`. */
  z.strictObject({ type: z.literal('subscribeAnswer'), seq, sdp }),
  /** How big the sender shows each participant's video now (device pixels); see `viewportTile`. */
  z.strictObject({ type: z.literal('viewport'), seq, tiles: z.array(viewportTile).max(64) }),
  /**
   * Our frames now go out under the newest epoch's key, and someone joined in it: the SFU asks our
   * camera for a key frame now, so the newcomer's first frame (which only this epoch's key opens)
   * is on its way while it is still joining the group.
   */
  z.strictObject({ type: z.literal('keyFrame'), seq }),
  z.strictObject({ type: z.literal('ping'), seq }),
]);
export type ClientMessage = z.infer<typeof clientMessage>;
export type ClientMessageType = ClientMessage['type'];
export const CLIENT_MESSAGE_TYPES = clientMessage.options.map((o) => o.shape.type.value);

// ---------------------------------------------------------------- server → client

export const role = z.enum(['host', 'guest']);
export type Role = z.infer<typeof role>;

export const participantInfo = z.strictObject({
  id: participantId,
  card: sealedCard,
  role,
  /** When the participant was admitted (server clock, ms). Shown only; membership is the MLS group's. */
  since: z.number(),
  audio: z.boolean(),
  video: z.boolean(),
  /** The participant's connection dropped; the server holds its place while it comes back. */
  reconnecting: z.boolean(),
  /** The host made it a co-host: it may approve, decline, remove and lock (the server's side of it; members check commits themselves). */
  coHost: z.boolean(),
});
export type ParticipantInfo = z.infer<typeof participantInfo>;

export const knockInfo = z.strictObject({ id: participantId, card: sealedCard, since: z.number() });
export type KnockInfo = z.infer<typeof knockInfo>;

const errorCode = z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]);

export const serverMessage = z.discriminatedUnion('type', [
  /** Your join was accepted: keep `token` to come back as the same participant within `graceMs` of a lost connection. */
  z.strictObject({ type: z.literal('resumable'), token: resumeToken, graceMs: z.number() }),
  /** You are the same participant again; the room messages you missed follow. */
  z.strictObject({ type: z.literal('resumed') }),
  /** The knock is waiting for an answer. `hostPresent` false: nobody can let you in yet. */
  z.strictObject({
    type: z.literal('waiting'),
    hostName: z.string(),
    hostPresent: z.boolean(),
    /** Milliseconds the server keeps the knock waiting before giving up. */
    timeoutMs: z.number(),
  }),
  /** You are in the call. */
  z.strictObject({
    type: z.literal('joined'),
    you: participantInfo,
    participants: z.array(participantInfo),
    knocks: z.array(knockInfo),
    canApprove: z.boolean(),
    linkName: z.string(),
    /** The approver's Welcome; absent for a host who entered on its own (it makes the group, or gets a `welcome`). */
    welcome: mlsBytes.optional(),
    /** The slot the next commit takes (see `commitSlot`). */
    slot: commitSlot,
    /** Whether the call is locked (no new knocks). */
    locked: z.boolean(),
  }),
  /** A Welcome for you after you entered (a host who re-entered is added by a member). */
  z.strictObject({ type: z.literal('welcome'), welcome: mlsBytes }),
  /** A sealed note for you while you wait, from someone who may let you in. */
  z.strictObject({ type: z.literal('lobbyNote'), sealed: base64url(2048) }),
  /** `by` muted your microphone: the others no longer hear you until you unmute. */
  z.strictObject({ type: z.literal('mutedBy'), by: participantId }),
  /** `from` asks you to unmute. */
  z.strictObject({ type: z.literal('unmuteRequest'), from: participantId }),
  /** The call was locked or unlocked (by the host). */
  z.strictObject({ type: z.literal('locked'), locked: z.boolean() }),
  /** Another participant's MLS application message (chat and the like): open it with the group's keys. */
  z.strictObject({ type: z.literal('appMessage'), from: participantId, data: base64url(24_000) }),
  /** A commit, in the server's order (your own included): apply it if it is valid, else ignore it. */
  z.strictObject({ type: z.literal('handshake'), slot: commitSlot, from: participantId, commit: mlsBytes }),
  /** Someone entered; `returning`: it was in this call before its server node was lost (it keeps its MLS state). */
  z.strictObject({ type: z.literal('participantJoined'), participant: participantInfo, returning: z.boolean().optional() }),
  z.strictObject({ type: z.literal('participantUpdated'), participant: participantInfo }),
  z.strictObject({ type: z.literal('participantLeft'), participantId }),
  /** Someone knocked; sent to everyone who may answer. */
  z.strictObject({ type: z.literal('knock'), knock: knockInfo }),
  /** A knock was answered, withdrawn or timed out. */
  z.strictObject({ type: z.literal('knockGone'), participantId }),
  /** Whether you may answer knocks changed (host left or came back, 30 s rule). */
  z.strictObject({ type: z.literal('canApprove'), canApprove: z.boolean() }),
  z.strictObject({ type: z.literal('publishAnswer'), sdp }),
  z.strictObject({ type: z.literal('subscribeOffer'), sdp }),
  /**
   * Of your simulcast track `mid`, send only the lowest `layers` layers, in your offer's order,
   * and of those none below layer `from` (default 0): nobody needs the others (sent again when
   * that changes). Until told, send all.
   */
  z.strictObject({ type: z.literal('sendLayers'), mid: mediaId, layers: simulcastLayers, from: simulcastLayerIndex.optional(), thinSmall: z.literal(true).optional() }),
  /** Your SFU transports were replaced (after `restartMedia`): offers from here on are for the new ones. */
  z.strictObject({ type: z.literal('mediaRestarted') }),
  z.strictObject({ type: z.literal('pong'), seq }),
  /** A message was refused; the connection stays open. */
  z.strictObject({ type: z.literal('error'), code: errorCode, message: z.string(), seq }),
  /**
   * The server is shutting down: no new joins; a call in progress may go on for at most
   * `graceMs`, then ends with `closed` `server_shutdown`. Join again in a moment.
   */
  z.strictObject({ type: z.literal('shutdown'), message: z.string(), graceMs: z.number() }),
  /** Your time in this call is over (declined, removed, ended, …); the server closes the socket next. */
  z.strictObject({ type: z.literal('closed'), code: errorCode, message: z.string() }),
]);
export type ServerMessage = z.infer<typeof serverMessage>;
/** Server messages that are connection-level, not part of the room's story (not counted for `resume`). */
export const UNCOUNTED_SERVER_MESSAGES: ReadonlySet<ServerMessage['type']> = new Set(['pong', 'error', 'closed', 'resumed', 'shutdown']);
export type ServerMessageOf<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;
