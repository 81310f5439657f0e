/**
 * The browser's two PeerConnections to the SFU: one publishes this page's
 * camera and microphone, one receives everyone else (the server offers, we
 * answer). Remote tracks arrive grouped by participant id (the stream id).
 */
import type { SignalingClient } from '../../client/signaling.js';
import type { CallKeyState } from '../../client/call.js';
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

/** Whether an SFU offer carries anything to receive (the lobby's first offer carries nothing). */
function carriesMedia(sdp: string): boolean {
  return /^a=(?:sendonly|sendrecv)\r?$/m.test(sdp);
}

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

/** A media connection 'disconnected' this long (ICE lost its path, e.g. a network change) is rebuilt. */
const DISCONNECTED_GRACE_MS = 3000;
/**
 * A media connection still 'connecting' this long is rebuilt, as a last resort: one whose ICE or
 * DTLS never completes (as with the candidate pool, see createConnections) would otherwise leave
 * the call without pictures for good.
 */
const CONNECTING_TIMEOUT_MS = 10_000;
/** Rebuilding the media connections is given up after this many tries in a row without success. */
const MAX_RESTARTS = 5;

/** Every frame is encrypted in a worker before it leaves and decrypted after it arrives; there is no clear mode. */
export class CallConnection {
  private readonly e2ee = new E2eeSession();
  private publisher!: RTCPeerConnection;
  private subscriber!: RTCPeerConnection;
  private readonly streams = new Map<string, MediaStream>();
  private allowReceiving!: () => void;
  /** Resolves with the first call key (see setKeys). */
  private readonly receiving = new Promise<void>((resolve) => (this.allowReceiving = resolve));
  private answeredMedia!: () => void;
  /** Resolves once our first answer that takes media has gone out (see mediaAnswered). */
  private readonly firstMediaAnswer = new Promise<void>((resolve) => (this.answeredMedia = resolve));
  /** Tracks arrived during the answer being made: the page learns of them once it is sent. */
  private streamsChanged = false;
  /** Each received track's m-line (noted on arrival: asking the connection later is a blocking call). */
  private readonly mids = new WeakMap<MediaStreamTrack, string>();
  private readonly offs: (() => void)[] = [];
  private subscribeQueue = Promise.resolve();
  private offer?: Promise<string>;
  private stream?: MediaStream;
  private screen?: MediaStreamTrack;
  /** Let in: our tracks go out (before, the publishing connection is connected with empty senders). */
  private published = false;
  /** The publishing connection whose offer went out. */
  private offerSent?: RTCPeerConnection;
  /** The publishing connection's senders, in slot order (microphone, camera, screen). */
  private senders: RTCRtpSender[] = [];
  /** The publishing connection's senders by m-line, for the SFU's `sendLayers`. */
  private sendersByMid = new Map<string, RTCRtpSender>();
  /** How many layers the SFU last asked of each sender, applied one change at a time. */
  private readonly layerRequests = new Map<RTCRtpSender, { layers: number; from: number }>();
  private layerQueue = Promise.resolve();
  /** Between our restartMedia and the server's mediaRestarted, offers are for the old transports. */
  private awaitingRestart = false;
  private restarts = 0;
  private closed = false;
  private disconnectTimer?: ReturnType<typeof setTimeout>;
  private readonly connectingTimers = new Map<RTCPeerConnection, ReturnType<typeof setTimeout>>();
  onStreams?: (streams: ReadonlyMap<string, MediaStream>) => void;
  /** The media connection failed for good (the page says so in the person's language). */
  onFailure?: () => void;

  /** `rtc`: ICE servers (TURN credentials) and transport policy from the server (see prepareCall). */
  constructor(
    private readonly signaling: SignalingClient,
    private readonly rtc: RTCConfiguration = {},
  ) {
    this.createConnections();
    this.offs.push(
      signaling.on('publishAnswer', (m) => {
        const publisher = this.publisher;
        publisher.setRemoteDescription({ type: 'answer', sdp: m.sdp }).then(
          () => this.expectConnected(publisher),
          () => this.fail(),
        );
      }),
      signaling.on('subscribeOffer', (m) => this.awaitingRestart || this.receiveOffer(m.sdp)),
      signaling.on('mediaRestarted', () => (this.awaitingRestart = false)),
      signaling.on('sendLayers', (m) => this.sendLayers(m.mid, m.layers, m.from ?? 0)),
    );
  }

  /**
   * The SFU says which of our simulcast layers anyone watches: the encoder stops the others
   * (no renegotiation; a layer turned on again starts with a key frame).
   */
  private sendLayers(mid: string, layers: number, from: number): void {
    const sender = this.sendersByMid.get(mid);
    if (!sender) return;
    this.layerRequests.set(sender, { layers, from });
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
        if (changed) await sender.setParameters(params);
      })
      .catch(() => {
        // The connection closed or was replaced meanwhile: its successor starts sending every layer.
      });
  }

  /** Answer an SFU offer for what we receive (also offers that arrived before this connection existed). */
  receiveOffer(sdp: string): void {
    // Offers are answered one at a time, in order.
    this.subscribeQueue = this.subscribeQueue.then(() => this.answer(sdp)).catch(() => this.fail());
  }

  /**
   * Resolves once the SFU has our answer for the others' media (it starts forwarding then), or
   * after `timeoutMs` (nobody else sends anything yet). The page draws the call after this: drawing
   * it holds the page up for a while, which would otherwise delay that answer.
   */
  mediaAnswered(timeoutMs: number): Promise<void> {
    return Promise.race([this.firstMediaAnswer, new Promise<void>((resolve) => setTimeout(resolve, timeoutMs))]);
  }

  /** After a lost signaling connection: media that did not survive it is rebuilt. */
  checkConnections(): void {
    const healthy = (pc: RTCPeerConnection) => pc.connectionState === 'connected' || pc.connectionState === 'connecting' || pc.connectionState === 'new';
    if (!healthy(this.publisher) || !healthy(this.subscriber)) void this.restart();
  }

  /**
   * New connections to new SFU transports (the server's side cannot restart ICE):
   * the others keep seeing our tile and get our media again within a second or so.
   */
  async restart(): Promise<void> {
    if (this.closed || this.awaitingRestart) return;
    if (++this.restarts > MAX_RESTARTS) return this.fail();
    this.publisher.close();
    this.subscriber.close();
    this.streams.clear();
    this.onStreams?.(this.streams);
    this.offer = undefined;
    this.subscribeQueue = Promise.resolve();
    this.createConnections();
    this.awaitingRestart = true;
    this.signaling.send({ type: 'restartMedia' });
    if (this.published) await this.publish(this.stream).catch(() => this.fail());
    else await this.connectPublisher(this.stream).catch(() => this.fail());
  }

  private createConnections(): void {
    this.publisher = this.newPublisher();
    // No ICE candidate pool: with a pooled candidate, Chromium now and then never gathered for the
    // receiving connection (no candidate, no checks: it stayed "connecting", ~1 join in 25 here),
    // and with TURN a pooled relay allocation broke relay-only calls. Gathering host candidates
    // takes a few milliseconds, and it happens while the guest waits in the lobby.
    this.subscriber = new RTCPeerConnection({ ...peerConnectionConfig(), ...this.rtc });
    const subscriber = this.subscriber;
    subscriber.addEventListener('track', (event) => {
      if (subscriber !== this.subscriber) return;
      this.e2ee.attachReceiver(event.receiver);
      if (event.transceiver.mid !== null) this.mids.set(event.track, event.transceiver.mid);
      const stream = event.streams[0];
      if (!stream) return;
      // A screen share starting or stopping adds or removes tracks of a known stream.
      const changed = () => this.streams.get(stream.id) === stream && this.onStreams?.(this.streams);
      if (!this.streams.has(stream.id)) stream.addEventListener('removetrack', changed);
      event.track.addEventListener('ended', changed);
      this.streams.set(stream.id, stream);
      // Shown once our answer is out (see answer()): drawing new videos holds the page up, and the
      // SFU starts sending only when it has our answer.
      this.streamsChanged = true;
    });
    this.watch(this.subscriber);
  }

  private newPublisher(): RTCPeerConnection {
    const pc = new RTCPeerConnection({ ...peerConnectionConfig(), ...this.rtc });
    this.watch(pc);
    return pc;
  }

  private watch(pc: RTCPeerConnection): void {
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'connected' || pc.connectionState === 'closed') {
        clearTimeout(this.connectingTimers.get(pc));
        this.connectingTimers.delete(pc);
      }
      if (pc !== this.publisher && pc !== this.subscriber) return;
      clearTimeout(this.disconnectTimer);
      if (pc.connectionState === 'connected' && this.publisher.connectionState === this.subscriber.connectionState) this.restarts = 0;
      // Without signaling the server cannot hear our restart: wait until we are back (checkConnections).
      if (!this.signaling.open) return;
      if (pc.connectionState === 'failed') void this.restart();
      if (pc.connectionState === 'disconnected') this.disconnectTimer = setTimeout(() => void this.restart(), DISCONNECTED_GRACE_MS);
    });
  }

  /** Both sides have each other's description now: unless `pc` connects in time, it is rebuilt. */
  private expectConnected(pc: RTCPeerConnection): void {
    if (this.connectingTimers.has(pc) || pc.connectionState === 'connected') return;
    this.connectingTimers.set(
      pc,
      setTimeout(() => {
        this.connectingTimers.delete(pc);
        const current = pc === this.publisher || pc === this.subscriber;
        const stuck = pc.connectionState === 'new' || pc.connectionState === 'connecting';
        if (current && stuck && this.signaling.open && !this.closed) void this.restart();
      }, CONNECTING_TIMEOUT_MS),
    );
  }

  /**
   * Re-key: new frames go out under the new key; older epochs stay readable for a few seconds.
   * The first key (from a Welcome that verified, or our own group as the host first in) also lets media
   * in: before it, offers that carry media are prepared but not answered.
   */
  setKeys(state: CallKeyState): void {
    this.allowReceiving();
    this.e2ee.addReceiveKey(state.key);
    this.e2ee.setSendKey(state.key, state.senderIndex);
  }

  /**
   * While waiting to be let in: connect the publishing connection with empty senders, so that
   * once admitted, sending is only a matter of handing it the tracks (no ICE, DTLS or
   * renegotiation then). The SFU forwards nothing of a waiting guest; nothing is sent anyway.
   */
  async connectPublisher(stream?: MediaStream): Promise<void> {
    const publisher = this.publisher;
    const sdp = await this.prepareOffer(stream);
    this.sendOffer(publisher, sdp);
  }

  /** Start sending the local camera and microphone (either may be missing), encrypted. */
  async publish(stream?: MediaStream): Promise<void> {
    this.published = true;
    const publisher = this.publisher;
    const sdp = await this.prepareOffer(stream);
    this.sendOffer(publisher, sdp);
    if (publisher !== this.publisher) return;
    // Senders prepared while waiting are empty: the tracks go in now. (The senders were kept when
    // made: asking the connection for them is a blocking call, just when the call starts.)
    const senders = this.senders;
    const tracks = [stream?.getAudioTracks()[0], stream?.getVideoTracks()[0]];
    await Promise.all(
      tracks.map((track, slot) => {
        const sender = senders[slot];
        return track && sender && sender.track !== track ? sender.replaceTrack(track) : undefined;
      }),
    );
  }

  /** Each publishing connection's offer goes out once. */
  private sendOffer(publisher: RTCPeerConnection, sdp: string): void {
    if (publisher !== this.publisher || this.offerSent === publisher || this.closed) return;
    this.offerSent = publisher;
    this.signaling.send({ type: 'publish', sdp });
  }

  /**
   * Start or stop sending a shared screen. The SFU takes a new publish offer as
   * a new publisher, so this builds a new publishing connection (same E2EE
   * session: one frame counter, so no nonce is ever reused) and replaces the old.
   */
  async setScreen(track: MediaStreamTrack | undefined): Promise<void> {
    this.screen = track;
    if (track) track.contentHint = 'detail';
    if (!this.published || this.closed) return;
    // One publish at a time: an answer must reach the connection that made the offer.
    const previous = this.publisher;
    await settled(previous);
    if (this.publisher !== previous || this.closed) return;
    previous.close();
    this.publisher = this.newPublisher();
    this.offer = undefined;
    await this.publish(this.stream);
  }

  /** Build and gather the publishing offer (once per publishing connection). */
  private prepareOffer(stream?: MediaStream): Promise<string> {
    this.stream = stream;
    this.offer ??= (async () => {
      const senders: RTCRtpSender[] = [];
      const transceivers: RTCRtpTransceiver[] = [];
      this.senders = senders;
      // Always the same shape — microphone, camera, then the screen when shared —
      // with empty senders for missing devices: receivers tell the screen from the
      // camera by this order (see videoOrder), and a device added later needs no renegotiation.
      const slots: [MediaStreamTrack | null, 'audio' | 'video'][] = [
        [stream?.getAudioTracks()[0] ?? null, 'audio'],
        [stream?.getVideoTracks()[0] ?? null, 'video'],
      ];
      if (this.screen) slots.push([this.screen, 'video']);
      for (const [i, [track, kind]] of slots.entries()) {
        // The camera (slot 1) in simulcast layers; a camera added later is assumed 640x480.
        const sendEncodings = i === 1 ? simulcastEncodings(track?.getSettings().width ?? 640) : undefined;
        // Empty until we are let in (see connectPublisher).
        const transceiver = this.publisher.addTransceiver((this.published && track) || kind, {
          direction: 'sendonly',
          streams: stream ? [stream] : [],
          ...(sendEncodings ? { sendEncodings } : {}),
        });
        this.e2ee.attachSender(transceiver.sender, kind);
        senders.push(transceiver.sender);
        transceivers.push(transceiver);
      }
      await this.publisher.setLocalDescription(await this.publisher.createOffer());
      this.sendersByMid = new Map(transceivers.map((t) => [t.mid ?? '', t.sender]));
      await gathered(this.publisher);
      return this.publisher.localDescription!.sdp;
    })();
    return this.offer;
  }

  /** Swap the camera or microphone without renegotiating (also into an empty slot). */
  async replaceTrack(track: MediaStreamTrack): Promise<void> {
    const slot = track.kind === 'audio' ? 0 : 1;
    await this.publisher.getTransceivers()[slot]?.sender.replaceTrack(track);
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
    return this.subscriber.getStats();
  }
  sendStats(): Promise<RTCStatsReport> {
    return this.publisher.getStats();
  }

  forget(participantId: string): void {
    if (this.streams.delete(participantId)) this.onStreams?.(this.streams);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.disconnectTimer);
    for (const timer of this.connectingTimers.values()) clearTimeout(timer);
    this.connectingTimers.clear();
    for (const off of this.offs) off();
    this.e2ee.close();
    this.publisher.close();
    this.subscriber.close();
  }

  private async answer(sdp: string): Promise<void> {
    const subscriber = this.subscriber;
    try {
      await subscriber.setRemoteDescription({ type: 'offer', sdp });
      await subscriber.setLocalDescription(await subscriber.createAnswer());
      await gathered(subscriber);
      // The SFU forwards once it has our answer: media is taken only with a verified call key.
      if (carriesMedia(sdp)) await this.receiving;
      if (subscriber !== this.subscriber || this.closed) return;
      this.signaling.send({ type: 'subscribeAnswer', sdp: subscriber.localDescription!.sdp });
      this.expectConnected(subscriber);
      if (carriesMedia(sdp)) this.answeredMedia();
    } finally {
      if (this.streamsChanged && subscriber === this.subscriber) {
        this.streamsChanged = false;
        this.onStreams?.(this.streams);
      }
    }
  }

  private fail(): void {
    this.onFailure?.();
  }
}
