/**
 * Synchronous SFrame decryption for bots, on node:crypto.
 *
 * The same frame format and key schedule as FrameCryptor (src/e2ee/sframe.ts, what the
 * browser's worker runs): clear codec bytes ‖ SFrame header ‖ ciphertext ‖ tag, per-sender
 * key and salt = derive_key_salt(KID, base key of the epoch), AAD = header ‖ clear bytes.
 * Why a second implementation: a bot in a 33-person call opens ~1 000 frames a second, and
 * WebCrypto in Node costs ~50 µs per frame (an async job each) against ~12 µs here; 31 bots
 * would need two cores for WebCrypto alone. Bots encrypt the same way (FrameSealer, frame-sealer.ts).
 * The keys themselves are held by the same KeyRing as the worker's (src/e2ee/key-ring.ts).
 * test/bot.test.ts checks that this opens exactly what FrameCryptor opens and refuses the rest.
 */
import { createDecipheriv, hkdfSync } from 'node:crypto';
import { type CallKey, SENDER_INDEX_LIMIT } from '../e2ee/keys.js';
import { type EpochKeys, KeyRing, ReplayWindow, type SenderKey } from '../e2ee/key-ring.js';
import {
  CIPHER_SUITE,
  clearByteCount,
  type FrameMeta,
  type HeaderFields,
  kidFor,
  MAX_HEADER_BYTES,
  readHeader,
  TAG_BYTES,
} from '../e2ee/sframe.js';

const KEY_BYTES = 16;
export const NONCE_BYTES = 12;

/** A sender's key and salt in one epoch, as node:crypto takes them. */
interface OpenKey extends SenderKey {
  key: Buffer;
  salt: Buffer;
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
export function deriveKeySalt(baseKey: Uint8Array, kid: bigint): { key: Buffer; salt: Buffer } {
  const empty = Buffer.alloc(0);
  return {
    key: Buffer.from(hkdfSync('sha256', baseKey, empty, label('SFrame 1.0 Secret key ', kid), KEY_BYTES)),
    salt: Buffer.from(hkdfSync('sha256', baseKey, empty, label('SFrame 1.0 Secret salt ', kid), NONCE_BYTES)),
  };
}

/** salt XOR CTR (§4.4.3), the CTR as 64 bits big-endian, written into `nonce`. */
export function writeNonce(nonce: Buffer, salt: Buffer, ctr: number): Buffer {
  salt.copy(nonce);
  nonce.writeUInt32BE((nonce.readUInt32BE(4) ^ Math.floor(ctr / 2 ** 32)) >>> 0, 4);
  nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ ctr) >>> 0, 8);
  return nonce;
}

export class FrameOpener {
  private readonly ring: KeyRing<OpenKey>;
  private readonly nonce = Buffer.alloc(NONCE_BYTES);
  private readonly aad = Buffer.alloc(MAX_HEADER_BYTES + 10);
  /** Scratch for the header of the frame being opened. */
  private readonly header: HeaderFields = { senderIndex: 0, epochByte: 0, ctr: 0, length: 0 };

  constructor(opts: { graceMs?: number } = {}) {
    this.ring = new KeyRing(opts);
  }

  /** Previous epochs stay readable for graceMs after a newer one is added. */
  addKey(key: CallKey): Promise<void> {
    return this.ring.add(key);
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
    const header = this.header;
    if (!readHeader(frame, clear, header)) return undefined;
    const { senderIndex, ctr } = header;
    if (senderIndex >= SENDER_INDEX_LIMIT || ctr > Number.MAX_SAFE_INTEGER) return undefined;
    const bodyAt = clear + header.length;
    if (frame.length - bodyAt < TAG_BYTES) return undefined;
    const epoch = this.ring.epoch(header.epochByte);
    if (!epoch) return undefined;
    const sender = epoch.sender(senderIndex) ?? this.derive(epoch, senderIndex);
    if (!sender.replay.fresh(ctr)) return undefined;
    const data = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    const nonce = writeNonce(this.nonce, sender.salt, ctr);
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
      epoch.forget(senderIndex, sender);
      return undefined;
    }
    sender.replay.mark(ctr);
    sender.verified = true;
    return plain;
  }

  /** A sender's first frame in an epoch: its key, kept until a frame proves it forged. */
  private derive(epoch: EpochKeys<OpenKey>, senderIndex: number): OpenKey {
    const sender: OpenKey = { ...deriveKeySalt(epoch.baseKey, kidFor(senderIndex, epoch.key.epoch)), replay: new ReplayWindow(), verified: false };
    epoch.keep(senderIndex, sender);
    return sender;
  }
}
