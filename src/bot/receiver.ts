/**
 * A bot's receiving connection: answers the SFU's offers (node-datachannel), reassembles each
 * incoming stream's frames (sequence numbers, VP8 descriptor start bit, marker bit), opens each
 * complete frame with the call key and counts — per sender and kind — complete frames, frames
 * that authenticate, packet loss and freezes. No pixel is decoded.
 */
import nodeDataChannel, { type PeerConnection, type RtcConfig, type Track } from 'node-datachannel';
import type { ConnectionState, ReceiveConnection } from '../client/media-connections.js';
import { holdUntilClosed } from '../server/media/live-tracks.js';
import { waitForGathering } from '../server/media/gathering.js';
import { withoutCandidates } from '../server/media/sdp.js';
import type { FrameOpener } from './frame-opener.js';
import { isRtcp, parseRtp, vp8Descriptor } from './rtp.js';

/** A gap longer than this without a complete authenticated frame is a freeze. */
export const FREEZE_MS = 500;

export type MediaKind = 'audio' | 'video';

/** Counts for one sender's audio or video, as this bot received it. Only counts, never contents. */
export interface StreamStats {
  /** The sender's participant id (its stream id in the SFU's offer). */
  peerId: string;
  kind: MediaKind;
  packets: number;
  /** Packets the sequence numbers say were sent (highest − first + 1, per SSRC). */
  packetsExpected: number;
  /** Frames whose every packet arrived. */
  completeFrames: number;
  /** Complete frames that opened with our call key (not forged, not replayed). */
  authenticatedFrames: number;
  /** Complete frames that did not open. */
  unauthenticatedFrames: number;
  /** Frames that lost a packet. */
  incompleteFrames: number;
  keyFrames: number;
  /** Picture size from the latest key frame (its clear VP8 header): shows which simulcast layer arrives. */
  width: number;
  height: number;
  /** Gaps > FREEZE_MS between authenticated frames, and their total length. */
  freezes: number;
  freezeMs: number;
  /** performance.now() of the first and the latest authenticated frame. */
  firstFrameAt: number | undefined;
  lastFrameAt: number | undefined;
}

interface OfferedTrack {
  kind: MediaKind;
  peerId: string;
}

/** Per mid: kind and sender of each m-line the SFU offers (a=ssrc:… msid:<peerId> <consumerId>). */
export function parseOffer(sdp: string): Map<string, OfferedTrack> {
  const out = new Map<string, OfferedTrack>();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const kind = section.startsWith('video') ? 'video' : section.startsWith('audio') ? 'audio' : undefined;
    const mid = /\r?\na=mid:(\S+)/.exec(section)?.[1];
    const peerId = /\r?\na=(?:ssrc:\d+ )?msid:(\S+)/.exec(section)?.[1];
    if (kind && mid && peerId) out.set(mid, { kind, peerId });
  }
  return out;
}

/** Reassembly and counting for one incoming RTP stream (one track). */
class IncomingStream {
  private highest = -1;
  private first = -1;
  private inFrame = false;
  private timestamp = 0;
  private length = 0;
  private keyFrame = false;
  private buffer: Buffer;

  constructor(
    private readonly stats: StreamStats,
    private readonly opener: FrameOpener,
    /** Packets expected on earlier tracks of the same sender (a renegotiated consumer). */
    private readonly expectedBefore: number,
  ) {
    this.buffer = Buffer.allocUnsafe(stats.kind === 'video' ? 64 * 1024 : 2048);
  }

  onPacket(buf: Buffer): void {
    if (isRtcp(buf)) return;
    const p = parseRtp(buf);
    if (!p) return;
    const s = this.stats;
    // Extended sequence number (RFC 3550 A.1): old and duplicate packets are ignored.
    let ext = p.sequence;
    if (this.highest >= 0) {
      const delta = ((p.sequence - (this.highest & 0xffff) + 0x8000) & 0xffff) - 0x8000;
      if (delta <= 0) return;
      ext = this.highest + delta;
    } else {
      this.first = ext;
    }
    const gap = this.highest >= 0 && ext !== this.highest + 1;
    this.highest = ext;
    s.packets++;
    s.packetsExpected = this.highest - this.first + 1 + this.expectedBefore;
    if (p.payload.length === 0) return; // padding
    if (s.kind === 'audio') {
      s.completeFrames++;
      this.open(p.payload, false);
      return;
    }
    if (this.inFrame && (p.timestamp !== this.timestamp || gap)) {
      // The rest of the current frame is lost (or it never ended).
      this.inFrame = false;
      s.incompleteFrames++;
    }
    const d = vp8Descriptor(p.payload);
    if (d.frameStart) {
      this.inFrame = true;
      this.timestamp = p.timestamp;
      this.length = 0;
      this.keyFrame = p.payload.length > d.length && (p.payload[d.length]! & 1) === 0;
    } else if (!this.inFrame) {
      return; // middle of a frame whose start we missed
    }
    const chunk = p.payload.subarray(d.length);
    if (this.length + chunk.length > this.buffer.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + chunk.length));
      this.buffer.copy(bigger, 0, 0, this.length);
      this.buffer = bigger;
    }
    chunk.copy(this.buffer, this.length);
    this.length += chunk.length;
    if (!p.marker) return;
    this.inFrame = false;
    s.completeFrames++;
    if (this.keyFrame && this.length >= 10) {
      // RFC 6386 §9.1: after the 3-byte frame tag and the start code, 14-bit width and height.
      s.keyFrames++;
      s.width = this.buffer.readUInt16LE(6) & 0x3fff;
      s.height = this.buffer.readUInt16LE(8) & 0x3fff;
    }
    this.open(this.buffer.subarray(0, this.length), this.keyFrame);
  }

  private open(frame: Buffer, keyFrame: boolean): void {
    const s = this.stats;
    if (!this.opener.authenticate(frame, { kind: s.kind, keyFrame })) {
      s.unauthenticatedFrames++;
      return;
    }
    const now = performance.now();
    s.authenticatedFrames++;
    if (s.lastFrameAt !== undefined && now - s.lastFrameAt > FREEZE_MS) {
      s.freezes++;
      s.freezeMs += now - s.lastFrameAt;
    }
    s.firstFrameAt ??= now;
    s.lastFrameAt = now;
  }
}

/**
 * The bot's receiving connection, negotiated by the client's MediaConnections as a page's is
 * (which offers are answered, in which order, and when the answer goes out).
 */
export class MediaReceiver implements ReceiveConnection {
  private pc?: PeerConnection;
  private readonly offered = new Map<string, OfferedTrack>();
  private readonly streams = new Map<string, StreamStats>();
  private readonly tracks = new Set<Track>();
  private closed = false;

  constructor(
    private readonly opener: FrameOpener,
    private readonly rtcConfig: RtcConfig = { iceServers: [] },
  ) {}

  /** The receiving connection's state ('new' before the SFU's first offer). */
  get state(): ConnectionState {
    return this.closed ? 'closed' : (this.pc?.state() ?? 'new');
  }

  /** Whether the SFU made its first offer yet (the connection is made with it). */
  get started(): boolean {
    return this.pc !== undefined;
  }

  /** Counts per sender and kind ("<peerId>/<kind>"), copied. */
  stats(): StreamStats[] {
    return [...this.streams.values()].map((s) => ({ ...s }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.tracks) {
      try {
        t.close();
      } catch {
        // gone with the connection
      }
    }
    try {
      this.pc?.close();
    } catch {
      // already closed
    }
  }

  /** Our answer to the SFU's offer; MediaConnections sends it. */
  async answer(sdp: string): Promise<string> {
    if (this.closed) throw new Error('closed');
    for (const [mid, t] of parseOffer(sdp)) this.offered.set(mid, t);
    if (!this.pc) {
      this.pc = new nodeDataChannel.PeerConnection('bot-sub', this.rtcConfig);
      this.pc.onTrack((track) => this.onTrack(track));
    }
    // The engine answers a remote offer by itself. Without the SFU's candidates we send no
    // checks before the SFU holds our answer (see MediaSender.offer); it finds us from ours.
    this.pc.setRemoteDescription(withoutCandidates(sdp), 'offer');
    await waitForGathering(this.pc);
    const answer = this.pc.localDescription();
    if (this.closed || !answer || answer.type !== 'answer') throw new Error('no answer');
    return answer.sdp;
  }

  private onTrack(track: Track): void {
    holdUntilClosed(track, () => this.tracks.delete(track));
    this.tracks.add(track);
    if (this.closed) return track.close();
    const info = this.offered.get(track.mid());
    if (!info) return;
    const key = `${info.peerId}/${info.kind}`;
    let stats = this.streams.get(key);
    const earlier = stats?.packetsExpected ?? 0;
    if (!stats) {
      stats = {
        peerId: info.peerId,
        kind: info.kind,
        packets: 0,
        packetsExpected: 0,
        completeFrames: 0,
        authenticatedFrames: 0,
        unauthenticatedFrames: 0,
        incompleteFrames: 0,
        keyFrames: 0,
        width: 0,
        height: 0,
        freezes: 0,
        freezeMs: 0,
        firstFrameAt: undefined,
        lastFrameAt: undefined,
      };
      this.streams.set(key, stats);
    }
    const stream = new IncomingStream(stats, this.opener, earlier);
    track.onMessage((buf) => stream.onPacket(buf));
  }
}
