/**
 * The browser's two PeerConnections to the SFU: one publishes this page's
 * camera and microphone, one receives everyone else (the server offers, we
 * answer). Remote tracks arrive grouped by participant id (the stream id).
 *
 * Only browser glue: when offers and answers go out, and when connections are
 * rebuilt, is decided by the client's MediaConnections (src/client/media-connections.ts),
 * the same rules the bots follow.
 */
import type { CallKeyState } from '../../client/call.js';
import {
  type ConnectionState,
  MediaConnections,
  type PublishConnection,
  type ReceiveConnection,
} from '../../client/media-connections.js';
import type { SignalingClient } from '../../client/signaling.js';
import { E2eeSession, peerConnectionConfig } from '../../e2ee/session.js';

const GATHER_TIMEOUT_MS = 3000;
/**
 * With no STUN/TURN servers configured, every candidate is a host candidate and
 * they all arrive within milliseconds, while Chromium may take ~300 ms more to
 * call gathering "complete". Send the description shortly after the first
 * candidate instead; ICE also learns peer-reflexive candidates from the checks.
 * (With STUN/TURN configured this must wait for completion, or trickle.)
 */
const HOST_CANDIDATE_GRACE_MS = 40;
/**
 * With TURN configured, gathering completes only when every TURN URL has answered or timed out:
 * behind a firewall that drops UDP, TURN over UDP never answers and gathering would take the
 * whole GATHER_TIMEOUT_MS. The first relay candidate (over whichever transport got through)
 * is enough to connect; the description goes out shortly after it.
 */
const RELAY_CANDIDATE_GRACE_MS = 300;

/** Resolves once no offer of ours is waiting for its answer (or after a few seconds). */
function settled(pc: RTCPeerConnection): Promise<void> {
  if (pc.signalingState === 'stable' || pc.signalingState === 'closed') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.signalingState !== 'stable' && pc.signalingState !== 'closed') return;
      pc.removeEventListener('signalingstatechange', done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener('signalingstatechange', done);
      resolve();
    }, GATHER_TIMEOUT_MS);
    pc.addEventListener('signalingstatechange', done);
  });
}

/** Non-trickle signaling: wait until our candidates are in the local description. */
function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  const hostOnly = (pc.getConfiguration().iceServers ?? []).length === 0;
  return new Promise((resolve) => {
    let grace: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      pc.removeEventListener('icegatheringstatechange', onState);
      pc.removeEventListener('icecandidate', onCandidate);
      clearTimeout(timer);
      clearTimeout(grace);
      resolve();
    };
    const onState = () => pc.iceGatheringState === 'complete' && finish();
    const onCandidate = (e: RTCPeerConnectionIceEvent) => {
      if (!e.candidate || grace) return;
      if (hostOnly) grace = setTimeout(finish, HOST_CANDIDATE_GRACE_MS);
      else if (e.candidate.type === 'relay') grace = setTimeout(finish, RELAY_CANDIDATE_GRACE_MS);
    };
    const timer = setTimeout(finish, GATHER_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', onState);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

/** 320×240 (or so) at 30 fps: enough for a small tile, and leaves the rest to the top layer. */
const SMALL_LAYER_MAX_BITRATE = 125_000;
/**
 * The smallest layer while the SFU says some viewer cannot fit it (`sendLayers`' `thinSmall`): a
 * guest on a 400 kbit/s downlink with two others then got both at 21-23 fps instead of 5-18
 * (lab). It is also sent at half the size (THIN_SMALL_LAYER_SCALE): at this rate Chromium's
 * encoder skipped frames at 320×240 (~23 fps), and smaller key frames fit a short queue.
 */
const THIN_SMALL_LAYER_MAX_BITRATE = 90_000;
/** How much smaller the thin smallest layer is than its usual size (each side). */
const THIN_SMALL_LAYER_SCALE = 2;
/** 640×360 (or so), the middle of three layers. */
const MIDDLE_LAYER_MAX_BITRATE = 500_000;

/**
 * Simulcast layers, smallest first (the SFU forwards each viewer the one its tile and bandwidth
 * call for; docs/MEDIA.md). Chromium sends at most two layers below 960 px of camera width and
 * one below 480 px, whatever is configured, dropping the largest: so configure only what it sends.
 *
 * The smaller layers are capped: on a narrow uplink Chromium gives each lower layer its target
 * first (~200 kbit/s for 320×240) and the top layer only what is left, so behind a 600 kbit/s
 * uplink the 640×480 layer flapped on and off at 12–14 fps (docs/MEDIA.md, congestion control).
 */
function simulcastEncodings(cameraWidth: number): RTCRtpEncodingParameters[] | undefined {
  if (cameraWidth >= 960) {
    return [
      { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: SMALL_LAYER_MAX_BITRATE },
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: MIDDLE_LAYER_MAX_BITRATE },
      { rid: 'f', scaleResolutionDownBy: 1 },
    ];
  }
  if (cameraWidth >= 480) return [{ rid: 'h', scaleResolutionDownBy: 2, maxBitrate: SMALL_LAYER_MAX_BITRATE }, { rid: 'f', scaleResolutionDownBy: 1 }];
  return undefined;
}

/** What a publishing connection sends, read when its offer is made. */
interface PublishSetup {
  e2ee: E2eeSession;
  stream?: MediaStream;
  screen?: MediaStreamTrack;
  published: boolean;
}

/** The publishing RTCPeerConnection: its offer, its senders, and how it applies the SFU's `sendLayers`. */
class BrowserPublisher implements PublishConnection {
  readonly pc: RTCPeerConnection;
  /** The senders, in slot order (microphone, camera, screen). */
  senders: RTCRtpSender[] = [];
  /** The senders by m-line, for the SFU's `sendLayers`. */
  private sendersByMid = new Map<string, RTCRtpSender>();
  private offered?: Promise<string>;

  constructor(
    config: RTCConfiguration,
    changed: () => void,
    private readonly setup: () => PublishSetup,
    private readonly layers: (sender: RTCRtpSender, layers: number, from: number, thinSmall: boolean) => void,
  ) {
    this.pc = new RTCPeerConnection(config);
    this.pc.addEventListener('connectionstatechange', changed);
  }

  get state(): ConnectionState {
    return this.pc.connectionState;
  }

  /** Build and gather the offer (once per connection). */
  offer(): Promise<string> {
    this.offered ??= this.prepare();
    return this.offered;
  }

  setAnswer(sdp: string): Promise<void> {
    return this.pc.setRemoteDescription({ type: 'answer', sdp });
  }

  settled(): Promise<void> {
    return settled(this.pc);
  }

  sendLayers(mid: string, layers: number, from: number, thinSmall: boolean): void {
    const sender = this.sendersByMid.get(mid);
    if (sender) this.layers(sender, layers, from, thinSmall);
  }

  close(): void {
    this.pc.close();
  }

  private async prepare(): Promise<string> {
    const { e2ee, stream, screen, published } = this.setup();
    const pc = this.pc;
    const transceivers: RTCRtpTransceiver[] = [];
    // Always the same shape — microphone, camera, then the screen when shared —
    // with empty senders for missing devices: receivers tell the screen from the
    // camera by this order (see videoOrder), and a device added later needs no renegotiation.
    const slots: [MediaStreamTrack | null, 'audio' | 'video'][] = [
      [stream?.getAudioTracks()[0] ?? null, 'audio'],
      [stream?.getVideoTracks()[0] ?? null, 'video'],
    ];
    if (screen) slots.push([screen, 'video']);
    for (const [i, [track, kind]] of slots.entries()) {
      // The camera (slot 1) in simulcast layers; a camera added later is assumed 640x480.
      const sendEncodings = i === 1 ? simulcastEncodings(track?.getSettings().width ?? 640) : undefined;
      // Empty until we are let in (see connectPublisher).
      const transceiver = pc.addTransceiver((published && track) || kind, {
        direction: 'sendonly',
        streams: stream ? [stream] : [],
        ...(sendEncodings ? { sendEncodings } : {}),
      });
      e2ee.attachSender(transceiver.sender, kind);
      this.senders.push(transceiver.sender);
      transceivers.push(transceiver);
    }
    await pc.setLocalDescription(await pc.createOffer());
    this.sendersByMid = new Map(transceivers.map((t) => [t.mid ?? '', t.sender]));
    await gathered(pc);
    return pc.localDescription!.sdp;
  }
}

/** The receiving RTCPeerConnection: answers the SFU's offers. */
class BrowserReceiver implements ReceiveConnection {
  readonly pc: RTCPeerConnection;

  constructor(
    config: RTCConfiguration,
    changed: () => void,
    readonly offerHandled: () => void,
  ) {
    this.pc = new RTCPeerConnection(config);
    this.pc.addEventListener('connectionstatechange', changed);
  }

  get state(): ConnectionState {
    return this.pc.connectionState;
  }

  async answer(offer: string): Promise<string> {
    const pc = this.pc;
    await pc.setRemoteDescription({ type: 'offer', sdp: offer });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    return pc.localDescription!.sdp;
  }

  close(): void {
    this.pc.close();
  }
}

/** Every frame is encrypted in a worker before it leaves and decrypted after it arrives; there is no clear mode. */
export class CallConnection {
  private readonly e2ee = new E2eeSession();
  private readonly media: MediaConnections<BrowserPublisher, BrowserReceiver>;
  private readonly streams = new Map<string, MediaStream>();
  /** Tracks arrived during the answer being made: the page learns of them once it is sent. */
  private streamsChanged = false;
  /** Each received track's m-line (noted on arrival: asking the connection later is a blocking call). */
  private readonly mids = new WeakMap<MediaStreamTrack, string>();
  private stream?: MediaStream;
  private screen?: MediaStreamTrack;
  /** How many layers the SFU last asked of each sender, applied one change at a time. */
  private readonly layerRequests = new Map<RTCRtpSender, { layers: number; from: number; thinSmall: boolean }>();
  private layerQueue = Promise.resolve();
  /** Each sender's smallest layer's usual scale (simulcastEncodings), before any thinning. */
  private readonly smallLayerScale = new WeakMap<RTCRtpSender, number>();
  private closed = false;
  onStreams?: (streams: ReadonlyMap<string, MediaStream>) => void;
  /** The media connection failed for good (the page says so in the person's language). */
  onFailure?: () => void;

  /** `rtc`: ICE servers (TURN credentials) and transport policy from the server (see prepareCall). */
  constructor(
    signaling: SignalingClient,
    private readonly rtc: RTCConfiguration = {},
  ) {
    // No ICE candidate pool: with a pooled candidate, Chromium now and then never gathered for the
    // receiving connection (no candidate, no checks: it stayed "connecting", ~1 join in 25 here),
    // and with TURN a pooled relay allocation broke relay-only calls. Gathering host candidates
    // takes a few milliseconds, and it happens while the guest waits in the lobby.
    const config = (): RTCConfiguration => ({ ...peerConnectionConfig(), ...this.rtc });
    const setup = (): PublishSetup => ({ e2ee: this.e2ee, stream: this.stream, screen: this.screen, published: this.media.published });
    this.media = new MediaConnections(signaling, {
      publisher: (changed) => new BrowserPublisher(config(), changed, setup, (sender, layers, from, thinSmall) => this.sendLayers(sender, layers, from, thinSmall)),
      receiver: (changed) => {
        const receiver = new BrowserReceiver(config(), changed, () => this.showStreams());
        receiver.pc.addEventListener('track', (event) => this.onTrack(receiver, event));
        return receiver;
      },
    });
    this.media.onFailure = () => this.onFailure?.();
    this.media.onRestart = () => {
      this.streams.clear();
      this.onStreams?.(this.streams);
    };
  }

  /**
   * The SFU says which of our simulcast layers anyone watches: the encoder stops the others
   * (no renegotiation; a layer turned on again starts with a key frame).
   */
  private sendLayers(sender: RTCRtpSender, layers: number, from: number, thinSmall: boolean): void {
    this.layerRequests.set(sender, { layers, from, thinSmall });
    this.layerQueue = this.layerQueue
      .then(async () => {
        const wanted = this.layerRequests.get(sender);
        if (wanted === undefined || this.closed) return;
        this.layerRequests.delete(sender);
        const params = sender.getParameters();
        // Our encodings are in the offer's order, smallest first (simulcastEncodings).
        let changed = false;
        for (const [i, e] of params.encodings.entries()) {
          const active = i >= wanted.from && i < wanted.layers;
          if (e.active !== active) {
            e.active = active;
            changed = true;
          }
        }
        // The smallest of several layers: thinner and smaller while some viewer cannot fit it (SmallLayerSqueeze).
        const smallest = params.encodings.length > 1 ? params.encodings[0] : undefined;
        if (smallest) {
          const usualScale = this.smallLayerScale.get(sender) ?? smallest.scaleResolutionDownBy ?? 1;
          this.smallLayerScale.set(sender, usualScale);
          const cap = wanted.thinSmall ? THIN_SMALL_LAYER_MAX_BITRATE : SMALL_LAYER_MAX_BITRATE;
          const scale = wanted.thinSmall ? usualScale * THIN_SMALL_LAYER_SCALE : usualScale;
          if (smallest.maxBitrate !== cap || smallest.scaleResolutionDownBy !== scale) {
            smallest.maxBitrate = cap;
            smallest.scaleResolutionDownBy = scale;
            changed = true;
          }
        }
        if (changed) await sender.setParameters(params);
      })
      .catch(() => {
        // The connection closed or was replaced meanwhile: its successor starts sending every layer.
      });
  }

  private onTrack(receiver: BrowserReceiver, event: RTCTrackEvent): void {
    if (receiver !== this.media.receiver) return;
    this.e2ee.attachReceiver(event.receiver);
    if (event.transceiver.mid !== null) this.mids.set(event.track, event.transceiver.mid);
    const stream = event.streams[0];
    if (!stream) return;
    // A screen share starting or stopping adds or removes tracks of a known stream.
    const changed = () => this.streams.get(stream.id) === stream && this.onStreams?.(this.streams);
    if (!this.streams.has(stream.id)) stream.addEventListener('removetrack', changed);
    event.track.addEventListener('ended', changed);
    this.streams.set(stream.id, stream);
    // Shown once our answer is out (see showStreams): drawing new videos holds the page up, and the
    // SFU starts sending only when it has our answer.
    this.streamsChanged = true;
  }

  /** After an offer was dealt with: the tracks it brought are shown. */
  private showStreams(): void {
    if (!this.streamsChanged) return;
    this.streamsChanged = false;
    this.onStreams?.(this.streams);
  }

  /** Answer an SFU offer for what we receive (also offers that arrived before this connection existed). */
  receiveOffer(sdp: string): void {
    this.media.receiveOffer(sdp);
  }

  /**
   * Resolves once the SFU has our answer for the others' media (it starts forwarding then), or
   * after `timeoutMs` (nobody else sends anything yet). The page draws the call after this: drawing
   * it holds the page up for a while, which would otherwise delay that answer.
   */
  mediaAnswered(timeoutMs: number): Promise<void> {
    return this.media.mediaAnswered(timeoutMs);
  }

  /** After a lost signaling connection: media that did not survive it is rebuilt. */
  checkConnections(): void {
    this.media.checkConnections();
  }

  /**
   * Re-key: new frames go out under the new key; older epochs stay readable for a few seconds.
   * The first key (from a Welcome that verified, or our own group as the host first in) also lets media
   * in: before it, offers that carry media are prepared but not answered.
   */
  setKeys(state: CallKeyState): void {
    this.media.allowMedia();
    this.e2ee.addReceiveKey(state.key);
    this.e2ee.setSendKey(state.key, state.senderIndex);
  }

  /**
   * While waiting to be let in: connect the publishing connection with empty senders, so that
   * once admitted, sending is only a matter of handing it the tracks (no ICE, DTLS or
   * renegotiation then). The SFU forwards nothing of a waiting guest; nothing is sent anyway.
   */
  connectPublisher(stream?: MediaStream): Promise<void> {
    this.stream = stream;
    return this.media.connectPublisher();
  }

  /** Start sending the local camera and microphone (either may be missing), encrypted. */
  async publish(stream?: MediaStream): Promise<void> {
    this.stream = stream;
    const publisher = await this.media.publish();
    if (!publisher) return;
    // Senders prepared while waiting are empty: the tracks go in now. (The senders were kept when
    // made: asking the connection for them is a blocking call, just when the call starts.)
    const senders = publisher.senders;
    const tracks = [stream?.getAudioTracks()[0], stream?.getVideoTracks()[0]];
    await Promise.all(
      tracks.map((track, slot) => {
        const sender = senders[slot];
        return track && sender && sender.track !== track ? sender.replaceTrack(track) : undefined;
      }),
    );
  }

  /**
   * Start or stop sending a shared screen. The SFU takes a new publish offer as
   * a new publisher, so this builds a new publishing connection (same E2EE
   * session: one frame counter, so no nonce is ever reused) and replaces the old.
   */
  async setScreen(track: MediaStreamTrack | undefined): Promise<void> {
    this.screen = track;
    if (track) track.contentHint = 'detail';
    await this.media.replacePublisher();
  }

  /** Swap the camera or microphone without renegotiating (also into an empty slot). */
  async replaceTrack(track: MediaStreamTrack): Promise<void> {
    const slot = track.kind === 'audio' ? 0 : 1;
    await this.media.publisher.pc.getTransceivers()[slot]?.sender.replaceTrack(track);
  }

  /**
   * Where a received track stands among its sender's tracks (its m-line order):
   * a participant's first video is the camera, a second one the shared screen.
   */
  videoOrder(track: MediaStreamTrack): number {
    const mid = this.mids.get(track);
    return mid === undefined ? Infinity : Number(mid);
  }

  /** Statistics of what we receive (levels, loss) and what we send. */
  receiveStats(): Promise<RTCStatsReport> {
    return this.media.receiver.pc.getStats();
  }
  sendStats(): Promise<RTCStatsReport> {
    return this.media.publisher.pc.getStats();
  }

  forget(participantId: string): void {
    if (this.streams.delete(participantId)) this.onStreams?.(this.streams);
  }

  close(): void {
    this.closed = true;
    this.e2ee.close();
    this.media.close();
  }
}
