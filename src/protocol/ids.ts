/**
 * The format of every id that crosses the wire, defined once for the server, the browser app and
 * bots. Ids are opaque random values (base64url) or, for accounts, a username a person chose.
 */
import { z } from 'zod';

/** Link ids are 128-bit random values, base64url without padding (22 characters). */
export const linkId = z.string().regex(/^[A-Za-z0-9_-]{22}$/);
/** A participant in one call (the server makes them). */
export const participantId = z.string().regex(/^[A-Za-z0-9_-]{1,32}$/);
/** What a participant keeps to come back as itself after a lost connection. */
export const resumeToken = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/);

/** An account's username: 3–32 letters, digits, dots, dashes or underscores (so never a control or bidi character). */
export const username = z.string().regex(/^[A-Za-z0-9._-]{3,32}$/);

/** The MAC of a link's public facts (name, host name), made in the host's browser with the link's key. */
export const linkInfoMac = z.string().regex(/^[A-Za-z0-9_-]{16,128}$/);
