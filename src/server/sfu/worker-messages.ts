/**
 * What the signaling process and a media worker process say to each other over the IPC
 * channel: one zod schema per direction, validated where each message arrives. Internal,
 * but typed like the client protocol: a worker is a separate program that can be wrong.
 *
 * Requests that answer (`publish`, `answer`, `stats`) carry an `id` echoed by the worker;
 * the rest are commands, applied in the order sent (the channel keeps order).
 */
import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../../protocol/errors.js';
import { mediaId, simulcastLayerIndex, simulcastLayers, viewportTile } from '../../protocol/messages.js';

const id = z.number().int().nonnegative();
const roomId = z.string().min(1).max(64);
const participantId = z.string().min(1).max(64);
const sdp = z.string().max(1024 * 1024);
const errorCode = z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]);
/**
 * Counts the receiving transports a participant was given (connect/admit): offers are tagged
 * with the one they came from, so an offer of a transport dropped meanwhile is recognised as stale.
 */
const generation = z.number().int().nonnegative();

export const toWorker = z.discriminatedUnion('type', [
  /** Start a call's media (one Router). */
  z.strictObject({
    type: z.literal('open'),
    roomId,
    network: z
      .strictObject({
        bindAddress: z.string().max(256).optional(),
        portRangeBegin: z.number().int().min(1).max(65535).optional(),
        portRangeEnd: z.number().int().min(1).max(65535).optional(),
        announcedAddress: z.string().max(256).optional(),
        relayEntrance: z.boolean().optional(),
      })
      .optional(),
  }),
  z.strictObject({ type: z.literal('connect'), roomId, participantId, generation }),
  z.strictObject({ type: z.literal('admit'), roomId, participantId, generation }),
  z.strictObject({ type: z.literal('publish'), id, roomId, participantId, sdp }),
  z.strictObject({ type: z.literal('answer'), id, roomId, participantId, sdp }),
  z.strictObject({ type: z.literal('viewport'), roomId, participantId, tiles: z.array(viewportTile).max(64) }),
  z.strictObject({ type: z.literal('silence'), roomId, participantId, on: z.boolean() }),
  z.strictObject({ type: z.literal('keyFrame'), roomId, participantId }),
  z.strictObject({ type: z.literal('drop'), roomId, participantId }),
  z.strictObject({ type: z.literal('close'), roomId }),
  /** Send a `stats` message now, with this id. */
  z.strictObject({ type: z.literal('stats'), id }),
  /** Close every call and exit. */
  z.strictObject({ type: z.literal('shutdown') }),
]);
export type ToWorker = z.infer<typeof toWorker>;
/** The commands answered under their id. */
export type WorkerRequest = Extract<ToWorker, { id: number }>;

/** The media counters of `media/counters.ts`, as numbers by name (the parent adds up what it knows). */
const counters = z.record(z.string().max(64), z.number().nonnegative());

export const fromWorker = z.discriminatedUnion('type', [
  /** The worker listens: messages queued until now can go. */
  z.strictObject({ type: z.literal('ready') }),
  /** The outcome of `publish` (answer SDP), `answer` (nothing) — or a registry code if it failed. */
  z.strictObject({ type: z.literal('reply'), id, sdp: sdp.optional() }),
  z.strictObject({ type: z.literal('refused'), id, code: errorCode }),
  /** A command without a reply failed (logged by the parent with its code only). */
  z.strictObject({ type: z.literal('failed'), command: z.string().max(32), code: errorCode }),
  /** A subscriber offer for a participant (RoomMedia's `sendOffer`). */
  z.strictObject({ type: z.literal('offer'), roomId, participantId, generation, sdp }),
  /** Which simulcast layers a publisher should send (RoomMedia.publish's `sendLayers`). */
  z.strictObject({ type: z.literal('sendLayers'), roomId, participantId, mid: mediaId, layers: simulcastLayers, from: simulcastLayerIndex, thinSmall: z.boolean() }),
  /**
   * Totals since the worker started (ended calls included), sent every few seconds and on
   * request (`id`). Only numbers.
   */
  z.strictObject({
    type: z.literal('stats'),
    id: id.optional(),
    calls: z.number().int().nonnegative(),
    counters,
    cpuSeconds: z.number().nonnegative(),
    rssBytes: z.number().nonnegative(),
  }),
]);
export type FromWorker = z.infer<typeof fromWorker>;
export type WorkerStats = Extract<FromWorker, { type: 'stats' }>;
