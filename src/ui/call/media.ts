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
      if (hostOnly && e.candidate && !grace) grace = setTimeout(finish, HOST_CANDIDATE_GRACE_MS);
    };
    const timer = setTimeout(finish, GATHER_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', onState);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

/** Every frame is encrypted in a worker before it leaves and decrypted after it arrives; there is no clear mode. */
export class CallConnection {
  private readonly e2ee = new E2eeSession();
  private readonly publisher = new RTCPeerConnection(peerConnectionConfig());
  private readonly subscriber = new RTCPeerConnection(peerConnectionConfig());
  private readonly streams = new Map<string, MediaStream>();
  private readonly offs: (() => void)[] = [];
  private subscribeQueue = Promise.resolve();
  private offer?: Promise<string>;
  onStreams?: (streams: ReadonlyMap<string, MediaStream>) => void;
  onFailure?: (message: string) => void;

  constructor(private readonly signaling: SignalingClient) {
    this.subscriber.addEventListener('track', (event) => {
      this.e2ee.attachReceiver(event.receiver);
      const stream = event.streams[0];
      if (!stream) return;
      this.streams.set(stream.id, stream);
      this.onStreams?.(this.streams);
    });
    this.offs.push(
      signaling.on('publishAnswer', (m) => {
        this.publisher.setRemoteDescription({ type: 'answer', sdp: m.sdp }).catch(() => this.fail());
      }),
      signaling.on('subscribeOffer', (m) => this.receiveOffer(m.sdp)),
    );
    for (const pc of [this.publisher, this.subscriber]) {
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'failed') this.fail();
      });
    }
  }

  /** Answer an SFU offer for what we receive (also offers that arrived before this connection existed). */
  receiveOffer(sdp: string): void {
    // Offers are answered one at a time, in order.
    this.subscribeQueue = this.subscribeQueue.then(() => this.answer(sdp)).catch(() => this.fail());
  }

  /** Re-key: new frames go out under the new key; older epochs stay readable for a few seconds. */
  setKeys(state: CallKeyState): void {
    this.e2ee.addReceiveKey(state.key);
    this.e2ee.setSendKey(state.key, state.senderIndex);
  }

  /** Start sending the local camera and microphone, encrypted. */
  async publish(stream: MediaStream): Promise<void> {
    const sdp = await this.prepareOffer(stream);
    this.signaling.send({ type: 'publish', sdp });
  }

  /**
   * Build and gather the publishing offer ahead of time (while waiting to be
   * let in): a page's first ICE gathering costs a few hundred milliseconds,
   * which would otherwise come after Approve. Nothing is sent until publish().
   */
  prepareOffer(stream: MediaStream): Promise<string> {
    this.offer ??= (async () => {
      for (const track of stream.getTracks()) {
        const transceiver = this.publisher.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
        this.e2ee.attachSender(transceiver.sender);
      }
      await this.publisher.setLocalDescription(await this.publisher.createOffer());
      await gathered(this.publisher);
      return this.publisher.localDescription!.sdp;
    })();
    return this.offer;
  }

  /** Swap the camera or microphone without renegotiating. */
  async replaceTrack(track: MediaStreamTrack): Promise<void> {
    const sender = this.publisher.getSenders().find((s) => s.track?.kind === track.kind);
    await sender?.replaceTrack(track);
  }

  forget(participantId: string): void {
    if (this.streams.delete(participantId)) this.onStreams?.(this.streams);
  }

  close(): void {
    for (const off of this.offs) off();
    this.e2ee.close();
    this.publisher.close();
    this.subscriber.close();
  }

  private async answer(sdp: string): Promise<void> {
    await this.subscriber.setRemoteDescription({ type: 'offer', sdp });
    await this.subscriber.setLocalDescription(await this.subscriber.createAnswer());
    await gathered(this.subscriber);
    this.signaling.send({ type: 'subscribeAnswer', sdp: this.subscriber.localDescription!.sdp });
  }

  private fail(): void {
    this.onFailure?.('The media connection failed. Check your network and join again.');
  }
}
