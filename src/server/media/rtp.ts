// RTP/RTCP parsing and building: only what the SFU needs (RFC 3550, RFC 4585, RFC 5104,
// draft-alvestrand-rmcat-remb). Everything works on plain Buffers without copying the payload.
import { randomInt } from 'node:crypto';

export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_RTPFB = 205;
export const RTCP_PSFB = 206;
const FMT_NACK = 1;
const FMT_PLI = 1;
const FMT_FIR = 4;
const FMT_REMB = 15;

/** RFC 5761 demux: RTCP packet types 192-223 share the byte RTP uses for marker + payload type. */
export function isRtcp(buf: Buffer): boolean {
  return buf.length >= 8 && buf[1]! >= 192 && buf[1]! <= 223;
}

export function isValidRtp(buf: Buffer): boolean {
  return buf.length >= 12 && buf[0]! >> 6 === 2;
}

export const rtpPayloadType = (buf: Buffer): number => buf[1]! & 0x7f;
export const rtpSequenceNumber = (buf: Buffer): number => buf.readUInt16BE(2);
export const rtpTimestamp = (buf: Buffer): number => buf.readUInt32BE(4);
export const rtpSsrc = (buf: Buffer): number => buf.readUInt32BE(8);

/** Non-zero 32-bit SSRC; collisions inside one subscriber connection are avoided by the caller. */
export function randomSsrc(): number {
  return randomInt(1, 0xffffffff);
}

/**
 * Offset of the RTP payload (after CSRCs and the header extension), or -1 if the header does
 * not fit. Reads bytes in place; no allocation.
 */
export function rtpPayloadOffset(buf: Buffer): number {
  const b0 = buf[0]!;
  let offset = 12 + 4 * (b0 & 0x0f);
  if (b0 & 0x10) {
    if (offset + 4 > buf.length) return -1;
    offset += 4 + 4 * ((buf[offset + 2]! << 8) | buf[offset + 3]!);
  }
  return offset <= buf.length ? offset : -1;
}

/**
 * Finds header extension `id` (RFC 8285, one-byte or two-byte form) and returns the offset of
 * its value, with its length in `lengthOut[0]`; -1 if absent. In place, no allocation.
 */
export function findHeaderExtension(buf: Buffer, id: number, lengthOut: Int32Array): number {
  const b0 = buf[0]!;
  if (!(b0 & 0x10) || id <= 0) return -1;
  const start = 12 + 4 * (b0 & 0x0f);
  if (start + 4 > buf.length) return -1;
  const profile = (buf[start]! << 8) | buf[start + 1]!;
  const end = start + 4 + 4 * ((buf[start + 2]! << 8) | buf[start + 3]!);
  if (end > buf.length) return -1;
  let i = start + 4;
  if (profile === 0xbede) {
    while (i < end) {
      const b = buf[i]!;
      if (b === 0) {
        i++; // padding
        continue;
      }
      const extId = b >> 4;
      const len = (b & 0x0f) + 1;
      if (extId === 15) return -1;
      if (extId === id) {
        if (i + 1 + len > end) return -1;
        lengthOut[0] = len;
        return i + 1;
      }
      i += 1 + len;
    }
  } else if ((profile & 0xfff0) === 0x1000) {
    while (i + 1 < end) {
      const extId = buf[i]!;
      if (extId === 0) {
        i++;
        continue;
      }
      const len = buf[i + 1]!;
      if (extId === id) {
        if (i + 2 + len > end) return -1;
        lengthOut[0] = len;
        return i + 2;
      }
      i += 2 + len;
    }
  }
  return -1;
}

/**
 * Replaces a packet's header extensions (whatever the publisher numbered them for its own
 * connection) with one playout-delay element in the one-byte form: `minMs` and `maxMs` in 10 ms
 * units, 12 bits each. In place, the block keeps its length (the rest becomes padding); a packet
 * without an extension block, or with one too short, is left alone. Returns whether it was written.
 */
export function writePlayoutDelay(buf: Buffer, id: number, minMs: number, maxMs: number): boolean {
  const b0 = buf[0]!;
  if (!(b0 & 0x10)) return false;
  const start = 12 + 4 * (b0 & 0x0f);
  if (start + 4 > buf.length) return false;
  const end = start + 4 + 4 * ((buf[start + 2]! << 8) | buf[start + 3]!);
  if (end > buf.length || end - start < 8) return false;
  const min = Math.min(0xfff, Math.round(minMs / 10));
  const max = Math.min(0xfff, Math.round(maxMs / 10));
  buf[start] = 0xbe;
  buf[start + 1] = 0xde;
  buf[start + 4] = (id << 4) | 2;
  buf[start + 5] = min >> 4;
  buf[start + 6] = ((min & 0x0f) << 4) | (max >> 8);
  buf[start + 7] = max & 0xff;
  buf.fill(0, start + 8, end);
  return true;
}

/** What the SFU needs from a VP8 packet (RFC 7741), parsed in place into a reused object. */
export interface Vp8Info {
  /** First packet of a key frame (S=1, PID=0, VP8 P bit 0: the VP8 header stays in clear under SFrame). */
  keyFrameStart: boolean;
  /** Offset of the PictureID field, or -1; `pictureIdBits` is 7 or 15. */
  pictureIdOffset: number;
  pictureIdBits: number;
  pictureId: number;
  /** Offset of TL0PICIDX, or -1. */
  tl0Offset: number;
  tl0: number;
  /** Key frames only: the coded size from the VP8 key frame header (0 if unknown). */
  width: number;
  height: number;
}

export function newVp8Info(): Vp8Info {
  return { keyFrameStart: false, pictureIdOffset: -1, pictureIdBits: 0, pictureId: 0, tl0Offset: -1, tl0: 0, width: 0, height: 0 };
}

/** Parses the VP8 payload descriptor at `offset`; false if the packet is too short for one. */
export function parseVp8(buf: Buffer, offset: number, out: Vp8Info): boolean {
  out.keyFrameStart = false;
  out.pictureIdOffset = -1;
  out.tl0Offset = -1;
  out.width = 0;
  out.height = 0;
  const len = buf.length;
  if (offset < 0 || offset >= len) return false;
  const b0 = buf[offset]!;
  let i = offset + 1;
  if (b0 & 0x80) {
    if (i >= len) return false;
    const b1 = buf[i++]!;
    if (b1 & 0x80) {
      if (i >= len) return false;
      if (buf[i]! & 0x80) {
        if (i + 1 >= len) return false;
        out.pictureIdOffset = i;
        out.pictureIdBits = 15;
        out.pictureId = ((buf[i]! & 0x7f) << 8) | buf[i + 1]!;
        i += 2;
      } else {
        out.pictureIdOffset = i;
        out.pictureIdBits = 7;
        out.pictureId = buf[i]!;
        i += 1;
      }
    }
    if (b1 & 0x40) {
      if (i >= len) return false;
      out.tl0Offset = i;
      out.tl0 = buf[i]!;
      i++;
    }
    if (b1 & 0x30) i++;
  }
  if (i >= len) return false;
  if ((b0 & 0x10) !== 0 && (b0 & 0x07) === 0 && (buf[i]! & 0x01) === 0) {
    out.keyFrameStart = true;
    // Key frame header: 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height.
    if (i + 10 <= len && buf[i + 3] === 0x9d && buf[i + 4] === 0x01 && buf[i + 5] === 0x2a) {
      out.width = (buf[i + 6]! | (buf[i + 7]! << 8)) & 0x3fff;
      out.height = (buf[i + 8]! | (buf[i + 9]! << 8)) & 0x3fff;
    }
  }
  return true;
}

/** Generic NACK (RFC 4585 6.2.1) for the given sequence numbers, packed into PID+BLP entries. */
export function buildNack(senderSsrc: number, mediaSsrc: number, seqs: readonly number[]): Buffer {
  const entries: number[] = [];
  for (const seq of seqs) {
    const last = entries.length - 1;
    if (last >= 0) {
      const diff = (seq - (entries[last]! >>> 16)) & 0xffff;
      if (diff >= 1 && diff <= 16) {
        entries[last] = (entries[last]! | (1 << (diff - 1))) >>> 0;
        continue;
      }
    }
    entries.push(((seq & 0xffff) << 16) >>> 0);
  }
  const b = Buffer.alloc(12 + 4 * entries.length);
  b[0] = 0x80 | FMT_NACK;
  b[1] = RTCP_RTPFB;
  b.writeUInt16BE(2 + entries.length, 2);
  b.writeUInt32BE(senderSsrc, 4);
  b.writeUInt32BE(mediaSsrc, 8);
  for (let i = 0; i < entries.length; i++) b.writeUInt32BE(entries[i]!, 12 + 4 * i);
  return b;
}

export interface RtcpPacket {
  /** Payload type (200 SR, 201 RR, 205 RTPFB, 206 PSFB, ...). */
  type: number;
  /** The 5-bit count / feedback message type field. */
  count: number;
  /** Offset of this packet inside the compound buffer. */
  offset: number;
  /** Total length in bytes including the header. */
  length: number;
}

/** Splits a compound RTCP packet. Throws on malformed input (caller counts). */
export function parseRtcpCompound(buf: Buffer): RtcpPacket[] {
  const out: RtcpPacket[] = [];
  let offset = 0;
  while (offset + 4 <= buf.length) {
    const b0 = buf[offset]!;
    if (b0 >> 6 !== 2) throw new Error('bad RTCP version');
    const length = (buf.readUInt16BE(offset + 2) + 1) * 4;
    if (offset + length > buf.length) throw new Error('truncated RTCP');
    out.push({ type: buf[offset + 1]!, count: b0 & 0x1f, offset, length });
    offset += length;
  }
  return out;
}

export interface SenderReport {
  ssrc: number;
  ntpSeconds: number;
  ntpFraction: number;
  rtpTimestamp: number;
}

export function readSenderReport(buf: Buffer, p: RtcpPacket): SenderReport | undefined {
  if (p.type !== RTCP_SR || p.length < 28) return undefined;
  const o = p.offset;
  return {
    ssrc: buf.readUInt32BE(o + 4),
    ntpSeconds: buf.readUInt32BE(o + 8),
    ntpFraction: buf.readUInt32BE(o + 12),
    rtpTimestamp: buf.readUInt32BE(o + 16),
  };
}

export type Feedback =
  | { kind: 'remb'; bitrate: number; ssrcs: number[] }
  | { kind: 'pli'; mediaSsrc: number }
  | { kind: 'fir'; mediaSsrcs: number[] }
  | { kind: 'nack'; mediaSsrc: number; seqs: number[] };

/** Feedback the SFU acts on: PLI, FIR (both mean "key frame please") and generic NACK. */
export function readFeedback(buf: Buffer, p: RtcpPacket): Feedback | undefined {
  if (p.length < 12) return undefined;
  const o = p.offset;
  const mediaSsrc = buf.readUInt32BE(o + 8);
  if (p.type === RTCP_PSFB && p.count === FMT_PLI) return { kind: 'pli', mediaSsrc };
  if (p.type === RTCP_PSFB && p.count === FMT_REMB && p.length >= 20 && buf.toString('ascii', o + 12, o + 16) === 'REMB') {
    const word = buf.readUInt32BE(o + 16);
    const n = word >>> 24;
    const bitrate = (word & 0x3ffff) * 2 ** ((word >>> 18) & 0x3f);
    const ssrcs: number[] = [];
    for (let i = 0; i < n && o + 20 + 4 * i + 4 <= o + p.length; i++) ssrcs.push(buf.readUInt32BE(o + 20 + 4 * i));
    return { kind: 'remb', bitrate, ssrcs };
  }
  if (p.type === RTCP_PSFB && p.count === FMT_FIR) {
    // FIR names its targets in 8-byte FCI entries; the header's media SSRC is unused (RFC 5104 4.3.1).
    const mediaSsrcs: number[] = [];
    for (let i = o + 12; i + 8 <= o + p.length; i += 8) mediaSsrcs.push(buf.readUInt32BE(i));
    return { kind: 'fir', mediaSsrcs };
  }
  if (p.type === RTCP_RTPFB && p.count === FMT_NACK) {
    const seqs: number[] = [];
    for (let i = o + 12; i + 4 <= o + p.length; i += 4) {
      const pid = buf.readUInt16BE(i);
      const blp = buf.readUInt16BE(i + 2);
      seqs.push(pid);
      for (let bit = 0; bit < 16; bit++) if (blp & (1 << bit)) seqs.push((pid + bit + 1) & 0xffff);
    }
    return { kind: 'nack', mediaSsrc, seqs };
  }
  return undefined;
}

export function buildPli(senderSsrc: number, mediaSsrc: number): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 0x80 | FMT_PLI;
  b[1] = RTCP_PSFB;
  b.writeUInt16BE(2, 2);
  b.writeUInt32BE(senderSsrc, 4);
  b.writeUInt32BE(mediaSsrc, 8);
  return b;
}

export function buildRemb(senderSsrc: number, bitrate: number, ssrcs: readonly number[]): Buffer {
  const n = Math.min(ssrcs.length, 255);
  const b = Buffer.alloc(20 + 4 * n);
  b[0] = 0x80 | FMT_REMB;
  b[1] = RTCP_PSFB;
  b.writeUInt16BE(4 + n, 2);
  b.writeUInt32BE(senderSsrc, 4);
  b.writeUInt32BE(0, 8);
  b.write('REMB', 12, 'ascii');
  let mantissa = Math.max(0, Math.floor(bitrate));
  let exp = 0;
  while (mantissa > 0x3ffff) {
    mantissa = Math.floor(mantissa / 2);
    exp++;
  }
  b.writeUInt32BE(((n << 24) | (exp << 18) | mantissa) >>> 0, 16);
  for (let i = 0; i < n; i++) b.writeUInt32BE(ssrcs[i]!, 20 + 4 * i);
  return b;
}

export interface ReportBlock {
  ssrc: number;
  fractionLost: number;
  cumulativeLost: number;
  extendedHighestSeq: number;
  jitter: number;
  lastSr: number;
  delaySinceLastSr: number;
}

/** What a report block says of loss: packets lost since the stream began (signed: duplicates can make it negative), and the extended highest sequence number received. */
export type ReportBlockLoss = Pick<ReportBlock, 'ssrc' | 'cumulativeLost' | 'extendedHighestSeq'>;

/**
 * Packets a receiver lost of those it expected since its previous report of a stream. A report's
 * "fraction lost" byte is that ratio without its size: of the 15 packets a second a 320×240 layer
 * sends, one lost reads as 7 % and two as 13 %, so under 3 % random loss single reports of the
 * small layer read 10-20 % and cut the estimate to what was sent (lab, lossy: the call never left
 * 320×240). Summed over streams and seconds, lost / expected weighs each packet once.
 */
export interface LossReport {
  lost: number;
  expected: number;
}

/** Turns one stream's successive report blocks into LossReports (the first only sets the start). */
export class ReportedLoss {
  #highest: number | undefined;
  #lost = 0;

  next(block: ReportBlockLoss): LossReport | undefined {
    const previous = this.#highest;
    // A repeated or reordered report says nothing new.
    if (previous !== undefined && block.extendedHighestSeq <= previous) return undefined;
    const lostBefore = this.#lost;
    this.#highest = block.extendedHighestSeq;
    this.#lost = block.cumulativeLost;
    if (previous === undefined) return undefined;
    const expected = block.extendedHighestSeq - previous;
    return { lost: Math.min(expected, Math.max(0, block.cumulativeLost - lostBefore)), expected };
  }
}

/** The report blocks of an SR or RR, each passed to `onBlock`. */
export function forEachReportBlock(buf: Buffer, p: RtcpPacket, onBlock: (block: ReportBlockLoss) => void): void {
  let first: number;
  if (p.type === RTCP_SR) first = p.offset + 28;
  else if (p.type === RTCP_RR) first = p.offset + 8;
  else return;
  for (let i = 0; i < p.count; i++) {
    const o = first + 24 * i;
    if (o + 24 > p.offset + p.length) return;
    const lost = buf.readUIntBE(o + 5, 3);
    onBlock({ ssrc: buf.readUInt32BE(o), cumulativeLost: lost & 0x800000 ? lost - 0x1000000 : lost, extendedHighestSeq: buf.readUInt32BE(o + 8) });
  }
}

export function buildReceiverReport(senderSsrc: number, blocks: readonly ReportBlock[]): Buffer {
  const n = Math.min(blocks.length, 31);
  const b = Buffer.alloc(8 + 24 * n);
  b[0] = 0x80 | n;
  b[1] = RTCP_RR;
  b.writeUInt16BE(1 + 6 * n, 2);
  b.writeUInt32BE(senderSsrc, 4);
  for (let i = 0; i < n; i++) {
    const r = blocks[i]!;
    const o = 8 + 24 * i;
    b.writeUInt32BE(r.ssrc, o);
    // Cumulative loss is a signed 24-bit field.
    const lost = Math.max(-0x800000, Math.min(0x7fffff, r.cumulativeLost)) & 0xffffff;
    b.writeUInt32BE(((r.fractionLost & 0xff) << 24 | lost) >>> 0, o + 4);
    b.writeUInt32BE(r.extendedHighestSeq >>> 0, o + 8);
    b.writeUInt32BE(Math.min(0xffffffff, Math.floor(r.jitter)) >>> 0, o + 12);
    b.writeUInt32BE(r.lastSr >>> 0, o + 16);
    b.writeUInt32BE(r.delaySinceLastSr >>> 0, o + 20);
  }
  return b;
}

export function buildSenderReport(
  ssrc: number,
  sr: SenderReport,
  packetCount: number,
  octetCount: number,
): Buffer {
  const b = Buffer.alloc(28);
  b[0] = 0x80;
  b[1] = RTCP_SR;
  b.writeUInt16BE(6, 2);
  b.writeUInt32BE(ssrc, 4);
  b.writeUInt32BE(sr.ntpSeconds, 8);
  b.writeUInt32BE(sr.ntpFraction, 12);
  b.writeUInt32BE(sr.rtpTimestamp, 16);
  b.writeUInt32BE(packetCount >>> 0, 20);
  b.writeUInt32BE(octetCount >>> 0, 24);
  return b;
}

const MAX_DROPOUT = 3000;
const MAX_MISORDER = 100;

/**
 * Reception statistics for one incoming SSRC (RFC 3550 A.1, A.3, A.8), so the SFU can send the
 * publisher real receiver reports: Chromium's loss-based estimator and RTT need them.
 */
export class ReceiveStats {
  #clockRate: number;
  #started = false;
  #baseSeq = 0;
  #maxSeq = 0;
  #cycles = 0;
  #received = 0;
  #expectedPrior = 0;
  #receivedPrior = 0;
  #jitter = 0;
  #lastTransit: number | undefined;
  #lastSrMiddle = 0;
  #lastSrAt = 0;

  constructor(clockRate: number) {
    this.#clockRate = clockRate;
  }

  get received(): number {
    return this.#received;
  }

  onRtp(seq: number, timestamp: number, nowMs: number): void {
    if (!this.#started) {
      this.#started = true;
      this.#baseSeq = seq;
      this.#maxSeq = seq;
    } else {
      const delta = (seq - this.#maxSeq) & 0xffff;
      if (delta < MAX_DROPOUT) {
        if (seq < this.#maxSeq) this.#cycles += 0x10000;
        this.#maxSeq = seq;
      } else if (delta <= 0x10000 - MAX_MISORDER) {
        // A big jump means the sender restarted its sequence: start over.
        this.#baseSeq = seq;
        this.#maxSeq = seq;
        this.#cycles = 0;
        this.#received = 0;
        this.#expectedPrior = 0;
        this.#receivedPrior = 0;
      }
      // else: reordered or duplicate packet, counted below.
    }
    this.#received++;
    const arrival = (nowMs * this.#clockRate) / 1000;
    const transit = arrival - timestamp;
    if (this.#lastTransit !== undefined) {
      let d = Math.abs(transit - this.#lastTransit);
      // The RTP timestamp wraps at 2^32; a wrap shows up as a huge transit jump.
      if (d > 0x80000000) d = Math.abs(d - 0x100000000);
      this.#jitter += (d - this.#jitter) / 16;
    }
    this.#lastTransit = transit;
  }

  onSenderReport(sr: SenderReport, nowMs: number): void {
    this.#lastSrMiddle = (((sr.ntpSeconds & 0xffff) << 16) | (sr.ntpFraction >>> 16)) >>> 0;
    this.#lastSrAt = nowMs;
  }

  reportBlock(ssrc: number, nowMs: number): ReportBlock | undefined {
    if (!this.#started) return undefined;
    const extMax = this.#cycles + this.#maxSeq;
    const expected = extMax - this.#baseSeq + 1;
    const expectedInterval = expected - this.#expectedPrior;
    const receivedInterval = this.#received - this.#receivedPrior;
    this.#expectedPrior = expected;
    this.#receivedPrior = this.#received;
    const lostInterval = expectedInterval - receivedInterval;
    const fractionLost =
      expectedInterval <= 0 || lostInterval <= 0 ? 0 : Math.floor((lostInterval * 256) / expectedInterval);
    return {
      ssrc,
      fractionLost: Math.min(255, fractionLost),
      cumulativeLost: expected - this.#received,
      extendedHighestSeq: extMax,
      jitter: this.#jitter,
      lastSr: this.#lastSrMiddle,
      delaySinceLastSr: this.#lastSrAt ? Math.floor(((nowMs - this.#lastSrAt) * 65536) / 1000) : 0,
    };
  }
}
