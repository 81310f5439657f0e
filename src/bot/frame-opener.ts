/**
 * Synchronous SFrame decryption for bots, on node:crypto.
 *
 * The same frame format and key schedule as FrameCryptor (src/e2ee/sframe.ts, what the
 * browser's worker runs): clear codec bytes ‖ SFrame header ‖ ciphertext ‖ tag, per-sender
 * key and salt = derive_key_salt(KID, base key of the epoch), AAD = header ‖ clear bytes.
 * Why a second implementation: a bot in a 33-person call opens ~1 000 frames a second, and
 * WebCrypto in Node costs ~50 µs per frame (an async job each) against ~12 µs here; 31 bots
 * would need two cores for WebCrypto alone. Bots still *encrypt* with FrameCryptor itself.
 * test/bot.test.ts checks that this opens exactly what FrameCryptor opens and refuses the rest.
 */
import { createDecipheriv, hkdfSync } from 'node:crypto';
import { type CallKey, SENDER_INDEX_LIMIT, sframeBaseKey } from '../e2ee/keys.js';
import { CIPHER_SUITE, clearByteCount, decodeHeader, type FrameMeta, TAG_BYTES } from '../e2ee/sframe.js';

const KEY_BYTES = 16;
const NONCE_BYTES = 12;
const EPOCH_MASK = 0xff;
const REPLAY_WINDOW = 1024;
const MAX_HEADER_BYTES = 1 + 8 + 8;

interface SenderKey {
  key: Buffer;
  salt: Buffer;
  /** Highest counter opened, and which of the last REPLAY_WINDOW counters were opened. */
  highest: number;
  seen: Uint8Array;
  verified: boolean;
}

interface Epoch {
  epoch: number;
  secret: Buffer;
  baseKey: Buffer;
  senders: Map<bigint, SenderKey>;
  expiresAt: number;
}

function label(prefix: string, kid: bigint): Buffer {
  const text = Buffer.from(prefix, 'utf8');
  const out = Buffer.alloc(text.length + 10);
  text.copy(out);
  out.writeBigUInt64BE(kid, text.length);
  out.writeUInt16BE(CIPHER_SUITE, text.length + 8);
  return out;
}

/** derive_key_salt(KID, base_key) of RFC 9605 §4.4.2 (HKDF-SHA-256, empty salt). */
function deriveSender(baseKey: Buffer, kid: bigint): SenderKey {
  const empty = Buffer.alloc(0);
  return {
    key: Buffer.from(hkdfSync('sha256', baseKey, empty, label('SFrame 1.0 Secret key ', kid), KEY_BYTES)),
    salt: Buffer.from(hkdfSync('sha256', baseKey, empty, label('SFrame 1.0 Secret salt ', kid), NONCE_BYTES)),
    highest: -1,
    seen: new Uint8Array(REPLAY_WINDOW),
    verified: false,
  };
}

export class FrameOpener {
  private readonly ring = new Map<number, Epoch>();
  private readonly nonce = Buffer.alloc(NONCE_BYTES);
  private readonly aad = Buffer.alloc(MAX_HEADER_BYTES + 10);
  private readonly graceMs: number;

  constructor(opts: { graceMs?: number } = {}) {
    this.graceMs = opts.graceMs ?? 5000;
  }

  /** Previous epochs stay readable for graceMs after a newer one is added. */
  async addKey(key: CallKey): Promise<void> {
    this.install(await deriveEpoch(key));
  }

  /** The frame's plaintext (clear bytes ‖ payload), or undefined if it does not authenticate. */
  open(frame: Uint8Array, meta: FrameMeta): Buffer | undefined {
    const clear = clearByteCount(meta);
    const out = this.openAt(frame, clear);
    // Frames shorter than their clear bytes are encrypted whole (as FrameCryptor does).
    if (out || frame.length > clear - 1 + MAX_HEADER_BYTES + TAG_BYTES) return out;
    return this.openAt(frame, 0);
  }

  /** Whether the frame authenticates (and is not a replay). */
  authenticate(frame: Uint8Array, meta: FrameMeta): boolean {
    const clear = clearByteCount(meta);
    if (this.openAt(frame, clear)) return true;
    return frame.length <= clear - 1 + MAX_HEADER_BYTES + TAG_BYTES && this.openAt(frame, 0) !== undefined;
  }

  private openAt(frame: Uint8Array, clear: number): Buffer | undefined {
    const header = decodeHeader(frame, clear);
    if (!header || header.kid >> 8n >= BigInt(SENDER_INDEX_LIMIT) || header.ctr > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    const ctr = Number(header.ctr);
    const bodyAt = clear + header.length;
    if (frame.length - bodyAt < TAG_BYTES) return undefined;
    const now = Date.now();
    const epochByte = Number(header.kid & BigInt(EPOCH_MASK));
    let epoch = this.ring.get(epochByte);
    if (epoch && epoch.expiresAt <= now) {
      this.ring.delete(epochByte);
      epoch = undefined;
    }
    // Only epochs we were given: MLS epochs are not a ratchet (see FrameCryptor).
    if (!epoch) return undefined;
    let sender = epoch.senders.get(header.kid);
    if (!sender) {
      sender = deriveSender(epoch.baseKey, header.kid);
      epoch.senders.set(header.kid, sender);
    }
    if (!fresh(sender, ctr)) return undefined;
    const data = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    const nonce = this.nonce;
    sender.salt.copy(nonce);
    nonce.writeUInt32BE((nonce.readUInt32BE(4) ^ Math.floor(ctr / 2 ** 32)) >>> 0, 4);
    nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ ctr) >>> 0, 8);
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-128-gcm', sender.key, nonce, { authTagLength: TAG_BYTES });
      // AAD = SFrame header ‖ clear codec bytes.
      const aad = this.aad;
      data.copy(aad, 0, clear, bodyAt);
      data.copy(aad, header.length, 0, clear);
      decipher.setAAD(aad.subarray(0, bodyAt));
      decipher.setAuthTag(data.subarray(frame.length - TAG_BYTES));
      const body = decipher.update(data.subarray(bodyAt, frame.length - TAG_BYTES));
      decipher.final();
      plain = body; // the whole frame: the ciphertext covers the clear bytes too
      if (body.length < clear || !body.subarray(0, clear).equals(data.subarray(0, clear))) throw new Error('clear bytes differ');
    } catch {
      // A KID that never authenticated must not cost memory (forged KIDs).
      if (!sender.verified) epoch.senders.delete(header.kid);
      return undefined;
    }
    mark(sender, ctr);
    sender.verified = true;
    return plain;
  }

  private newest(): Epoch | undefined {
    let newest: Epoch | undefined;
    for (const e of this.ring.values()) if (!newest || e.epoch > newest.epoch) newest = e;
    return newest;
  }

  private install(epoch: Epoch): void {
    const byte = epoch.epoch & EPOCH_MASK;
    const existing = this.ring.get(byte);
    if (existing) {
      if (existing.epoch > epoch.epoch) return; // 256 epochs stale
      if (existing.epoch === epoch.epoch && existing.secret.equals(epoch.secret)) return;
    }
    const newest = this.newest();
    const graceEnd = Date.now() + this.graceMs;
    if (newest && newest !== existing && newest.epoch > epoch.epoch) epoch.expiresAt = graceEnd;
    else for (const e of this.ring.values()) if (e !== existing) e.expiresAt = Math.min(e.expiresAt, graceEnd);
    this.ring.set(byte, epoch);
  }
}

async function deriveEpoch(key: CallKey): Promise<Epoch> {
  const secret = Buffer.from(key.secret);
  return { epoch: key.epoch, secret, baseKey: Buffer.from(await sframeBaseKey(key)), senders: new Map(), expiresAt: Infinity };
}

function fresh(s: SenderKey, ctr: number): boolean {
  if (ctr > s.highest) return true;
  return s.highest - ctr < REPLAY_WINDOW && s.seen[ctr % REPLAY_WINDOW] === 0;
}

function mark(s: SenderKey, ctr: number): void {
  if (ctr > s.highest) {
    for (let c = Math.max(s.highest + 1, ctr - REPLAY_WINDOW + 1); c < ctr; c++) s.seen[c % REPLAY_WINDOW] = 0;
    s.highest = ctr;
  }
  s.seen[ctr % REPLAY_WINDOW] = 1;
}
