/**
 * SFrame (RFC 9605) with AES_128_GCM_SHA256_128 over encoded media frames.
 *
 * Output frame: clear codec bytes ‖ SFrame header ‖ ciphertext ‖ 16-byte tag.
 * The clear bytes (VP8: 10 on key frames, 3 otherwise; Opus: 1) stay readable
 * for packetizers and the SFU, and are authenticated: AAD = header ‖ clear bytes
 * (RFC 9605 §4.4.3, the clear bytes being the "metadata"). The ciphertext covers
 * the whole frame, clear bytes included, so decryption yields the frame as it is
 * played, with no buffer to assemble; the receiver also checks that the clear
 * copy equals the encrypted one. That costs the clear bytes once more per frame.
 *
 * KID = sender index (below 2⁴⁸: a random 48-bit index or a small one such as an
 * MLS leaf index) ‖ epoch mod 256 (8 bits), the layout of RFC 9605 §5.2 with E = 8;
 * per-sender key and salt = derive_key_salt(KID, base_key of the epoch) (§4.4.2),
 * so every sender has its own key from the one call secret.
 * Overhead: 1 config byte + ≤ 7 KID bytes + 0–3 CTR bytes + 16 tag bytes ≤ 27 bytes
 * for the first 16.7 million frames of a sender.
 */
import {
  type Bytes,
  type CallKey,
  checkCallKey,
  checkSenderIndex,
  SENDER_INDEX_LIMIT,
  sframeBaseKey,
} from './keys.js';
import { EPOCH_MASK, type EpochKeys, KeyRing, ReplayWindow, type SenderKey } from './key-ring.js';

const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();
const NOTHING: Promise<undefined> = Promise.resolve(undefined);

/** AES_128_GCM_SHA256_128 in the IANA SFrame cipher suite registry. */
export const CIPHER_SUITE = 0x0004;
const KEY_BYTES = 16; // Nk
const NONCE_BYTES = 12; // Nn
export const TAG_BYTES = 16; // Nt
const MAX_CTR = Number.MAX_SAFE_INTEGER;
export const MAX_HEADER_BYTES = 1 + 8 + 8;
/** The most clear bytes a frame keeps (VP8 key frame): with the header, the largest AAD. */
export const MAX_CLEAR_BYTES = 10;

export type MediaKind = 'audio' | 'video';
export interface FrameMeta {
  kind: MediaKind;
  keyFrame: boolean;
}

/** How many leading codec bytes stay in clear: VP8 payload header (10 on key frames, 3 otherwise), Opus TOC byte. */
export function clearByteCount(meta: FrameMeta): number {
  if (meta.kind === 'audio') return 1;
  return meta.keyFrame ? 10 : 3;
}

/** Frames shorter than their clear bytes (empty frames) are encrypted whole. */
export function frameClearBytes(length: number, meta: FrameMeta): number {
  const clear = clearByteCount(meta);
  return length >= clear ? clear : 0;
}

function asBytes(u: Uint8Array): Bytes {
  return u.buffer instanceof ArrayBuffer ? (u as Bytes) : new Uint8Array(u);
}

// ------------------------------------------------------------------ header (RFC 9605 §4.3)

/** Minimal big-endian bytes of a non-negative integer below 2⁶⁴ (at least one byte). */
function compact(value: bigint): number[] {
  const out: number[] = [];
  do {
    out.unshift(Number(value & 0xffn));
    value >>= 8n;
  } while (value > 0n);
  return out;
}

/** config byte |X|K K K|Y|C C C|, then the KID and CTR when they do not fit in 3 bits. */
export function encodeHeader(kid: bigint, ctr: bigint): Bytes {
  if (kid < 0n || kid >= 1n << 64n || ctr < 0n || ctr >= 1n << 64n) throw new RangeError('KID and CTR are 64-bit');
  let config = 0;
  const tail: number[] = [];
  if (kid < 8n) config |= Number(kid) << 4;
  else {
    const k = compact(kid);
    config |= 0x80 | ((k.length - 1) << 4);
    tail.push(...k);
  }
  if (ctr < 8n) config |= Number(ctr);
  else {
    const c = compact(ctr);
    config |= 0x08 | (c.length - 1);
    tail.push(...c);
  }
  return new Uint8Array([config, ...tail]);
}

export function decodeHeader(data: Uint8Array, at = 0): { kid: bigint; ctr: bigint; length: number } | undefined {
  if (at >= data.length) return undefined;
  const config = data[at]!;
  let p = at + 1;
  const field = (extended: boolean, small: number): bigint | undefined => {
    if (!extended) return BigInt(small);
    const length = small + 1;
    if (p + length > data.length) return undefined;
    let v = 0n;
    for (let i = 0; i < length; i++) v = (v << 8n) | BigInt(data[p + i]!);
    p += length;
    return v;
  };
  const kid = field((config & 0x80) !== 0, (config >> 4) & 7);
  if (kid === undefined) return undefined;
  const ctr = field((config & 0x08) !== 0, config & 7);
  if (ctr === undefined) return undefined;
  return { kid, ctr, length: p - at };
}

// The per-frame path reads and writes headers with plain numbers: a KID is a sender
// index below 2⁴⁸ and an epoch byte, a CTR a safe integer, so no BigInt is needed.

/** Bytes of the minimal big-endian form of a safe integer (0 for 0). */
function bytesOf(value: number): number {
  let n = 0;
  for (; value > 0; value = Math.floor(value / 256)) n++;
  return n;
}

function writeUint(out: Uint8Array, at: number, value: number, bytes: number): void {
  for (let i = at + bytes - 1; i >= at; i--) {
    const low = value % 256;
    out[i] = low;
    value = (value - low) / 256;
  }
}

/** A big-endian integer: exact below 2⁵³; larger ones come out rounded but never below 2⁵³, and callers refuse those. */
function readUint(data: Uint8Array, at: number, bytes: number): number {
  let value = 0;
  for (let i = at; i < at + bytes; i++) value = value * 256 + data[i]!;
  return value;
}

/** encodeHeader(kidFor(senderIndex, epochByte), ctr) written at out[at]; returns its length. */
export function writeHeader(out: Uint8Array, at: number, senderIndex: number, epochByte: number, ctr: number): number {
  let config: number;
  let p = at + 1;
  if (senderIndex === 0 && epochByte < 8) config = epochByte << 4;
  else {
    const indexBytes = bytesOf(senderIndex);
    config = 0x80 | (indexBytes << 4); // KID length − 1 = the index bytes
    writeUint(out, p, senderIndex, indexBytes);
    p += indexBytes;
    out[p++] = epochByte;
  }
  if (ctr < 8) config |= ctr;
  else {
    const ctrBytes = bytesOf(ctr);
    config |= 0x08 | (ctrBytes - 1);
    writeUint(out, p, ctr, ctrBytes);
    p += ctrBytes;
  }
  out[at] = config;
  return p - at;
}

export interface HeaderFields {
  senderIndex: number;
  epochByte: number;
  ctr: number;
  length: number;
}

/** decodeHeader with the KID split into sender index (kid >> 8) and epoch byte, written into `out`; false if truncated. */
export function readHeader(data: Uint8Array, at: number, out: HeaderFields): boolean {
  if (at >= data.length) return false;
  const config = data[at]!;
  let p = at + 1;
  let senderIndex = 0;
  let epochByte = (config >> 4) & 7;
  if (config & 0x80) {
    const kidBytes = epochByte + 1;
    if (p + kidBytes > data.length) return false;
    senderIndex = readUint(data, p, kidBytes - 1);
    epochByte = data[p + kidBytes - 1]!;
    p += kidBytes;
  }
  let ctr = config & 7;
  if (config & 0x08) {
    const ctrBytes = ctr + 1;
    if (p + ctrBytes > data.length) return false;
    ctr = readUint(data, p, ctrBytes);
    p += ctrBytes;
  }
  out.senderIndex = senderIndex;
  out.epochByte = epochByte;
  out.ctr = ctr;
  out.length = p - at;
  return true;
}

// ------------------------------------------------------------------ keys and AEAD (RFC 9605 §4.4)

export interface SframeKey {
  key: CryptoKey;
  salt: Bytes;
}

function label(text: string, kid: bigint): Bytes {
  const prefix = utf8.encode(text);
  const out = new Uint8Array(prefix.length + 10);
  out.set(prefix);
  const view = new DataView(out.buffer);
  view.setBigUint64(prefix.length, kid);
  view.setUint16(prefix.length + 8, CIPHER_SUITE);
  return out;
}

/** derive_key_salt(KID, base_key); `usage` keeps a key for one direction only, as §4.4.1 asks. */
export async function deriveKeySalt(baseKey: Uint8Array, kid: bigint, usage: 'encrypt' | 'decrypt'): Promise<SframeKey> {
  const ikm = await subtle.importKey('raw', asBytes(baseKey), 'HKDF', false, ['deriveBits']);
  const params = (info: Bytes) => ({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info });
  const [keyBits, saltBits] = await Promise.all([
    subtle.deriveBits(params(label('SFrame 1.0 Secret key ', kid)), ikm, KEY_BYTES * 8),
    subtle.deriveBits(params(label('SFrame 1.0 Secret salt ', kid)), ikm, NONCE_BYTES * 8),
  ]);
  const key = await subtle.importKey('raw', keyBits, 'AES-GCM', false, [usage]);
  return { key, salt: new Uint8Array(saltBits) };
}

/**
 * A key and salt with the scratch all frames under it share. WebCrypto copies iv and
 * additionalData when encrypt or decrypt is called, so the next frame may overwrite
 * them at once, even while this one is still in the cipher.
 */
class FrameKey {
  readonly key: CryptoKey;
  readonly salt: Bytes;
  /** Header ‖ metadata of the frame being started. */
  readonly aad: Bytes;
  private readonly nonce: Bytes;
  private readonly aadViews: Bytes[] = [];

  constructor(k: SframeKey, aadBytes = MAX_HEADER_BYTES + MAX_CLEAR_BYTES) {
    this.key = k.key;
    this.salt = k.salt;
    this.nonce = k.salt.slice();
    this.aad = new Uint8Array(aadBytes);
  }

  /** salt XOR CTR (§4.4.3), the CTR as 64 bits big-endian; the salt's first 4 bytes never change. */
  nonceFor(ctr: number): Bytes {
    const nonce = this.nonce;
    const salt = this.salt;
    const high = Math.floor(ctr / 2 ** 32);
    const low = ctr >>> 0;
    nonce[4] = salt[4]! ^ (high >>> 24);
    nonce[5] = salt[5]! ^ ((high >>> 16) & 0xff);
    nonce[6] = salt[6]! ^ ((high >>> 8) & 0xff);
    nonce[7] = salt[7]! ^ (high & 0xff);
    nonce[8] = salt[8]! ^ (low >>> 24);
    nonce[9] = salt[9]! ^ ((low >>> 16) & 0xff);
    nonce[10] = salt[10]! ^ ((low >>> 8) & 0xff);
    nonce[11] = salt[11]! ^ (low & 0xff);
    return nonce;
  }

  /** The first `bytes` of the AAD scratch; views are made once per length. */
  aadOf(bytes: number): Bytes {
    return (this.aadViews[bytes] ??= this.aad.subarray(0, bytes));
  }
}

/** Copies source[from..to) to out[at..); a loop, as the ranges here are a few bytes. */
function copyBytes(out: Uint8Array, at: number, source: Uint8Array, from: number, to: number): void {
  for (let i = from; i < to; i++) out[at++] = source[i]!;
}

/** encrypt(CTR, KID, metadata, plaintext) of §4.4.3: header ‖ ciphertext. */
export async function sframeEncrypt(k: SframeKey, kid: bigint, ctr: number, metadata: Uint8Array, plaintext: Uint8Array): Promise<Bytes> {
  const header = encodeHeader(kid, BigInt(ctr));
  const frameKey = new FrameKey(k, header.length + metadata.length);
  frameKey.aad.set(header);
  frameKey.aad.set(metadata, header.length);
  const sealed = await subtle.encrypt(
    { name: 'AES-GCM', iv: frameKey.nonceFor(ctr), additionalData: frameKey.aad },
    k.key,
    asBytes(plaintext),
  );
  const out = new Uint8Array(header.length + sealed.byteLength);
  out.set(header);
  out.set(new Uint8Array(sealed), header.length);
  return out;
}

/** decrypt(metadata, sframe_ciphertext) of §4.4.4 for a known key; undefined if it does not authenticate. */
export async function sframeDecrypt(k: SframeKey, metadata: Uint8Array, frame: Uint8Array): Promise<Bytes | undefined> {
  const header = decodeHeader(frame);
  if (!header || header.ctr > BigInt(MAX_CTR) || frame.length - header.length < TAG_BYTES) return undefined;
  const frameKey = new FrameKey(k, header.length + metadata.length);
  frameKey.aad.set(frame.subarray(0, header.length));
  frameKey.aad.set(metadata, header.length);
  try {
    const plaintext = await subtle.decrypt(
      { name: 'AES-GCM', iv: frameKey.nonceFor(Number(header.ctr)), additionalData: frameKey.aad },
      k.key,
      asBytes(frame).subarray(header.length),
    );
    return new Uint8Array(plaintext);
  } catch {
    return undefined;
  }
}

export function kidFor(senderIndex: number, epoch: number): bigint {
  return (BigInt(senderIndex) << 8n) | BigInt(epoch & EPOCH_MASK);
}

// ------------------------------------------------------------------ frame cryptor

/** A sender's key in one epoch, on the receiving side. */
class ReceiveKey extends FrameKey implements SenderKey {
  readonly replay = new ReplayWindow();
  /** A frame has authenticated with this key (unverified KIDs are not kept). */
  verified = false;
}

interface SendKey {
  frameKey: FrameKey;
  senderIndex: number;
  epochByte: number;
}

/** clear bytes ‖ header ‖ E(whole frame) ‖ tag, allocated once at its final size. */
function sealFrame(send: SendKey, ctr: number, data: Bytes, clear: number): Promise<Bytes> {
  const { frameKey } = send;
  const aad = frameKey.aad;
  const headerBytes = writeHeader(aad, 0, send.senderIndex, send.epochByte, ctr);
  copyBytes(aad, headerBytes, data, 0, clear);
  const bodyAt = clear + headerBytes;
  // Filled before the await: the next frame may reuse the scratch meanwhile.
  const out = new Uint8Array(bodyAt + data.length + TAG_BYTES);
  copyBytes(out, 0, data, 0, clear);
  copyBytes(out, clear, aad, 0, headerBytes);
  return subtle
    .encrypt({ name: 'AES-GCM', iv: frameKey.nonceFor(ctr), additionalData: frameKey.aadOf(bodyAt) }, frameKey.key, data)
    .then((sealed) => {
      out.set(new Uint8Array(sealed), bodyAt);
      return out;
    });
}

/** Whether the decrypted frame starts with the clear bytes the frame carried. */
function clearBytesMatch(data: Bytes, clear: number, plaintext: Uint8Array): boolean {
  if (plaintext.length < clear) return false;
  for (let i = 0; i < clear; i++) if (plaintext[i] !== data[i]) return false;
  return true;
}

/**
 * Encrypts this participant's frames and decrypts everyone else's. One instance
 * per participant and call: the frame counter is never reset, so no two frames
 * sent by this instance share a nonce, whatever keys it is given.
 */
export class FrameCryptor {
  private send?: SendKey;
  private sendKeyCalls = 0;
  private counter = 0;
  private readonly ring: KeyRing<ReceiveKey>;
  /** Scratch for the header of the frame being opened. */
  private readonly header: HeaderFields = { senderIndex: 0, epochByte: 0, ctr: 0, length: 0 };

  constructor(opts: { graceMs?: number; now?: () => number } = {}) {
    this.ring = new KeyRing(opts);
  }

  async setSendKey(key: CallKey, senderIndex: number): Promise<void> {
    checkCallKey(key);
    checkSenderIndex(senderIndex);
    const call = ++this.sendKeyCalls;
    const k = await deriveKeySalt(await sframeBaseKey(key), kidFor(senderIndex, key.epoch), 'encrypt');
    // The last call wins, whatever order derivations end in.
    if (call === this.sendKeyCalls) this.send = { frameKey: new FrameKey(k), senderIndex, epochByte: key.epoch & EPOCH_MASK };
  }

  /** Previous epochs stay readable for graceMs after a newer one is added. */
  async addReceiveKey(key: CallKey): Promise<void> {
    checkCallKey(key);
    await this.ring.add(key);
  }

  encrypt(frame: Uint8Array, meta: FrameMeta): Promise<Uint8Array> {
    const send = this.send;
    if (!send) return Promise.reject(new Error('FrameCryptor has no send key'));
    const ctr = this.counter++; // taken before any await: concurrent frames never share it
    return sealFrame(send, ctr, asBytes(frame), frameClearBytes(frame.length, meta));
  }

  /** undefined: the frame cannot be authenticated (unknown or expired key, tampered, replayed) — drop it. */
  decrypt(frame: Uint8Array, meta: FrameMeta): Promise<Uint8Array | undefined> {
    const clear = clearByteCount(meta);
    const data = asBytes(frame);
    // A frame shorter than its clear bytes was sent wholly encrypted; only a
    // small frame can be one, so only small frames get a second try.
    if (data.length > clear - 1 + MAX_HEADER_BYTES + TAG_BYTES) return this.openAt(data, clear);
    return this.openSmall(data, clear);
  }

  private async openSmall(data: Bytes, clear: number): Promise<Uint8Array | undefined> {
    return (await this.openAt(data, clear)) ?? (await this.openAt(data, 0));
  }

  /** The frame whose header starts at data[clear]; one await once its sender's key is known. */
  private openAt(data: Bytes, clear: number): Promise<Uint8Array | undefined> {
    const header = this.header; // read synchronously, before any other frame can reuse it
    if (!readHeader(data, clear, header)) return NOTHING;
    const { senderIndex, epochByte, ctr, length: headerBytes } = header;
    const bodyAt = clear + headerBytes;
    if (senderIndex >= SENDER_INDEX_LIMIT || ctr > MAX_CTR || data.length - bodyAt < TAG_BYTES) return NOTHING;
    const epoch = this.ring.epoch(epochByte);
    if (!epoch) return NOTHING;
    const sender = epoch.sender(senderIndex);
    // Known senders take one promise per frame; a sender's first frame waits for its key.
    if (sender) return this.openWith(epoch, sender, senderIndex, data, clear, headerBytes, ctr);
    return this.senderKey(epoch, senderIndex).then((k) =>
      k ? this.openWith(epoch, k, senderIndex, data, clear, headerBytes, ctr) : undefined,
    );
  }

  private openWith(
    epoch: EpochKeys<ReceiveKey>,
    sender: ReceiveKey,
    senderIndex: number,
    data: Bytes,
    clear: number,
    headerBytes: number,
    ctr: number,
  ): Promise<Uint8Array | undefined> {
    if (!sender.replay.fresh(ctr)) return NOTHING;
    const bodyAt = clear + headerBytes;
    const aad = sender.aad;
    copyBytes(aad, 0, data, clear, bodyAt);
    copyBytes(aad, headerBytes, data, 0, clear);
    return subtle
      .decrypt({ name: 'AES-GCM', iv: sender.nonceFor(ctr), additionalData: sender.aadOf(bodyAt) }, sender.key, data.subarray(bodyAt))
      .then(
        (plaintext) => {
          const frame = new Uint8Array(plaintext);
          // The SFU could alter the clear copy; what authenticated is the encrypted one.
          if (!clearBytesMatch(data, clear, frame)) return undefined;
          if (!sender.replay.mark(ctr)) return undefined;
          sender.verified = true;
          return frame;
        },
        () => {
          epoch.forget(senderIndex, sender);
          return undefined;
        },
      );
  }

  /**
   * A sender's first frame in an epoch: its key to derive. Only epochs we were given are read — MLS
   * epochs are not a ratchet, and anything derived from an older key could come from someone removed.
   */
  private async senderKey(epoch: EpochKeys<ReceiveKey>, senderIndex: number): Promise<ReceiveKey | undefined> {
    try {
      const kid = kidFor(senderIndex, epoch.key.epoch);
      return await epoch.deriveSender(senderIndex, async (baseKey) => new ReceiveKey(await deriveKeySalt(baseKey, kid, 'decrypt')));
    } catch {
      return undefined; // a key derivation failed: the frame cannot be read
    }
  }
}
