/**
 * A bot's publish connection: its own SDP offer (node-datachannel, SSRCs declared), then the
 * fixture's VP8 frames and Opus packets, each frame encrypted as the browser worker's
 * FrameCryptor does (FrameSealer, byte for byte), packetized as RTP and sent at 30 fps / every
 * 20 ms. A PLI or FIR from the SFU makes the video restart at the fixture's next key frame.
 *
 * What goes on the wire is described in docs/BOTS.md ("Wire format").
 */
import nodeDataChannel, { type PeerConnection, type RtcConfig, type Track } from 'node-datachannel';
import type { ConnectionState, PublishConnection } from '../client/media-connections.js';
import type { FrameCryptor } from '../e2ee/sframe.js';
import { holdUntilClosed } from '../server/media/live-tracks.js';
import { waitForGathering } from '../server/media/gathering.js';
import { withoutCandidates } from '../server/media/sdp.js';
import { type AudioFixture, type Fixtures, type LayerName, OPUS_SILENCE, type VideoFixture } from './fixtures.js';
import { pacer, type PacedStream } from './pacer.js';
import {
  AUDIO_CLOCK_RATE,
  AUDIO_LEVEL_URI,
  buildSenderReport,
  type HeaderExtension,
  isRtcp,
  keyFrameRequests,
  OPUS_PAYLOAD_TYPE,
  packetizeOpus,
  packetizeVp8,
  RID_URI,
  RtpWriter,
  VIDEO_CLOCK_RATE,
  VP8_PAYLOAD_TYPE,
} from './rtp.js';

/** Header extension ids of the bot's offer (the SFU passes them through with the publisher's ids). */
export const AUDIO_LEVEL_EXT_ID = 1;
export const RID_EXT_ID = 10;
const AUDIO_FRAME_MS = 20;
const SENDER_REPORT_INTERVAL_MS = 1000;
/** Frames waiting for encryption before the sender gives up on them and restarts at a key frame. */
const MAX_QUEUED_FRAMES = 15;

export interface SenderOptions {
  fixtures: Fixtures;
  /** Encrypts each frame (FrameSealer in bots; FrameCryptor writes the same frames). */
  cryptor: Pick<FrameCryptor, 'encrypt'>;
  /** Simulcast layers to send, lowest first; each is its own SSRC (and rid). Default ['h']. */
  layers?: LayerName[];
  /** 'tone': the fixture's Opus tone; 'silence': Opus silence packets; 'off': no audio m-line. */
  audio?: 'tone' | 'silence' | 'off';
  /** RFC 6464 level in -dBov (0 loudest … 127 silence) in every audio packet. */
  audioLevel?: number;
  rtcConfig?: RtcConfig;
}

export interface SenderStats {
  videoFrames: number;
  audioFrames: number;
  keyFrameRequests: number;
  /** Frames not sent because no send key was set yet or encryption failed. */
  unsent: number;
  /** The video layers sent now, by rid (all of them until the SFU asks for fewer). */
  layers: string[];
}

function randomSsrc(): number {
  return (Math.floor(Math.random() * 0xfffffffe) + 1) >>> 0;
}

interface Layer {
  rid: LayerName;
  fixture: VideoFixture;
  writer: RtpWriter;
  extensions: HeaderExtension[];
  pictureId: number;
  /** Sent now: the SFU may ask for fewer layers when no tile needs the others (`sendLayers`). */
  active: boolean;
}

/** The bot's publishing connection, negotiated by the client's MediaConnections as a page's is. */
export class MediaSender implements PublishConnection {
  readonly stats: SenderStats = { videoFrames: 0, audioFrames: 0, keyFrameRequests: 0, unsent: 0, layers: [] };
  private readonly pc: PeerConnection;
  private readonly tracks: Track[] = [];
  private readonly layers: Layer[];
  private readonly audioWriter?: RtpWriter;
  private readonly audioFixture: AudioFixture;
  private readonly audioMode: 'tone' | 'silence' | 'off';
  private readonly audioExtensions: HeaderExtension[];
  private videoTrack?: Track;
  private audioTrack?: Track;
  private video?: VideoStream;
  private audio?: AudioStream;
  private closed = false;
  private offered?: Promise<string>;

  constructor(private readonly opts: SenderOptions) {
    const cname = `bot${randomSsrc().toString(36)}`;
    this.pc = new nodeDataChannel.PeerConnection('bot-pub', { iceServers: [], ...opts.rtcConfig, disableAutoNegotiation: true });
    const layerNames = opts.layers ?? ['h'];
    const simulcast = layerNames.length > 1;
    this.layers = layerNames.map((name) => ({
      rid: name,
      fixture: opts.fixtures.video[name],
      writer: new RtpWriter(randomSsrc(), VP8_PAYLOAD_TYPE),
      extensions: simulcast ? [{ id: RID_EXT_ID, data: Buffer.from(name) }] : [],
      pictureId: Math.floor(Math.random() * 0x8000),
      active: true,
    }));
    this.stats.layers = [...layerNames];
    // Microphone, then camera: the m-line order browsers publish in, which the app relies on
    // to tell a participant's camera from a later screen share (src/ui/call/remote-media.ts).
    this.audioMode = opts.audio ?? 'tone';
    this.audioFixture = this.audioMode === 'tone' ? opts.fixtures.audio : { packets: [OPUS_SILENCE] };
    const level = Math.max(0, Math.min(127, Math.round(opts.audioLevel ?? (this.audioMode === 'tone' ? 30 : 127))));
    this.audioExtensions = [{ id: AUDIO_LEVEL_EXT_ID, data: Buffer.from([(level < 127 ? 0x80 : 0) | level]) }];
    if (this.audioMode !== 'off') {
      this.audioWriter = new RtpWriter(randomSsrc(), OPUS_PAYLOAD_TYPE);
      const audio = new nodeDataChannel.Audio('0', 'SendOnly');
      audio.addOpusCodec(OPUS_PAYLOAD_TYPE);
      audio.addSSRC(this.audioWriter.ssrc, cname, cname, 'audio');
      audio.parseSdpLine(`a=extmap:${AUDIO_LEVEL_EXT_ID} ${AUDIO_LEVEL_URI}`);
      this.audioTrack = this.addTrack(audio);
    }
    const video = new nodeDataChannel.Video(this.audioMode === 'off' ? '0' : '1', 'SendOnly');
    video.addVideoCodec(VP8_PAYLOAD_TYPE, 'VP8');
    for (const l of this.layers) video.addSSRC(l.writer.ssrc, cname, cname, 'video');
    if (simulcast) {
      video.parseSdpLine(`a=extmap:${RID_EXT_ID} ${RID_URI}`);
      video.parseSdpLine(`a=ssrc-group:SIM ${this.layers.map((l) => l.writer.ssrc).join(' ')}`);
    }
    this.videoTrack = this.addTrack(video);
    this.videoTrack.onMessage((buf) => this.onVideoRtcp(buf));
  }

  /** The m-line of the video (the SFU names it in `sendLayers`). */
  get videoMid(): string {
    return this.audioMode === 'off' ? '0' : '1';
  }

  /**
   * The SFU's `sendLayers` for our video: send only simulcast layers `from` to `count` - 1, as a
   * browser's encoder would. A layer turned on again starts at a key frame. (`thinSmall` is not
   * followed: the bot's layers are fixed recordings.)
   */
  sendLayers(mid: string, count: number, from = 0, _thinSmall = false): void {
    if (mid !== this.videoMid || this.layers.length < 2) return;
    let resumed = false;
    for (const [i, l] of this.layers.entries()) {
      const active = i >= from && i < count;
      if (active && !l.active) resumed = true;
      l.active = active;
    }
    this.stats.layers = this.layers.filter((l) => l.active).map((l) => l.rid);
    if (resumed) this.video?.restartAtKeyFrame();
  }

  /** The SSRC of each layer, lowest first, and of the audio. */
  get ssrcs(): { video: number[]; audio?: number } {
    return { video: this.layers.map((l) => l.writer.ssrc), audio: this.audioWriter?.ssrc };
  }

  /**
   * The publish offer, without our ICE candidates: the SFU finds us from our connectivity
   * checks (peer-reflexive), which start only once we hold its answer. With our candidates
   * inside, its checks and DTLS handshake could reach us before its answer does, and
   * libdatachannel then fails the connection (no remote fingerprint to check yet).
   * Made once: the first call starts gathering (while the bot knocks), later ones get the same.
   */
  offer(): Promise<string> {
    this.offered ??= this.makeOffer();
    return this.offered;
  }

  private async makeOffer(): Promise<string> {
    this.pc.setLocalDescription('offer');
    await waitForGathering(this.pc);
    const sdp = this.pc.localDescription()?.sdp;
    if (!sdp) throw new Error('no local description');
    return withoutCandidates(sdp);
  }

  /** The publish connection's state (new, connecting, connected, …). */
  get state(): ConnectionState {
    return this.closed ? 'closed' : this.pc.state();
  }

  async setAnswer(sdp: string): Promise<void> {
    if (this.closed) return;
    this.pc.setRemoteDescription(sdp, 'answer');
  }

  /** A bot's offer is answered before it could make another: nothing to wait for. */
  settled(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.video) pacer.remove(this.video);
    if (this.audio) pacer.remove(this.audio);
    for (const t of this.tracks) {
      try {
        t.close();
      } catch {
        // gone with the connection
      }
    }
    try {
      this.pc.close();
    } catch {
      // already closed
    }
  }

  private addTrack(media: Parameters<PeerConnection['addTrack']>[0]): Track {
    const track = this.pc.addTrack(media);
    holdUntilClosed(track);
    this.tracks.push(track);
    track.onOpen(() => this.onOpen(track));
    return track;
  }

  private onOpen(track: Track): void {
    if (this.closed) return;
    if (track === this.videoTrack && !this.video) {
      this.video = new VideoStream(this, track, this.layers);
      pacer.add(this.video);
    }
    if (track === this.audioTrack && this.audioWriter && !this.audio) {
      this.audio = new AudioStream(this, track, this.audioWriter, this.audioFixture, this.audioExtensions);
      pacer.add(this.audio);
    }
  }

  private onVideoRtcp(buf: Buffer): void {
    if (!isRtcp(buf)) return;
    const asked = keyFrameRequests(buf);
    if (asked.some((ssrc) => this.layers.some((l) => l.writer.ssrc === ssrc))) {
      this.stats.keyFrameRequests++;
      this.video?.restartAtKeyFrame();
    }
  }

  /** @internal */
  encrypt(frame: Uint8Array, kind: 'audio' | 'video', keyFrame: boolean): Promise<Uint8Array> {
    return this.opts.cryptor.encrypt(frame, { kind, keyFrame });
  }

  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }
}

/** Sends one encrypted frame at a time, in order: encryption is asynchronous. */
abstract class FrameStream implements PacedStream {
  nextAt: number;
  protected queued = 0;
  private running = false;
  private lastReportAt = 0;

  constructor(
    protected readonly sender: MediaSender,
    protected readonly track: Track,
    private readonly intervalMs: number,
    private readonly writers: RtpWriter[],
    private readonly clockRate: number,
  ) {
    this.nextAt = performance.now() + Math.random() * intervalMs;
  }

  tick(now: number): void {
    // Late timers send what is due (up to 10 frames: a stalled process does not burst seconds of media).
    let due = 0;
    while (this.nextAt <= now && due < 10) {
      this.nextAt += this.intervalMs;
      due++;
    }
    if (this.nextAt <= now) this.nextAt = now + this.intervalMs;
    this.queued += due;
    if (this.queued > MAX_QUEUED_FRAMES) this.overloaded();
    if (!this.running) void this.pump();
    if (now - this.lastReportAt >= SENDER_REPORT_INTERVAL_MS) {
      this.lastReportAt = now;
      this.sendReports();
    }
  }

  protected abstract sendFrame(): Promise<void>;
  protected abstract rtpTimestampNow(): number;
  protected overloaded(): void {
    this.queued = 1;
  }

  protected send = (packet: Buffer): void => {
    try {
      this.track.sendMessageBinary(packet);
    } catch {
      // the connection is closing
    }
  };

  private async pump(): Promise<void> {
    this.running = true;
    try {
      while (this.queued > 0 && !this.sender.isClosed) {
        this.queued--;
        await this.sendFrame();
      }
    } finally {
      this.running = false;
    }
  }

  private sendReports(): void {
    if (!this.track.isOpen()) return;
    const ts = this.rtpTimestampNow();
    for (const w of this.writers) {
      if (w.packets === 0) continue;
      this.send(buildSenderReport(w.ssrc, Date.now(), ts, w.packets, w.octets));
    }
  }
}

class VideoStream extends FrameStream {
  private index = 0;
  private frameNo = 0;
  private keyRequested = false;
  private readonly timestampBase = Math.floor(Math.random() * 2 ** 32);
  private readonly frameTicks: number;

  constructor(
    sender: MediaSender,
    track: Track,
    private readonly layers: Layer[],
  ) {
    const fps = layers[0]!.fixture.fps;
    super(sender, track, 1000 / fps, layers.map((l) => l.writer), VIDEO_CLOCK_RATE);
    this.frameTicks = VIDEO_CLOCK_RATE / fps;
  }

  restartAtKeyFrame(): void {
    this.keyRequested = true;
  }

  protected override overloaded(): void {
    super.overloaded();
    this.keyRequested = true; // frames were skipped: decoders need a fresh start
  }

  protected rtpTimestampNow(): number {
    return (this.timestampBase + this.frameNo * this.frameTicks) >>> 0;
  }

  protected async sendFrame(): Promise<void> {
    const key = this.layers[0]!.fixture.keyFrame;
    if (this.keyRequested) {
      this.keyRequested = false;
      if (!key[this.index]) {
        do this.index = (this.index + 1) % key.length;
        while (!key[this.index]);
      }
    }
    const index = this.index;
    this.index = (this.index + 1) % key.length;
    const timestamp = this.rtpTimestampNow();
    this.frameNo++;
    const stats = this.sender.stats;
    let sealed: (Uint8Array | undefined)[];
    try {
      // Counters are taken in call order, so the layers may be encrypted concurrently.
      sealed = await Promise.all(
        this.layers.map((l) => {
          if (!l.active) return undefined;
          const at = index % l.fixture.frames.length;
          return this.sender.encrypt(l.fixture.frames[at]!, 'video', l.fixture.keyFrame[at]!);
        }),
      );
    } catch {
      // No send key yet: nothing leaves unencrypted, and the first frame sent must be a key frame.
      stats.unsent++;
      this.keyRequested = true;
      return;
    }
    if (this.sender.isClosed) return;
    this.layers.forEach((layer, i) => {
      const frame = sealed[i];
      if (!frame) return;
      packetizeVp8(layer.writer, frame, timestamp, layer.pictureId, this.send, layer.extensions);
      layer.pictureId = (layer.pictureId + 1) & 0x7fff;
    });
    stats.videoFrames++;
  }
}

class AudioStream extends FrameStream {
  private index = 0;
  private frameNo = 0;
  private readonly timestampBase = Math.floor(Math.random() * 2 ** 32);

  constructor(
    sender: MediaSender,
    track: Track,
    private readonly writer: RtpWriter,
    private readonly fixture: AudioFixture,
    private readonly extensions: HeaderExtension[],
  ) {
    super(sender, track, AUDIO_FRAME_MS, [writer], AUDIO_CLOCK_RATE);
  }

  protected rtpTimestampNow(): number {
    return (this.timestampBase + this.frameNo * ((AUDIO_CLOCK_RATE * AUDIO_FRAME_MS) / 1000)) >>> 0;
  }

  protected async sendFrame(): Promise<void> {
    const packet = this.fixture.packets[this.index]!;
    this.index = (this.index + 1) % this.fixture.packets.length;
    const timestamp = this.rtpTimestampNow();
    this.frameNo++;
    let sealed: Uint8Array;
    try {
      sealed = await this.sender.encrypt(packet, 'audio', false);
    } catch {
      this.sender.stats.unsent++;
      return;
    }
    if (this.sender.isClosed) return;
    packetizeOpus(this.writer, sealed, timestamp, this.send, this.extensions);
    this.sender.stats.audioFrames++;
  }
}
