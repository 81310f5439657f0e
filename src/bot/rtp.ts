/**
 * The RTP and RTCP a bot writes and reads: VP8 packetization (RFC 7741), Opus packets with the
 * audio-level header extension (RFC 6464), sender reports, and PLI/FIR parsing. Packets are
 * written into one reusable buffer per stream: the engine copies on send.
 */

/** Payload types of the bot's own publish offer (the SFU rewrites them per subscriber). */
export const VP8_PAYLOAD_TYPE = 96;
export const OPUS_PAYLOAD_TYPE = 111;
export const VIDEO_CLOCK_RATE = 90_000;
export const AUDIO_CLOCK_RATE = 48_000;
/** RTP payload bytes per packet: leaves room for headers, SRTP and UDP/IP under a 1 280-byte path MTU. */
export const MAX_PAYLOAD_BYTES = 1100;

export const AUDIO_LEVEL_URI = 'urn:ietf:params:rtp-hdrext:ssrc-audio-level';
export const RID_URI = 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id';
export const MID_URI = 'urn:ietf:params:rtp-hdrext:sdes:mid';

/** A one-byte-header extension element (RFC 8285): id 1–14, 1–16 bytes. */
export interface HeaderExtension {
  id: number;
  data: Uint8Array;
}

/** One outgoing RTP stream: its SSRC, sequence numbers and packet buffer. */
export class RtpWriter {
  private seq = Math.floor(Math.random() * 0x10000);
  readonly buffer = Buffer.alloc(1500);
  packets = 0;
  octets = 0;

  constructor(
    readonly ssrc: number,
    readonly payloadType: number,
  ) {}

  /** Writes the header (with extensions) for the next packet; returns where the payload starts. */
  header(timestamp: number, marker: boolean, extensions: readonly HeaderExtension[] = []): number {
    const b = this.buffer;
    b[0] = extensions.length > 0 ? 0x90 : 0x80;
    b[1] = (marker ? 0x80 : 0) | this.payloadType;
    b.writeUInt16BE(this.seq, 2);
    this.seq = (this.seq + 1) & 0xffff;
    b.writeUInt32BE(timestamp >>> 0, 4);
    b.writeUInt32BE(this.ssrc, 8);
    if (extensions.length === 0) return 12;
    let at = 16;
    for (const e of extensions) {
      b[at++] = (e.id << 4) | (e.data.length - 1);
      b.set(e.data, at);
      at += e.data.length;
    }
    while ((at - 16) % 4 !== 0) b[at++] = 0;
    b.writeUInt16BE(0xbede, 12);
    b.writeUInt16BE((at - 16) / 4, 14);
    return at;
  }

  /** Counts a packet of `length` bytes with `payload` payload bytes as sent (for sender reports). */
  sent(payload: number): void {
    this.packets++;
    this.octets += payload;
  }
}

/**
 * Calls `send` once per RTP packet of one VP8 frame: RFC 7741 descriptor with a 15-bit
 * PictureID (as browsers send it), S=1 on the first packet, marker bit on the last.
 */
export function packetizeVp8(
  writer: RtpWriter,
  frame: Uint8Array,
  timestamp: number,
  pictureId: number,
  send: (packet: Buffer) => void,
  extensions: readonly HeaderExtension[] = [],
): void {
  const room = MAX_PAYLOAD_BYTES - 4;
  const count = Math.max(1, Math.ceil(frame.length / room));
  const size = Math.ceil(frame.length / count); // equal-sized packets, as libwebrtc does
  for (let i = 0, at = 0; i < count; i++, at += size) {
    const chunk = frame.subarray(at, Math.min(at + size, frame.length));
    const start = writer.header(timestamp, i === count - 1, extensions);
    const b = writer.buffer;
    b[start] = i === 0 ? 0x90 : 0x80; // X=1, S on the first packet, partition 0
    b[start + 1] = 0x80; // I: PictureID present
    b[start + 2] = 0x80 | ((pictureId >> 8) & 0x7f); // M=1: 15 bits
    b[start + 3] = pictureId & 0xff;
    b.set(chunk, start + 4);
    writer.sent(chunk.length + 4);
    send(b.subarray(0, start + 4 + chunk.length));
  }
}

/** One Opus frame in one packet. */
export function packetizeOpus(
  writer: RtpWriter,
  frame: Uint8Array,
  timestamp: number,
  send: (packet: Buffer) => void,
  extensions: readonly HeaderExtension[] = [],
): void {
  const start = writer.header(timestamp, false, extensions);
  writer.buffer.set(frame, start);
  writer.sent(frame.length);
  send(writer.buffer.subarray(0, start + frame.length));
}

/** RTCP SR (RFC 3550 §6.4.1) without report blocks. */
export function buildSenderReport(ssrc: number, wallMs: number, rtpTimestamp: number, packets: number, octets: number): Buffer {
  const b = Buffer.alloc(28);
  b[0] = 0x80;
  b[1] = 200;
  b.writeUInt16BE(6, 2);
  b.writeUInt32BE(ssrc, 4);
  const ntpSeconds = Math.floor(wallMs / 1000) + 2_208_988_800;
  const fraction = Math.floor(((wallMs % 1000) / 1000) * 2 ** 32);
  b.writeUInt32BE(ntpSeconds >>> 0, 8);
  b.writeUInt32BE(fraction >>> 0, 12);
  b.writeUInt32BE(rtpTimestamp >>> 0, 16);
  b.writeUInt32BE(packets >>> 0, 20);
  b.writeUInt32BE(octets >>> 0, 24);
  return b;
}

/** RTP vs RTCP on a muxed port (RFC 5761): RTCP packet types 192–223. */
export function isRtcp(buf: Uint8Array): boolean {
  return buf.length >= 8 && buf[1]! >= 192 && buf[1]! <= 223;
}

/** The media SSRCs a compound RTCP packet asks key frames for (PLI, FIR). */
export function keyFrameRequests(buf: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at + 4 <= buf.length; ) {
    const fmt = buf[at]! & 0x1f;
    const pt = buf[at + 1]!;
    const end = at + 4 * (buf.readUInt16BE(at + 2) + 1);
    if (end > buf.length) break;
    if (pt === 206 && fmt === 1 && end - at >= 12) out.push(buf.readUInt32BE(at + 8));
    if (pt === 206 && fmt === 4) for (let f = at + 12; f + 8 <= end; f += 8) out.push(buf.readUInt32BE(f));
    at = end;
  }
  return out;
}

/** The fields of an incoming RTP packet a bot needs; payload is a view into the packet. */
export interface RtpPacket {
  ssrc: number;
  payloadType: number;
  sequence: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
}

export function parseRtp(buf: Buffer): RtpPacket | undefined {
  if (buf.length < 12 || buf[0]! >> 6 !== 2) return undefined;
  let at = 12 + 4 * (buf[0]! & 0x0f);
  if (buf[0]! & 0x10) {
    if (at + 4 > buf.length) return undefined;
    at += 4 + 4 * buf.readUInt16BE(at + 2);
  }
  const end = buf[0]! & 0x20 ? buf.length - buf[buf.length - 1]! : buf.length;
  if (at > end) return undefined;
  return {
    ssrc: buf.readUInt32BE(8),
    payloadType: buf[1]! & 0x7f,
    sequence: buf.readUInt16BE(2),
    timestamp: buf.readUInt32BE(4),
    marker: (buf[1]! & 0x80) !== 0,
    payload: buf.subarray(at, end),
  };
}

/** RFC 7741 payload descriptor: its length, and whether the packet starts a frame (S=1, PID=0). */
export function vp8Descriptor(p: Uint8Array): { length: number; frameStart: boolean } {
  let i = 0;
  const b0 = p[i++]!;
  if (b0 & 0x80) {
    const b1 = p[i++]!;
    if (b1 & 0x80) i += p[i]! & 0x80 ? 2 : 1; // PictureID, 15 or 7 bits
    if (b1 & 0x40) i++; // TL0PICIDX
    if (b1 & 0x30) i++; // TID / KEYIDX
  }
  return { length: i, frameStart: (b0 & 0x10) !== 0 && (b0 & 0x07) === 0 };
}
