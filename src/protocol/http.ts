/**
 * Every HTTP request and response shape, defined once: the server's routes declare these as their
 * schemas (`src/server/http/`), and the browser app (`src/ui/api.ts`) sends and checks the same
 * ones. Request bodies are strict (unknown fields are refused); responses are read leniently, so
 * a page keeps working when a newer server adds a field.
 */
import { z } from 'zod';
import { ERRORS, type ErrorCode } from './errors.js';
import { linkId, linkInfoMac } from './ids.js';
import { linkName, linkNameOrBlank } from './names.js';

// ---------------------------------------------------------------- errors

/**
 * Every error answer: a code from the registry and its sentence. Read as any string, since a page
 * may talk to a newer server; a code it does not know is shown as `internal`.
 */
export const errorResponse = z.object({ error: z.string(), message: z.string() });
export type ErrorResponse = { error: ErrorCode; message: string };

/** The body of an error answer, straight from the registry. */
export function errorBody(code: ErrorCode): ErrorResponse {
  return { error: code, message: ERRORS[code].message };
}

// ---------------------------------------------------------------- accounts

/**
 * Sign-up and sign-in. Only sizes are checked here: a username of the wrong shape gets its own
 * answer (`invalid_username`, see ids.ts `username`), and so does a short password (`weak_password`).
 */
export const credentialsRequest = z.strictObject({
  username: z.string().max(200),
  password: z.string().max(1024),
});
export type CredentialsRequest = z.infer<typeof credentialsRequest>;

export const MIN_PASSWORD_LENGTH = 8;

/** `/api/signup`, `/api/signin`, `/api/me`: who is signed in. */
export const accountResponse = z.object({ username: z.string() });
export type AccountResponse = z.infer<typeof accountResponse>;

// ---------------------------------------------------------------- links

/** Longest expiry a host may set. */
export const MAX_LINK_EXPIRY_MS = 366 * 24 * 3600_000;

/** `/api/links/:id…` */
export const linkIdParams = z.strictObject({ id: linkId });

export const createLinkRequest = z.strictObject({
  /** Blank or absent: "<username>'s call". */
  name: linkNameOrBlank.optional(),
  /** When the link stops working (ms since the epoch); absent: never. At most MAX_LINK_EXPIRY_MS ahead. */
  expiresAt: z.number().int().positive().optional(),
});
export type CreateLinkRequest = z.input<typeof createLinkRequest>;

/** The host's browser attaches the MAC of the link's public facts, once. */
export const infoMacRequest = z.strictObject({ mac: linkInfoMac });
export type InfoMacRequest = z.input<typeof infoMacRequest>;

/** A new name needs a new MAC (made in the host's browser), or guests would see the link as altered. */
export const renameLinkRequest = z.strictObject({ name: linkName, mac: linkInfoMac });
export type RenameLinkRequest = z.input<typeof renameLinkRequest>;

/** One of the host's links, as its list shows it. */
export const linkView = z.object({
  id: linkId,
  name: z.string(),
  createdAt: z.number(),
  /** When the link stops working (ms), or null. */
  expiresAt: z.number().nullable(),
  /** When someone last joined or knocked with it (ms), or null. */
  lastUsedAt: z.number().nullable(),
  /** `/join/<id>`: the link without its fragment. */
  path: z.string(),
});
export type LinkView = z.infer<typeof linkView>;

export const linkList = z.object({ links: z.array(linkView) });

/** What a guest's join page shows before joining (the name and host are checked against `infoMac` there). */
export const linkPublicInfo = z.object({
  name: z.string(),
  hostName: z.string(),
  infoMac: z.string().nullable(),
  isOwner: z.boolean(),
});
export type LinkPublicInfo = z.infer<typeof linkPublicInfo>;

// ---------------------------------------------------------------- ICE and "Check my connection"

export const iceServer = z.object({
  urls: z.array(z.string()),
  username: z.string().optional(),
  credential: z.string().optional(),
});
export type IceServer = z.infer<typeof iceServer>;

/** `/api/links/:id/ice` and `/api/check/ice`: what a page's RTCPeerConnections need. */
export const iceConfig = z.object({
  iceServers: z.array(iceServer),
  iceTransportPolicy: z.enum(['all', 'relay']),
  /** When the TURN credentials stop working (ms since the epoch); absent without TURN. */
  expiresAt: z.number().optional(),
});
export type IceConfig = z.infer<typeof iceConfig>;

/**
 * "Check my connection" (`/check`): the page offers a data-channel-only connection per network
 * path, the server answers it and echoes what the page sends, so the page learns which paths
 * reach this server and their round-trip time. An offer is a few kilobytes; anything much larger
 * is not one.
 */
export const checkOffer = z.strictObject({ sdp: z.string().min(1).max(32 * 1024) });
export const checkAnswer = z.object({ sdp: z.string().min(1) });
export type CheckOffer = z.input<typeof checkOffer>;

// ---------------------------------------------------------------- probes

export const healthResponse = z.object({ ok: z.literal(true), rooms: z.number() });
export const readinessResponse = z.object({ ready: z.boolean(), database: z.boolean(), cluster: z.boolean(), draining: z.boolean() });
