/**
 * The key schedule of a call, WebCrypto only (browsers, workers, Node ≥ 20).
 *
 *   link secret (32 B, URL fragment) ─HKDF─┬─ lobby key (AES-256-GCM): seals knocks
 *                                          └─ auth key (HMAC-SHA-256): MACs link info and grants
 *   call key {secret, epoch} ─HKDF─┬─ ratchet → next epoch (on join)
 *                                  ├─ safety code
 *                                  └─ SFrame base key (see sframe.ts)
 *   ECDH P-256 (fresh per call) ─HKDF─ pairwise wrap key: carries the call key inside a grant
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
// Knock plaintexts are padded to a multiple of this, so the sealed size does not tell a name's length.
const KNOCK_PAD_BYTES = 512;
const KNOCK_MAX_PLAINTEXT = 4 * KNOCK_PAD_BYTES;
/** Longest sealed knock openKnock looks at (base64url characters); the protocol schema can use it. */
export const MAX_SEALED_KNOCK_LENGTH = Math.ceil(((GCM_IV_BYTES + KNOCK_MAX_PLAINTEXT + GCM_TAG_BYTES) * 4) / 3);

const LABEL = {
  lobby: 'linkcall v1 lobby key',
  auth: 'linkcall v1 auth key',
  linkInfo: 'linkcall v1 link info',
  knock: 'linkcall v1 knock',
  grantMac: 'linkcall v1 grant mac',
  grantWrap: 'linkcall v1 grant wrap',
  ratchet: 'linkcall v1 ratchet',
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

// ------------------------------------------------------------------ knocks

function isPublicKeyText(text: unknown): text is string {
  const raw = typeof text === 'string' ? fromBase64url(text, PUBLIC_KEY_BYTES) : undefined;
  return raw !== undefined && raw[0] === 0x04;
}

/**
 * A knock: the guest's name and fresh public key, sealed with the lobby key
 * (AES-GCM, random IV, AAD binds linkId). Result: base64url(iv ‖ ciphertext).
 * The name is not validated here; the caller shows it as text after its own checks.
 */
export async function sealKnock(keys: LinkKeys, linkId: string, card: { name: string; publicKey: string }): Promise<string> {
  if (typeof card?.name !== 'string' || !isPublicKeyText(card.publicKey)) {
    throw new TypeError('a knock needs a name and a base64url P-256 public key');
  }
  const json = utf8.encode(JSON.stringify({ name: card.name, publicKey: card.publicKey }));
  const padded = Math.ceil(json.length / KNOCK_PAD_BYTES) * KNOCK_PAD_BYTES;
  if (padded > KNOCK_MAX_PLAINTEXT) throw new TypeError('the name is too long for a knock');
  const plaintext = new Uint8Array(padded).fill(0x20); // JSON ignores trailing spaces
  plaintext.set(json);
  const iv = randomBytes(GCM_IV_BYTES);
  const sealed = await subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: fields(LABEL.knock, linkId) },
    keys.lobbyKey,
    plaintext,
  );
  return toBase64url(concat(iv, new Uint8Array(sealed)));
}

export async function openKnock(
  keys: LinkKeys,
  linkId: string,
  sealed: string,
): Promise<{ name: string; publicKey: string } | undefined> {
  if (typeof sealed !== 'string' || sealed.length > MAX_SEALED_KNOCK_LENGTH) return undefined;
  const raw = fromBase64url(sealed);
  if (!raw || raw.length < GCM_IV_BYTES + GCM_TAG_BYTES) return undefined;
  let card: unknown;
  try {
    const plaintext = await subtle.decrypt(
      { name: 'AES-GCM', iv: raw.subarray(0, GCM_IV_BYTES), additionalData: fields(LABEL.knock, linkId) },
      keys.lobbyKey,
      raw.subarray(GCM_IV_BYTES),
    );
    card = JSON.parse(utf8Decoder.decode(plaintext));
  } catch {
    return undefined;
  }
  if (typeof card !== 'object' || card === null) return undefined;
  const { name, publicKey } = card as Record<string, unknown>;
  if (typeof name !== 'string' || !isPublicKeyText(publicKey)) return undefined;
  return { name, publicKey };
}

// ------------------------------------------------------------------ call identity and call key

/** Per call, per participant: ECDH P-256, private key NON-extractable. publicKey = base64url of the raw point. */
export interface CallIdentity {
  keyPair: CryptoKeyPair;
  publicKey: string;
}

export async function newCallIdentity(): Promise<CallIdentity> {
  const keyPair = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
  // WebCrypto always makes the public half extractable; the private half stays inside.
  const raw = new Uint8Array(await subtle.exportKey('raw', keyPair.publicKey));
  return { keyPair, publicKey: toBase64url(raw) };
}

/** The call secret of one epoch. Epochs only grow: +1 on each join (ratchet) and each rotation. */
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

/** One-way step to the next epoch: whoever holds epoch n+1 cannot compute epoch n. */
export async function ratchet(key: CallKey): Promise<CallKey> {
  checkCallKey(key);
  const secret = await hkdf(key.secret, fields(LABEL.ratchet, uint64(key.epoch)), CALL_SECRET_BYTES);
  return { secret, epoch: key.epoch + 1 };
}

/**
 * Twelve digits in three groups ("4821 0937 5512"), ~40 bits: equal on every
 * screen that holds the same call key, different (but for a 1-in-10¹² chance) otherwise.
 */
export async function safetyCode(key: CallKey): Promise<string> {
  checkCallKey(key);
  const bytes = await hkdf(key.secret, fields(LABEL.safetyCode, uint64(key.epoch)), 12);
  const view = new DataView(bytes.buffer);
  const groups = [0, 4, 8].map((at) => String(view.getUint32(at) % 10_000).padStart(4, '0'));
  return groups.join(' ');
}

/**
 * The SFrame base_key of an epoch (RFC 9605 §4.4.2 input). Per-sender keys come
 * from it and the KID, which holds the sender index (see sframe.ts).
 */
export async function sframeBaseKey(key: CallKey): Promise<Uint8Array> {
  checkCallKey(key);
  return hkdf(key.secret, fields(LABEL.sframeBase, uint64(key.epoch)), CALL_SECRET_BYTES);
}

/**
 * A sender index for a new participant: 48 random bits. Two senders that share
 * an index in one epoch would share an SFrame key and nonce sequence, so
 * collisions must be negligible: among 33 senders the chance is 528 / 2⁴⁸ ≈ 2·10⁻¹²
 * per call. 48 bits keep the KID at 7 bytes (index ‖ epoch byte), frames ≤ 30 bytes bigger.
 */
export function newSenderIndex(): number {
  const b = randomBytes(6);
  return b[0]! * 2 ** 40 + b[1]! * 2 ** 32 + ((b[2]! << 24) >>> 0) + (b[3]! << 16) + (b[4]! << 8) + b[5]!;
}

export function checkSenderIndex(senderIndex: number): void {
  if (!Number.isSafeInteger(senderIndex) || senderIndex < 0 || senderIndex >= SENDER_INDEX_LIMIT) {
    throw new TypeError(`bad sender index ${String(senderIndex)}`);
  }
}

// ------------------------------------------------------------------ grants

/** Grant: approver → one participant, relayed by the server as an opaque record. */
export interface KeyGrant {
  approverPublicKey: string;
  recipientId: string;
  iv: string;
  wrapped: string;
  mac: string;
}

export type GrantRefusal = 'bad_mac' | 'wrong_recipient' | 'malformed' | 'undecryptable';

export class GrantRefused extends Error {
  constructor(readonly reason: GrantRefusal) {
    super(`key grant refused: ${reason}`);
    this.name = 'GrantRefused';
  }
}

const GRANT_PAYLOAD_BYTES = CALL_SECRET_BYTES + 8 + 8; // secret ‖ epoch ‖ senderIndex

interface GrantContext {
  linkId: string;
  recipientId: string;
  recipientPublicKey: string;
  approverPublicKey: string;
}

function grantContext(c: GrantContext, label: string): Bytes {
  return fields(label, c.linkId, c.recipientId, c.recipientPublicKey, c.approverPublicKey);
}

function grantMacBytes(c: GrantContext, iv: string, wrapped: string): Bytes {
  return fields(LABEL.grantMac, c.linkId, c.recipientId, c.recipientPublicKey, c.approverPublicKey, iv, wrapped);
}

/** ECDH between my private key and their public key, then HKDF bound to the whole context. */
async function wrapKey(mine: CallIdentity, theirs: CryptoKey, c: GrantContext): Promise<CryptoKey> {
  const shared = await subtle.deriveBits({ name: 'ECDH', public: theirs }, mine.keyPair.privateKey, 256);
  const ikm = await subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  return subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: NO_SALT, info: grantContext(c, LABEL.grantWrap) },
    ikm,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

function importPublicKey(text: string): Promise<CryptoKey> {
  const raw = fromBase64url(text, PUBLIC_KEY_BYTES);
  if (!raw) throw new TypeError('malformed public key');
  return subtle.importKey('raw', raw, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
}

/**
 * Grant: approver → one participant. ECDH(approver private, recipient public) → HKDF → AES-GCM wraps
 * {callKey, senderIndex}; the whole grant (incl. linkId, recipientId, recipientPublicKey,
 * approverPublicKey) is MACed with the link's auth key.
 */
export async function createGrant(
  keys: LinkKeys,
  approver: CallIdentity,
  p: { linkId: string; recipientId: string; recipientPublicKey: string; callKey: CallKey; senderIndex: number },
): Promise<KeyGrant> {
  checkCallKey(p.callKey);
  checkSenderIndex(p.senderIndex);
  if (typeof p.linkId !== 'string' || typeof p.recipientId !== 'string') throw new TypeError('linkId and recipientId are strings');
  if (!isPublicKeyText(p.recipientPublicKey)) throw new TypeError('malformed recipient public key');
  const context: GrantContext = {
    linkId: p.linkId,
    recipientId: p.recipientId,
    recipientPublicKey: p.recipientPublicKey,
    approverPublicKey: approver.publicKey,
  };
  const key = await wrapKey(approver, await importPublicKey(p.recipientPublicKey), context);
  const ivBytes = randomBytes(GCM_IV_BYTES);
  const payload = concat(p.callKey.secret, uint64(p.callKey.epoch), uint64(p.senderIndex));
  const wrappedBytes = new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv: ivBytes }, key, payload));
  const iv = toBase64url(ivBytes);
  const wrapped = toBase64url(wrappedBytes);
  return {
    approverPublicKey: approver.publicKey,
    recipientId: p.recipientId,
    iv,
    wrapped,
    mac: await mac(keys, grantMacBytes(context, iv, wrapped)),
  };
}

/**
 * Throws GrantRefused unless the grant verifies for me. The MAC is checked with
 * *my* id and *my* public key (fresh per call), so a grant made for anyone else,
 * or for me in another call, fails before anything is decrypted.
 */
export async function openGrant(
  keys: LinkKeys,
  me: CallIdentity,
  p: { linkId: string; myId: string },
  grant: KeyGrant,
): Promise<{ callKey: CallKey; senderIndex: number }> {
  const g = grant as Partial<Record<keyof KeyGrant, unknown>> | null;
  if (
    typeof g !== 'object' ||
    g === null ||
    typeof g.recipientId !== 'string' ||
    typeof g.iv !== 'string' ||
    typeof g.wrapped !== 'string' ||
    typeof g.mac !== 'string' ||
    !isPublicKeyText(g.approverPublicKey) ||
    !fromBase64url(g.iv, GCM_IV_BYTES) ||
    !fromBase64url(g.wrapped, GRANT_PAYLOAD_BYTES + GCM_TAG_BYTES) ||
    !fromBase64url(g.mac, MAC_BYTES)
  ) {
    throw new GrantRefused('malformed');
  }
  if (g.recipientId !== p.myId) throw new GrantRefused('wrong_recipient');
  const context: GrantContext = {
    linkId: p.linkId,
    recipientId: p.myId,
    recipientPublicKey: me.publicKey,
    approverPublicKey: g.approverPublicKey,
  };
  if (!(await verifyMac(keys, grantMacBytes(context, g.iv, g.wrapped), g.mac))) throw new GrantRefused('bad_mac');

  let approverKey: CryptoKey;
  try {
    approverKey = await importPublicKey(g.approverPublicKey); // off-curve points are refused here
  } catch {
    throw new GrantRefused('malformed');
  }
  let payload: Bytes;
  try {
    const key = await wrapKey(me, approverKey, context);
    const iv = fromBase64url(g.iv, GCM_IV_BYTES)!;
    payload = new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv }, key, fromBase64url(g.wrapped)!));
  } catch {
    throw new GrantRefused('undecryptable');
  }
  const epoch = readUint64(payload, CALL_SECRET_BYTES);
  const senderIndex = readUint64(payload, CALL_SECRET_BYTES + 8);
  if (epoch === undefined || senderIndex === undefined || senderIndex >= SENDER_INDEX_LIMIT) {
    throw new GrantRefused('malformed');
  }
  return { callKey: { secret: payload.slice(0, CALL_SECRET_BYTES), epoch }, senderIndex };
}
