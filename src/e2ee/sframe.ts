/**
 * SFrame (RFC 9605) with AES_128_GCM_SHA256_128 over encoded media frames.
 *
 * Output frame: clear codec bytes ‖ SFrame header ‖ ciphertext ‖ 16-byte tag.
 * The clear bytes (VP8: 10 on key frames, 3 otherwise; Opus: 1) stay readable
 * for packetizers and the SFU, and are authenticated: AAD = header ‖ clear bytes
 * (RFC 9605 §4.4.3, the clear bytes being the "metadata").
 *
 * KID = sender index (48 bits) ‖ epoch mod 256 (8 bits), the layout of RFC 9605
 * §5.2 with E = 8; per-sender key and salt = derive_key_salt(KID, base_key of the
 * epoch) (§4.4.2), so every sender has its own key from the one call secret.
 * Overhead: 1 config byte + ≤ 7 KID bytes + 0–3 CTR bytes + 16 tag bytes ≤ 27 bytes
 * for the first 16.7 million frames of a sender.
 */
import {
  type Bytes,
  type CallKey,
  checkCallKey,
  checkSenderIndex,
  ratchet,
  SENDER_INDEX_LIMIT,
  sframeBaseKey,
} from './keys.js';

const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();

/** AES_128_GCM_SHA256_128 in the IANA SFrame cipher suite registry. */
export const CIPHER_SUITE = 0x0004;
const KEY_BYTES = 16; // Nk
const NONCE_BYTES = 12; // Nn
export const TAG_BYTES = 16; // Nt
const EPOCH_BITS = 8n;
const EPOCH_MASK = 0xff;
const INDEX_LIMIT = BigInt(SENDER_INDEX_LIMIT);
/** Counters a receiver remembers per sender key, to refuse replayed frames. */
const REPLAY_WINDOW = 1024;
const MAX_CTR = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_HEADER_BYTES = 1 + 8 + 8;

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
function frameClearBytes(length: number, meta: FrameMeta): number {
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

function nonceFor(salt: Bytes, ctr: number): Bytes {
  const nonce = salt.slice();
  const view = new DataView(nonce.buffer);
  view.setUint32(4, view.getUint32(4) ^ Math.floor(ctr / 2 ** 32));
  view.setUint32(8, view.getUint32(8) ^ (ctr >>> 0));
  return nonce;
}

function aadFor(header: Uint8Array, metadata: Uint8Array): Bytes {
  const aad = new Uint8Array(header.length + metadata.length);
  aad.set(header);
  aad.set(metadata, header.length);
  return aad;
}

/** encrypt(CTR, KID, metadata, plaintext) of §4.4.3: header ‖ ciphertext. */
export function sframeEncrypt(k: SframeKey, kid: bigint, ctr: number, metadata: Uint8Array, plaintext: Uint8Array): Promise<Bytes> {
  return sealFrame(k, kid, ctr, metadata, plaintext, new Uint8Array(0));
}

/** decrypt(metadata, sframe_ciphertext) of §4.4.4 for a known key; undefined if it does not authenticate. */
export function sframeDecrypt(k: SframeKey, metadata: Uint8Array, frame: Uint8Array): Promise<Bytes | undefined> {
  const header = decodeHeader(frame);
  if (!header) return Promise.resolve(undefined);
  return openFrame(k, header, metadata, frame, new Uint8Array(0));
}

type Header = NonNullable<ReturnType<typeof decodeHeader>>;

/** prefix ‖ header ‖ ciphertext, in one allocation (frames are copied once). */
async function sealFrame(k: SframeKey, kid: bigint, ctr: number, metadata: Uint8Array, plaintext: Uint8Array, prefix: Uint8Array): Promise<Bytes> {
  const header = encodeHeader(kid, BigInt(ctr));
  const sealed = await subtle.encrypt(
    { name: 'AES-GCM', iv: nonceFor(k.salt, ctr), additionalData: aadFor(header, metadata) },
    k.key,
    asBytes(plaintext),
  );
  const out = new Uint8Array(prefix.length + header.length + sealed.byteLength);
  out.set(prefix);
  out.set(header, prefix.length);
  out.set(new Uint8Array(sealed), prefix.length + header.length);
  return out;
}

/** prefix ‖ plaintext of an SFrame ciphertext whose header is already parsed, or undefined. */
async function openFrame(k: SframeKey, header: Header, metadata: Uint8Array, frame: Uint8Array, prefix: Uint8Array): Promise<Bytes | undefined> {
  if (header.ctr > MAX_CTR || frame.length - header.length < TAG_BYTES) return undefined;
  let plaintext: ArrayBuffer;
  try {
    plaintext = await subtle.decrypt(
      {
        name: 'AES-GCM',
        iv: nonceFor(k.salt, Number(header.ctr)),
        additionalData: aadFor(frame.subarray(0, header.length), metadata),
      },
      k.key,
      asBytes(frame).subarray(header.length),
    );
  } catch {
    return undefined;
  }
  const out = new Uint8Array(prefix.length + plaintext.byteLength);
  out.set(prefix);
  out.set(new Uint8Array(plaintext), prefix.length);
  return out;
}

export function kidFor(senderIndex: number, epoch: number): bigint {
  return (BigInt(senderIndex) << EPOCH_BITS) | BigInt(epoch & EPOCH_MASK);
}

// ------------------------------------------------------------------ frame cryptor

/** Counters seen recently for one sender key: refuses a frame the SFU sends twice. */
class ReplayWindow {
  private highest = -1;
  private readonly seen = new Uint8Array(REPLAY_WINDOW);

  fresh(ctr: number): boolean {
    if (ctr > this.highest) return true;
    return this.highest - ctr < REPLAY_WINDOW && this.seen[ctr % REPLAY_WINDOW] === 0;
  }

  /** Records an authenticated counter; false if it was seen meanwhile. */
  mark(ctr: number): boolean {
    if (!this.fresh(ctr)) return false;
    if (ctr > this.highest) {
      const from = Math.max(this.highest + 1, ctr - REPLAY_WINDOW + 1);
      for (let c = from; c < ctr; c++) this.seen[c % REPLAY_WINDOW] = 0;
      this.highest = ctr;
    }
    this.seen[ctr % REPLAY_WINDOW] = 1;
    return true;
  }
}

interface SenderKeys extends SframeKey {
  replay: ReplayWindow;
  /** A frame has authenticated with these keys (unverified KIDs are not kept). */
  verified: boolean;
}

/** The receive keys of one epoch; per-sender keys are derived when a sender's first frame arrives. */
class EpochKeys {
  expiresAt = Infinity;
  private readonly senders = new Map<bigint, Promise<SenderKeys>>();

  private constructor(
    readonly key: CallKey,
    private readonly baseKey: Uint8Array,
  ) {}

  static async derive(key: CallKey): Promise<EpochKeys> {
    const own = { secret: new Uint8Array(key.secret), epoch: key.epoch };
    return new EpochKeys(own, await sframeBaseKey(own));
  }

  sender(kid: bigint): Promise<SenderKeys> {
    let keys = this.senders.get(kid);
    if (!keys) {
      keys = deriveKeySalt(this.baseKey, kid, 'decrypt').then((k) => ({ ...k, replay: new ReplayWindow(), verified: false }));
      this.senders.set(kid, keys);
    }
    return keys;
  }

  /** Forget keys derived for a KID that never authenticated a frame (a forged KID must not cost memory). */
  forget(kid: bigint, keys: SenderKeys): void {
    if (!keys.verified) this.senders.delete(kid);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

interface SendState extends SframeKey {
  kid: bigint;
}

/**
 * Encrypts this participant's frames and decrypts everyone else's. One instance
 * per participant and call: the frame counter is never reset, so no two frames
 * sent by this instance share a nonce, whatever keys it is given.
 */
export class FrameCryptor {
  private readonly graceMs: number;
  private readonly now: () => number;
  private send?: SendState;
  private sendKeyCalls = 0;
  private counter = 0;
  /** Receive keys by epoch mod 256 (a newer epoch with the same low byte replaces the older, §5.2). */
  private readonly ring = new Map<number, EpochKeys>();
  /** The ratchet of the newest epoch, tried when a frame of the next epoch arrives first. */
  private next?: { from: EpochKeys; keys: Promise<EpochKeys> };

  constructor(opts: { graceMs?: number; now?: () => number } = {}) {
    this.graceMs = opts.graceMs ?? 5000;
    this.now = opts.now ?? (() => Date.now());
  }

  async setSendKey(key: CallKey, senderIndex: number): Promise<void> {
    checkCallKey(key);
    checkSenderIndex(senderIndex);
    const call = ++this.sendKeyCalls;
    const kid = kidFor(senderIndex, key.epoch);
    const k = await deriveKeySalt(await sframeBaseKey(key), kid, 'encrypt');
    if (call === this.sendKeyCalls) this.send = { ...k, kid }; // the last call wins, whatever order derivations end in
  }

  /** Previous epochs stay readable for graceMs after a newer one is added. */
  async addReceiveKey(key: CallKey): Promise<void> {
    checkCallKey(key);
    this.install(await EpochKeys.derive(key));
  }

  async encrypt(frame: Uint8Array, meta: FrameMeta): Promise<Uint8Array> {
    const send = this.send;
    if (!send) throw new Error('FrameCryptor has no send key');
    const ctr = this.counter++; // taken before any await: concurrent frames never share it
    const clear = frameClearBytes(frame.length, meta);
    const data = asBytes(frame);
    const metadata = data.subarray(0, clear);
    return sealFrame(send, send.kid, ctr, metadata, data.subarray(clear), metadata);
  }

  /** undefined: the frame cannot be authenticated (unknown or expired key, tampered, replayed) — drop it. */
  async decrypt(frame: Uint8Array, meta: FrameMeta): Promise<Uint8Array | undefined> {
    const clear = clearByteCount(meta);
    const out = await this.decryptAt(asBytes(frame), clear);
    // A frame shorter than its clear bytes was sent wholly encrypted; only a
    // small frame can be one, so only small frames get this second try.
    if (out || frame.length > clear - 1 + MAX_HEADER_BYTES + TAG_BYTES) return out;
    return this.decryptAt(asBytes(frame), 0);
  }

  private async decryptAt(data: Bytes, clear: number): Promise<Uint8Array | undefined> {
    try {
      return await this.tryDecryptAt(data, clear);
    } catch {
      return undefined; // a key derivation failed: the frame cannot be read either way
    }
  }

  private async tryDecryptAt(data: Bytes, clear: number): Promise<Uint8Array | undefined> {
    const header = decodeHeader(data, clear);
    if (!header || header.ctr > MAX_CTR || header.kid >> EPOCH_BITS >= INDEX_LIMIT) return undefined;
    const ctr = Number(header.ctr);
    const found = await this.keysFor(header.kid);
    if (!found) return undefined;
    const { epoch, sender } = found;
    if (!sender.replay.fresh(ctr)) return undefined;
    const metadata = data.subarray(0, clear);
    const out = await openFrame(sender, header, metadata, data.subarray(clear), metadata);
    if (!out) {
      epoch.forget(header.kid, sender);
      return undefined;
    }
    if (!sender.replay.mark(ctr)) return undefined;
    sender.verified = true;
    if (found.ratcheted) this.install(epoch);
    return out;
  }

  private async keysFor(kid: bigint): Promise<{ epoch: EpochKeys; sender: SenderKeys; ratcheted: boolean } | undefined> {
    this.expire();
    const epochByte = Number(kid & BigInt(EPOCH_MASK));
    const known = this.ring.get(epochByte);
    if (known) return { epoch: known, sender: await known.sender(kid), ratcheted: false };
    // Joins ratchet everyone: a frame of exactly the next epoch may be read with
    // our own ratchet, which is kept only once a frame authenticates with it.
    const newest = this.newest();
    if (!newest || ((newest.key.epoch + 1) & EPOCH_MASK) !== epochByte) return undefined;
    if (this.next?.from !== newest) {
      this.next = { from: newest, keys: ratchet(newest.key).then((k) => EpochKeys.derive(k)) };
    }
    const epoch = await this.next.keys;
    return { epoch, sender: await epoch.sender(kid), ratcheted: true };
  }

  private newest(): EpochKeys | undefined {
    let newest: EpochKeys | undefined;
    for (const e of this.ring.values()) if (!newest || e.key.epoch > newest.key.epoch) newest = e;
    return newest;
  }

  private expire(): void {
    const now = this.now();
    for (const [byte, e] of this.ring) if (e.expiresAt <= now) this.ring.delete(byte);
  }

  private install(keys: EpochKeys): void {
    this.expire();
    const byte = keys.key.epoch & EPOCH_MASK;
    const existing = this.ring.get(byte);
    if (existing) {
      if (existing.key.epoch > keys.key.epoch) return; // 256 epochs stale
      if (existing.key.epoch === keys.key.epoch && sameBytes(existing.key.secret, keys.key.secret)) return;
    }
    const newest = this.newest();
    const graceEnd = this.now() + this.graceMs;
    if (newest && newest !== existing && newest.key.epoch > keys.key.epoch) {
      keys.expiresAt = graceEnd; // a late key for an older epoch only serves the grace period
    } else {
      for (const e of this.ring.values()) if (e !== existing) e.expiresAt = Math.min(e.expiresAt, graceEnd);
    }
    this.ring.set(byte, keys);
    this.next = undefined;
  }
}
