/**
 * Synchronous SFrame encryption for bots, on node:crypto: the sending half of FrameOpener.
 *
 * The same frames, byte for byte, as FrameCryptor.encrypt (src/e2ee/sframe.ts, what the
 * browser's worker runs): clear codec bytes ‖ SFrame header ‖ E(whole frame) ‖ tag, the key
 * and salt of derive_key_salt(KID, base key of the epoch), AAD = header ‖ clear bytes, a frame
 * counter that is never reset. Why a second implementation: a bot sends 50 audio frames a
 * second and up to 90 video frames, and WebCrypto in Node is an asynchronous job per frame. In
 * the 33-person room bench, sealing with WebCrypto was 18 % of each bot process's main thread
 * (`bench/room.ts --bots-cpu-prof`), on a machine whose two cores the pages need. test/bot.test.ts checks that
 * this writes exactly what FrameCryptor writes, and that FrameCryptor opens it.
 */
import { createCipheriv } from 'node:crypto';
import { type CallKey, checkSenderIndex, sframeBaseKey } from '../e2ee/keys.js';
import { EPOCH_MASK } from '../e2ee/key-ring.js';
import { type FrameMeta, frameClearBytes, kidFor, MAX_CLEAR_BYTES, MAX_HEADER_BYTES, TAG_BYTES, writeHeader } from '../e2ee/sframe.js';
import { deriveKeySalt, NONCE_BYTES, writeNonce } from './frame-opener.js';

interface SendKey {
  key: Buffer;
  salt: Buffer;
  senderIndex: number;
  epochByte: number;
}

export class FrameSealer {
  private send?: SendKey;
  private sendKeyCalls = 0;
  private counter = 0;
  /** The nonce of the frame being sealed (salt XOR counter). */
  private readonly nonce = Buffer.alloc(NONCE_BYTES);
  /** Header ‖ clear bytes of the frame being sealed. */
  private readonly aad = Buffer.alloc(MAX_HEADER_BYTES + MAX_CLEAR_BYTES);

  /** The key this participant sends with from now on (the last call wins, as in FrameCryptor). */
  async setSendKey(key: CallKey, senderIndex: number): Promise<void> {
    checkSenderIndex(senderIndex);
    const call = ++this.sendKeyCalls;
    const base = await sframeBaseKey(key);
    const { key: aesKey, salt } = deriveKeySalt(base, kidFor(senderIndex, key.epoch));
    if (call === this.sendKeyCalls) this.send = { key: aesKey, salt, senderIndex, epochByte: key.epoch & EPOCH_MASK };
  }

  /** FrameCryptor's signature, for MediaSender; the work is done before this returns. */
  encrypt(frame: Uint8Array, meta: FrameMeta): Promise<Uint8Array> {
    try {
      return Promise.resolve(this.seal(frame, meta));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  seal(frame: Uint8Array, meta: FrameMeta): Buffer {
    const send = this.send;
    if (!send) throw new Error('FrameSealer has no send key');
    const ctr = this.counter++;
    const data = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    const clear = frameClearBytes(data.length, meta);
    const aad = this.aad;
    const headerBytes = writeHeader(aad, 0, send.senderIndex, send.epochByte, ctr);
    data.copy(aad, headerBytes, 0, clear);
    const cipher = createCipheriv('aes-128-gcm', send.key, writeNonce(this.nonce, send.salt, ctr), { authTagLength: TAG_BYTES });
    cipher.setAAD(aad.subarray(0, headerBytes + clear));
    const body = cipher.update(data);
    const last = cipher.final();
    const bodyAt = clear + headerBytes;
    const out = Buffer.allocUnsafe(bodyAt + data.length + TAG_BYTES);
    data.copy(out, 0, 0, clear);
    aad.copy(out, clear, 0, headerBytes);
    body.copy(out, bodyAt);
    last.copy(out, bodyAt + body.length);
    cipher.getAuthTag().copy(out, bodyAt + data.length);
    return out;
  }
}
