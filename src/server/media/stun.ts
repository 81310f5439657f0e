/**
 * Just enough STUN (RFC 8489) to repair connectivity checks on their way to the ICE agent, in
 * place, without allocating: find attributes, rewrite a value, re-sign (MESSAGE-INTEGRITY with
 * the ICE password, FINGERPRINT). Used only on the relay entrance's path (relay-entrance.ts).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';

const MAGIC_COOKIE = 0x2112a442;
const HEADER = 20;
export const BINDING_REQUEST = 0x0001;
export const BINDING_SUCCESS = 0x0101;
const ATTR_MESSAGE_INTEGRITY = 0x0008;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_PRIORITY = 0x0024;
const ATTR_ICE_CONTROLLED = 0x8029;
const ATTR_ICE_CONTROLLING = 0x802a;
const ATTR_FINGERPRINT = 0x8028;
const FINGERPRINT_XOR = 0x5354554e;

/** The message type of a STUN message, or undefined for anything else (RTP, RTCP, DTLS). */
export function stunType(buf: Buffer): number | undefined {
  if (buf.length < HEADER || (buf[0]! & 0xc0) !== 0 || buf.readUInt32BE(4) !== MAGIC_COOKIE) return undefined;
  if (HEADER + buf.readUInt16BE(2) !== buf.length) return undefined;
  return buf.readUInt16BE(0);
}

/** Where the first attribute of `type` has its value, and how long it is. */
function find(buf: Buffer, type: number): { at: number; length: number } | undefined {
  let at = HEADER;
  while (at + 4 <= buf.length) {
    const t = buf.readUInt16BE(at);
    const length = buf.readUInt16BE(at + 2);
    if (at + 4 + length > buf.length) return undefined;
    if (t === type) return { at: at + 4, length };
    at += 4 + length + ((4 - (length % 4)) % 4);
  }
  return undefined;
}

function integrityOf(buf: Buffer, password: string, integrityAt: number): Buffer {
  // The length field counts up to and including MESSAGE-INTEGRITY while it is computed.
  const header = Buffer.from(buf.subarray(0, HEADER));
  header.writeUInt16BE(integrityAt + 20 - HEADER, 2);
  return createHmac('sha1', password).update(header).update(buf.subarray(HEADER, integrityAt - 4)).digest();
}

/** Whether the message carries a MESSAGE-INTEGRITY made with `password` (ICE short-term credentials). */
export function verifyIntegrity(buf: Buffer, password: string): boolean {
  const mi = find(buf, ATTR_MESSAGE_INTEGRITY);
  if (!mi || mi.length !== 20) return false;
  return timingSafeEqual(integrityOf(buf, password, mi.at), buf.subarray(mi.at, mi.at + 20));
}

/** Recomputes MESSAGE-INTEGRITY and FINGERPRINT after a change, in place. */
function resign(buf: Buffer, password: string): void {
  const mi = find(buf, ATTR_MESSAGE_INTEGRITY);
  if (mi && mi.length === 20) integrityOf(buf, password, mi.at).copy(buf, mi.at);
  const fp = find(buf, ATTR_FINGERPRINT);
  if (fp && fp.length === 4) buf.writeUInt32BE((crc32(buf.subarray(0, fp.at - 4)) ^ FINGERPRINT_XOR) >>> 0, fp.at);
}

/**
 * A binding request whose ICE-CONTROLLING or ICE-CONTROLLED tie-breaker is 0 gets 1 instead, and
 * (when given) the PRIORITY `priority`; re-signed with `password`. Other messages are left alone. Chromium sends a zero tie-breaker in checks
 * through a TURN server it reaches over TCP or TLS, and libjuice reads a zero tie-breaker as the
 * attribute being absent and answers 400 Bad Request (docs/MEDIA.md, "Relayed checks").
 * Returns whether the message needed the repair (and got it).
 */
export function repairRelayedCheck(buf: Buffer, password: string, priority?: number): boolean {
  if (stunType(buf) !== BINDING_REQUEST) return false;
  let changed = false;
  for (const type of [ATTR_ICE_CONTROLLING, ATTR_ICE_CONTROLLED]) {
    const a = find(buf, type);
    if (a && a.length === 8 && buf.readUInt32BE(a.at) === 0 && buf.readUInt32BE(a.at + 4) === 0) {
      buf.writeUInt32BE(1, a.at + 4);
      changed = true;
    }
  }
  if (!changed) return false;
  const p = priority !== undefined ? find(buf, ATTR_PRIORITY) : undefined;
  if (p && p.length === 4) buf.writeUInt32BE(priority!, p.at);
  resign(buf, password);
  return true;
}

/**
 * A binding success response's XOR-MAPPED-ADDRESS set to `address:port` (IPv4), re-signed with
 * `password`: the browser must see the address it reached, not the entrance's inner socket.
 */
export function rewriteMappedAddress(buf: Buffer, password: string, address: string, port: number): boolean {
  if (stunType(buf) !== BINDING_SUCCESS) return false;
  const a = find(buf, ATTR_XOR_MAPPED_ADDRESS);
  if (!a || a.length !== 8 || buf[a.at + 1] !== 0x01) return false;
  const octets = address.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) return false;
  buf.writeUInt16BE((port ^ (MAGIC_COOKIE >>> 16)) & 0xffff, a.at + 2);
  const raw = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  buf.writeUInt32BE((raw ^ MAGIC_COOKIE) >>> 0, a.at + 4);
  resign(buf, password);
  return true;
}
