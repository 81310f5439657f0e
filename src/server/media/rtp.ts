// RTP/RTCP parsing and building: only what the SFU needs (RFC 3550, RFC 4585, RFC 5104,
// draft-alvestrand-rmcat-remb). Everything works on plain Buffers without copying the payload.

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

/** Rewrites in place; the marker bit is kept. */
export function rewriteRtp(buf: Buffer, payloadType: number, ssrc: number): void {
  buf[1] = (buf[1]! & 0x80) | payloadType;
  buf.writeUInt32BE(ssrc, 8);
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
  | { kind: 'pli'; mediaSsrc: number }
  | { kind: 'fir'; mediaSsrcs: number[] }
  | { kind: 'nack'; mediaSsrc: number; seqs: number[] };

/** Feedback the SFU acts on: PLI, FIR (both mean "key frame please") and generic NACK. */
export function readFeedback(buf: Buffer, p: RtcpPacket): Feedback | undefined {
  if (p.length < 12) return undefined;
  const o = p.offset;
  const mediaSsrc = buf.readUInt32BE(o + 8);
  if (p.type === RTCP_PSFB && p.count === FMT_PLI) return { kind: 'pli', mediaSsrc };
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
