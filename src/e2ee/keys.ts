/**
 * The link's keys, WebCrypto only (browsers, workers, Node ≥ 20).
 *
 *   link secret (32 B, URL fragment) ─HKDF─┬─ lobby key (AES-256-GCM): seals knocks (cards)
 *                                          └─ auth key (HMAC-SHA-256): MACs the link's name and host name
 *   call key {secret, epoch}: the MLS exporter secret of an epoch (see mls.ts) ─HKDF─ SFrame base key (sframe.ts)
 *
 * Every HKDF use has its own label, so no two derivations can collide. Nothing
 * here logs: errors never carry key material, names or secrets.
 */

export type Bytes = Uint8Array<ArrayBuffer>;

const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const NO_SALT = new Uint8Array(0);

export const LINK_SECRET_BYTES = 32;
export const CALL_SECRET_BYTES = 32;
/** Sender indexes are 48-bit (see newSenderIndex). */
export const SENDER_INDEX_LIMIT = 2 ** 48;
const PUBLIC_KEY_BYTES = 65; // uncompressed P-256 point: 0x04 ‖ x ‖ y
const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const MAC_BYTES = 32;
// Card plaintexts are padded to a multiple of this, so the sealed size does not tell a name's length.
const CARD_PAD_BYTES = 1024;
const CARD_MAX_PLAINTEXT = 2 * CARD_PAD_BYTES;
/** Longest sealed card openCard looks at (base64url characters); within the protocol's 4096. */
export const MAX_SEALED_CARD_LENGTH = Math.ceil(((GCM_IV_BYTES + CARD_MAX_PLAINTEXT + GCM_TAG_BYTES) * 4) / 3);

const LABEL = {
  lobby: 'linkcall v1 lobby key',
  auth: 'linkcall v1 auth key',
  linkInfo: 'linkcall v1 link info',
  groupId: 'linkcall v1 group id',
  lobbyNote: 'linkcall v1 lobby note',
  knock: 'linkcall v1 knock',
  safetyCode: 'linkcall v1 safety code',
  sframeBase: 'linkcall v1 sframe base key',
} as const;

// ------------------------------------------------------------------ encoding

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

/** base64url without padding. */
export function toBase64url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]!;
  }
  return out;
}

/** Strict base64url (no padding, canonical trailing bits); undefined when malformed. */
export function fromBase64url(text: string, expectedLength?: number): Bytes | undefined {
  if (typeof text !== 'string' || text.length % 4 === 1) return undefined;
  const length = Math.floor((text.length * 3) / 4);
  if (expectedLength !== undefined && length !== expectedLength) return undefined;
  const out = new Uint8Array(length);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? DECODE[c]! : -1;
    if (v < 0) return undefined;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  // Leftover bits must be zero, so every byte string has exactly one text form.
  if ((acc & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}

function concat(...parts: Uint8Array[]): Bytes {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An unambiguous encoding of a label and fields: each field prefixed with its 4-byte length. */
function fields(label: string, ...values: (string | Uint8Array)[]): Bytes {
  const parts: Uint8Array[] = [utf8.encode(label)];
  for (const v of values) {
    const bytes = typeof v === 'string' ? utf8.encode(v) : v;
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, bytes.length);
    parts.push(length, bytes);
  }
  return concat(...parts);
}

/** 8-byte big-endian encoding of a safe non-negative integer. */
export function uint64(n: number): Bytes {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(n / 2 ** 32));
  view.setUint32(4, n >>> 0);
  return out;
}

function readUint64(bytes: Uint8Array, at: number): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, 8);
  const high = view.getUint32(0);
  if (high >= 2 ** 21) return undefined; // not a safe integer
  return high * 2 ** 32 + view.getUint32(4);
}

/** A copy owned by us, on a plain ArrayBuffer (what WebCrypto's typings want). */
function own(bytes: Uint8Array): Bytes {
  return new Uint8Array(bytes);
}

function randomBytes(n: number): Bytes {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

async function hkdf(secret: Uint8Array, info: Uint8Array, bytes: number): Promise<Bytes> {
  const ikm = await subtle.importKey('raw', own(secret), 'HKDF', false, ['deriveBits']);
  const bits = await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: NO_SALT, info: own(info) }, ikm, bytes * 8);
  return new Uint8Array(bits);
}

// ------------------------------------------------------------------ link secret

export function newLinkSecret(): Uint8Array {
  return randomBytes(LINK_SECRET_BYTES);
}

/** base64url without padding: 43 characters, safe in a URL fragment. */
export function encodeSecret(secret: Uint8Array): string {
  if (!(secret instanceof Uint8Array) || secret.length !== LINK_SECRET_BYTES) {
    throw new TypeError(`a link secret is ${LINK_SECRET_BYTES} bytes`);
  }
  return toBase64url(secret);
}

export function decodeSecret(text: string): Uint8Array | undefined {
  if (typeof text !== 'string' || text.length !== 43) return undefined;
  return fromBase64url(text, LINK_SECRET_BYTES);
}

export interface LinkKeys {
  lobbyKey: CryptoKey;
  authKey: CryptoKey;
}

export async function deriveLinkKeys(secret: Uint8Array): Promise<LinkKeys> {
  if (!(secret instanceof Uint8Array) || secret.length !== LINK_SECRET_BYTES) {
    throw new TypeError(`a link secret is ${LINK_SECRET_BYTES} bytes`);
  }
  const ikm = await subtle.importKey('raw', own(secret), 'HKDF', false, ['deriveKey']);
  const params = (label: string) => ({ name: 'HKDF', hash: 'SHA-256', salt: NO_SALT, info: utf8.encode(label) });
  const [lobbyKey, authKey] = await Promise.all([
    subtle.deriveKey(params(LABEL.lobby), ikm, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']),
    subtle.deriveKey(params(LABEL.auth), ikm, { name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign', 'verify']),
  ]);
  return { lobbyKey, authKey };
}

async function mac(keys: LinkKeys, data: Bytes): Promise<string> {
  return toBase64url(new Uint8Array(await subtle.sign('HMAC', keys.authKey, data)));
}

async function verifyMac(keys: LinkKeys, data: Bytes, macText: string): Promise<boolean> {
  const tag = fromBase64url(macText, MAC_BYTES);
  if (!tag) return false;
  return subtle.verify('HMAC', keys.authKey, tag, data); // constant-time compare
}

function linkInfoBytes(linkId: string, info: { name: string; hostName: string }): Bytes {
  return fields(LABEL.linkInfo, linkId, info.name, info.hostName);
}

/** MAC of the link's public facts, made by the host's browser at link creation; lets a guest verify name + host name. */
export function signLinkInfo(keys: LinkKeys, linkId: string, info: { name: string; hostName: string }): Promise<string> {
  return mac(keys, linkInfoBytes(linkId, info));
}

export async function verifyLinkInfo(
  keys: LinkKeys,
  linkId: string,
  info: { name: string; hostName: string },
  macText: string,
): Promise<boolean> {
  if (typeof info?.name !== 'string' || typeof info.hostName !== 'string') return false;
  return verifyMac(keys, linkInfoBytes(linkId, info), macText);
}

// ------------------------------------------------------------------ MLS group ids

/**
 * A call's MLS group id: 16 random bytes ‖ the first 16 bytes of their MAC with the link's auth key.
 * Only a link holder can make one, so a server cannot hand a guest a Welcome into a group of its own.
 */
export async function newGroupId(keys: LinkKeys, linkId: string): Promise<Bytes> {
  const nonce = randomBytes(16);
  const tag = new Uint8Array(await subtle.sign('HMAC', keys.authKey, fields(LABEL.groupId, linkId, nonce)));
  return concat(nonce, tag.subarray(0, 16));
}

export async function checkGroupId(keys: LinkKeys, linkId: string, groupId: Uint8Array): Promise<boolean> {
  if (!(groupId instanceof Uint8Array) || groupId.length !== 32) return false;
  const tag = new Uint8Array(await subtle.sign('HMAC', keys.authKey, fields(LABEL.groupId, linkId, own(groupId.subarray(0, 16)))));
  let diff = 0;
  for (let i = 0; i < 16; i++) diff |= tag[i]! ^ groupId[16 + i]!;
  return diff === 0;
}

// ------------------------------------------------------------------ sealed cards (knocks)

/**
 * A card: bytes (the guest's MLS KeyPackage) sealed with the lobby key — AES-GCM, random IV,
 * AAD binds linkId — so the server relays a name it cannot read. The plaintext is
 * length ‖ bytes, padded to a multiple of CARD_PAD_BYTES so the size does not tell a name's length.
 * Result: base64url(iv ‖ ciphertext).
 */
export async function sealCard(keys: LinkKeys, linkId: string, payload: Uint8Array): Promise<string> {
  if (!(payload instanceof Uint8Array) || payload.length === 0) throw new TypeError('a card carries bytes');
  const padded = Math.ceil((payload.length + 2) / CARD_PAD_BYTES) * CARD_PAD_BYTES;
  if (padded > CARD_MAX_PLAINTEXT) throw new TypeError('the card is too long (a shorter name fits)');
  const plaintext = new Uint8Array(padded);
  new DataView(plaintext.buffer).setUint16(0, payload.length);
  plaintext.set(payload, 2);
  const iv = randomBytes(GCM_IV_BYTES);
  const sealed = await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: fields(LABEL.knock, linkId) }, keys.lobbyKey, plaintext);
  return toBase64url(concat(iv, new Uint8Array(sealed)));
}

/** The card's bytes; undefined when it does not open with this link's lobby key. */
export async function openCard(keys: LinkKeys, linkId: string, sealed: string): Promise<Bytes | undefined> {
  if (typeof sealed !== 'string' || sealed.length > MAX_SEALED_CARD_LENGTH) return undefined;
  const raw = fromBase64url(sealed);
  if (!raw || raw.length < GCM_IV_BYTES + GCM_TAG_BYTES + 2) return undefined;
  let plaintext: Bytes;
  try {
    plaintext = new Uint8Array(
      await subtle.decrypt(
        { name: 'AES-GCM', iv: raw.subarray(0, GCM_IV_BYTES), additionalData: fields(LABEL.knock, linkId) },
        keys.lobbyKey,
        raw.subarray(GCM_IV_BYTES),
      ),
    );
  } catch {
    return undefined;
  }
  const length = new DataView(plaintext.buffer).getUint16(0);
  if (length === 0 || 2 + length > plaintext.length) return undefined;
  return plaintext.slice(2, 2 + length);
}

// ------------------------------------------------------------------ lobby notes

/**
 * A short note from the host to one waiting guest ("Two minutes, finishing another call"), sealed
 * with the lobby key and bound to that guest's knock (the nonce in its KeyPackage credential), so
 * the server can neither read it nor hand it to another guest.
 */
export async function sealLobbyNote(keys: LinkKeys, linkId: string, knockNonce: string, text: string): Promise<string> {
  const iv = randomBytes(GCM_IV_BYTES);
  const sealed = await subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: fields(LABEL.lobbyNote, linkId, knockNonce) },
    keys.lobbyKey,
    utf8.encode(text),
  );
  return toBase64url(concat(iv, new Uint8Array(sealed)));
}

export async function openLobbyNote(keys: LinkKeys, linkId: string, knockNonce: string, sealed: string): Promise<string | undefined> {
  const raw = typeof sealed === 'string' && sealed.length <= 2048 ? fromBase64url(sealed) : undefined;
  if (!raw || raw.length < GCM_IV_BYTES + GCM_TAG_BYTES) return undefined;
  try {
    const plain = await subtle.decrypt(
      { name: 'AES-GCM', iv: raw.subarray(0, GCM_IV_BYTES), additionalData: fields(LABEL.lobbyNote, linkId, knockNonce) },
      keys.lobbyKey,
      raw.subarray(GCM_IV_BYTES),
    );
    return new TextDecoder('utf-8', { fatal: true }).decode(plain);
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ call key

/** The frame key of one MLS epoch: its exporter secret (see mls.ts callKey) and the epoch number. */
export interface CallKey {
  secret: Uint8Array;
  epoch: number;
}

/** Throws TypeError unless `key` is a well-formed CallKey. */
export function checkCallKey(key: CallKey): void {
  if (!(key?.secret instanceof Uint8Array) || key.secret.length !== CALL_SECRET_BYTES) {
    throw new TypeError(`a call secret is ${CALL_SECRET_BYTES} bytes`);
  }
  if (!Number.isSafeInteger(key.epoch) || key.epoch < 0) throw new TypeError(`bad epoch ${String(key.epoch)}`);
}

export function newCallKey(epoch: number): CallKey {
  const key = { secret: randomBytes(CALL_SECRET_BYTES), epoch };
  checkCallKey(key);
  return key;
}

/**
 * The SFrame base_key of an epoch (RFC 9605 §4.4.2 input). Per-sender keys come
 * from it and the KID, which holds the sender index (see sframe.ts).
 */
export async function sframeBaseKey(key: CallKey): Promise<Uint8Array> {
  checkCallKey(key);
  return hkdf(key.secret, fields(LABEL.sframeBase, uint64(key.epoch)), CALL_SECRET_BYTES);
}


/** Sender indexes are MLS leaf indexes here; the SFrame KID has room for 48 bits. */
export function checkSenderIndex(senderIndex: number): void {
  if (!Number.isSafeInteger(senderIndex) || senderIndex < 0 || senderIndex >= SENDER_INDEX_LIMIT) {
    throw new TypeError(`bad sender index ${String(senderIndex)}`);
  }
}

// ------------------------------------------------------------------ the link's fragment

/** What a call link carries after `#`, never sent to the server: the secret and the host's pinned key hash. */
export interface LinkFragment {
  secret: Uint8Array;
  /** base64url SHA-256 of the link owner's MLS signature key (like FaceTime's `p=`). */
  hostKeyHash: string;
}

/** `k=<secret>&h=<hostKeyHash>` (either order); undefined when either is missing or malformed. */
export function parseLinkFragment(fragment: string): LinkFragment | undefined {
  const params = new URLSearchParams(fragment.replace(/^#/, ''));
  const secret = decodeSecret(params.get('k') ?? '');
  const hostKeyHash = params.get('h') ?? '';
  if (!secret || !/^[A-Za-z0-9_-]{43}$/.test(hostKeyHash) || !fromBase64url(hostKeyHash, 32)) return undefined;
  return { secret, hostKeyHash };
}

export function linkFragment(secret: Uint8Array, hostKeyHash: string): string {
  return `k=${encodeSecret(secret)}&h=${hostKeyHash}`;
}
