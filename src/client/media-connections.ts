/**
 * A participant's two media connections to the SFU and the rules for negotiating them: one
 * connection publishes our media (we offer, the SFU answers), one receives everyone else's (the
 * SFU offers, we answer). No DOM: the browser drives RTCPeerConnections through it
 * (ui/call/media.ts), the bots node-datachannel peers (bot/); each implements the two small
 * connection interfaces below, and the rules live here once.
 *
 * The rules: each publishing connection's offer goes out once, and only the connection that made
 * it gets the answer; the SFU's offers are answered one at a time, in order, and only by the
 * connection that is current when the answer is ready; between our `restartMedia` and the server's
 * `mediaRestarted` its offers are for the old transports and are ignored; an offer that carries
 * media is answered only once a verified call key is in (before it, the SFU would forward frames
 * we could not check); a connection that fails, stays disconnected or never connects is rebuilt,
 * a few times at most.
 */
import type { SignalingClient } from './signaling.js';

/** The part of the signaling client the rules use (tests pass a stand-in). */
export type MediaSignaling = Pick<SignalingClient, 'on' | 'send' | 'open'>;

export type ConnectionState = 'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed';

/** What the rules need of the publishing connection. */
export interface PublishConnection {
  readonly state: ConnectionState;
  /** Our offer, candidates included; made once per connection, however often it is asked for. */
  offer(): Promise<string>;
  /** The SFU's answer to that offer. */
  setAnswer(sdp: string): Promise<void>;
  /** Resolves once no offer of ours waits for its answer (or after a few seconds). */
  settled(): Promise<void>;
  /** The SFU says only simulcast layers `from` to `layers` − 1 of the sender on m-line `mid` are watched. */
  /** `thinSmall`: send the smallest layer at a lower bitrate and size (docs/MEDIA.md, "Thin small layers"). */
  sendLayers(mid: string, layers: number, from: number, thinSmall: boolean): void;
  close(): void;
}

/** What the rules need of the receiving connection. */
export interface ReceiveConnection {
  readonly state: ConnectionState;
  /** Takes the SFU's offer and makes our answer, candidates included (the rules decide when it goes out). */
  answer(offer: string): Promise<string>;
  /** An offer was dealt with (answered or not) while this connection was the current one. */
  offerHandled?(): void;
  close(): void;
}

/** Makes each new pair of connections; a connection calls `changed` whenever its state changes. */
export interface ConnectionFactory<P extends PublishConnection, R extends ReceiveConnection> {
  publisher(changed: () => void): P;
  receiver(changed: () => void): R;
}

export interface MediaConnectionsOptions {
  /**
   * Whether connections that fail are rebuilt (default true). Bots say false: a test reads a
   * bot's failed connection as a failure, and a bot's sending state lives with its connection.
   */
  rebuild?: boolean;
}

/** A media connection 'disconnected' this long (ICE lost its path, e.g. a network change) is rebuilt. */
const DISCONNECTED_GRACE_MS = 3000;
/**
 * A media connection still 'connecting' this long is rebuilt, as a last resort: one whose ICE or
 * DTLS never completes would otherwise leave the call without pictures for good.
 */
const CONNECTING_TIMEOUT_MS = 10_000;
/**
 * Once let in, the SFU's answer to our publishing offer comes within this long, or the media
 * connections are rebuilt: an offer the server refused or lost would otherwise leave our video
 * off for the whole call (a publish the server took before its join was refused, lab).
 */
const ANSWER_TIMEOUT_MS = 10_000;
/** Rebuilding the media connections is given up after this many tries in a row without success. */
const MAX_RESTARTS = 5;

/** Whether an SFU offer carries anything to receive (the lobby's first offer carries nothing). */
export function carriesMedia(sdp: string): boolean {
  return /^a=(?:sendonly|sendrecv)\r?$/m.test(sdp);
}

export class MediaConnections<P extends PublishConnection, R extends ReceiveConnection> {
  private currentPublisher!: P;
  private currentReceiver!: R;
  private allowReceiving!: () => void;
  /** Resolves with the first verified call key (see allowMedia). */
  private readonly receiving = new Promise<void>((resolve) => (this.allowReceiving = resolve));
  private answeredMedia!: () => void;
  /** Resolves once our first answer that takes media has gone out (see mediaAnswered). */
  private readonly firstMediaAnswer = new Promise<void>((resolve) => (this.answeredMedia = resolve));
  private readonly offs: (() => void)[] = [];
  private answerQueue = Promise.resolve();
  /** Let in: our media goes out (before, a browser's publishing connection is connected with empty senders). */
  private isPublished = false;
  /** The publishing connection whose offer went out. */
  private offerSent?: P;
  /** Between our restartMedia and the server's mediaRestarted, offers are for the old transports. */
  private awaitingRestart = false;
  private restarts = 0;
  private closed = false;
  private disconnectTimer?: ReturnType<typeof setTimeout>;
  private readonly connectingTimers = new Map<P | R, ReturnType<typeof setTimeout>>();
  private answerTimer?: ReturnType<typeof setTimeout>;
  /** Publishing connections the SFU's answer reached. */
  private readonly answered = new WeakSet<P>();
  private readonly rebuild: boolean;
  /** The media connections failed for good, or a negotiation step failed. */
  onFailure?: () => void;
  /** The old connections were closed for a restart; new ones follow at once. */
  onRestart?: () => void;

  constructor(
    private readonly signaling: MediaSignaling,
    private readonly factory: ConnectionFactory<P, R>,
    opts: MediaConnectionsOptions = {},
  ) {
    this.rebuild = opts.rebuild ?? true;
    this.createConnections();
    this.offs.push(
      signaling.on('publishAnswer', (m) => {
        const publisher = this.currentPublisher;
        this.answered.add(publisher);
        publisher.setAnswer(m.sdp).then(
          () => this.expectConnected(publisher),
          () => this.fail(),
        );
      }),
      signaling.on('subscribeOffer', (m) => this.awaitingRestart || this.receiveOffer(m.sdp)),
      signaling.on('mediaRestarted', () => (this.awaitingRestart = false)),
      signaling.on('sendLayers', (m) => this.currentPublisher.sendLayers(m.mid, m.layers, m.from ?? 0, m.thinSmall ?? false)),
    );
  }

  get publisher(): P {
    return this.currentPublisher;
  }

  get receiver(): R {
    return this.currentReceiver;
  }

  /** Whether we were let in and publish our media (see publish). */
  get published(): boolean {
    return this.isPublished;
  }

  /** A verified call key is in (from a Welcome that verified, or our own group): offers with media may be answered. */
  allowMedia(): void {
    this.allowReceiving();
  }

  /** Answer an SFU offer for what we receive (also offers that arrived before these connections existed). */
  receiveOffer(sdp: string): void {
    // Offers are answered one at a time, in order.
    this.answerQueue = this.answerQueue.then(() => this.answer(sdp)).catch(() => this.fail());
  }

  /**
   * Resolves once the SFU has our answer for the others' media (it starts forwarding then), or
   * after `timeoutMs` (nobody else sends anything yet).
   */
  mediaAnswered(timeoutMs: number): Promise<void> {
    return Promise.race([this.firstMediaAnswer, new Promise<void>((resolve) => setTimeout(resolve, timeoutMs))]);
  }

  /** While waiting to be let in: the publishing connection's offer goes out (it carries nothing yet). */
  async connectPublisher(): Promise<void> {
    const publisher = this.currentPublisher;
    this.sendOffer(publisher, await publisher.offer());
  }

  /**
   * Let in: our media goes out. Resolves with the publishing connection the offer went out on,
   * or undefined if it was replaced meanwhile.
   */
  async publish(): Promise<P | undefined> {
    this.isPublished = true;
    const publisher = this.currentPublisher;
    this.sendOffer(publisher, await publisher.offer());
    this.expectAnswer(publisher);
    return publisher === this.currentPublisher ? publisher : undefined;
  }

  /**
   * A new publishing connection in place of the current one (the SFU takes a new publish offer as
   * a new publisher), once the current one has its answer: an answer must reach the connection
   * that made the offer. Resolves true if the new one was made and published.
   */
  async replacePublisher(): Promise<boolean> {
    if (!this.isPublished || this.closed) return false;
    const previous = this.currentPublisher;
    await previous.settled();
    if (this.currentPublisher !== previous || this.closed) return false;
    previous.close();
    this.currentPublisher = this.newPublisher();
    await this.publish();
    return true;
  }

  /** After a lost signaling connection: media that did not survive it is rebuilt. */
  checkConnections(): void {
    const healthy = (state: ConnectionState) => state === 'connected' || state === 'connecting' || state === 'new';
    if (!healthy(this.currentPublisher.state) || !healthy(this.currentReceiver.state)) void this.restart();
  }

  /**
   * New connections to new SFU transports (the server's side cannot restart ICE):
   * the others keep seeing our tile and get our media again within a second or so.
   */
  async restart(): Promise<void> {
    if (!this.rebuild || this.closed || this.awaitingRestart) return;
    if (++this.restarts > MAX_RESTARTS) return this.fail();
    this.currentPublisher.close();
    this.currentReceiver.close();
    this.onRestart?.();
    this.answerQueue = Promise.resolve();
    this.createConnections();
    this.awaitingRestart = true;
    this.signaling.send({ type: 'restartMedia' });
    if (this.isPublished) await this.publish().catch(() => this.fail());
    else await this.connectPublisher().catch(() => this.fail());
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.disconnectTimer);
    clearTimeout(this.answerTimer);
    for (const timer of this.connectingTimers.values()) clearTimeout(timer);
    this.connectingTimers.clear();
    for (const off of this.offs) off();
    this.currentPublisher.close();
    this.currentReceiver.close();
  }

  private createConnections(): void {
    this.currentPublisher = this.newPublisher();
    const receiver: R = this.factory.receiver(() => this.changed(receiver));
    this.currentReceiver = receiver;
  }

  private newPublisher(): P {
    const publisher: P = this.factory.publisher(() => this.changed(publisher));
    return publisher;
  }

  /** Each publishing connection's offer goes out once. */
  private sendOffer(publisher: P, sdp: string): void {
    if (publisher !== this.currentPublisher || this.offerSent === publisher || this.closed) return;
    this.offerSent = publisher;
    this.signaling.send({ type: 'publish', sdp });
  }

  private async answer(offer: string): Promise<void> {
    const receiver = this.currentReceiver;
    try {
      const sdp = await receiver.answer(offer);
      // The SFU forwards once it has our answer: media is taken only with a verified call key.
      if (carriesMedia(offer)) await this.receiving;
      if (receiver !== this.currentReceiver || this.closed) return;
      this.signaling.send({ type: 'subscribeAnswer', sdp });
      this.expectConnected(receiver);
      if (carriesMedia(offer)) this.answeredMedia();
    } finally {
      if (receiver === this.currentReceiver) receiver.offerHandled?.();
    }
  }

  private changed(connection: P | R): void {
    const state = connection.state;
    if (state === 'connected' || state === 'closed') {
      clearTimeout(this.connectingTimers.get(connection));
      this.connectingTimers.delete(connection);
    }
    if (connection !== this.currentPublisher && connection !== this.currentReceiver) return;
    clearTimeout(this.disconnectTimer);
    if (state === 'connected' && this.currentPublisher.state === this.currentReceiver.state) this.restarts = 0;
    // Without signaling the server cannot hear our restart: wait until we are back (checkConnections).
    if (!this.signaling.open) return;
    if (state === 'failed') void this.restart();
    if (state === 'disconnected') this.disconnectTimer = setTimeout(() => void this.restart(), DISCONNECTED_GRACE_MS);
  }

  /** Our offer went out (now or while we waited): unless its answer comes in time, the connections are rebuilt. */
  private expectAnswer(publisher: P): void {
    if (!this.rebuild || this.answered.has(publisher) || this.closed) return;
    clearTimeout(this.answerTimer);
    this.answerTimer = setTimeout(() => {
      if (publisher === this.currentPublisher && !this.answered.has(publisher) && this.signaling.open && !this.closed) void this.restart();
    }, ANSWER_TIMEOUT_MS);
  }

  /** Both sides have each other's description now: unless `connection` connects in time, it is rebuilt. */
  private expectConnected(connection: P | R): void {
    if (!this.rebuild || this.connectingTimers.has(connection) || connection.state === 'connected') return;
    this.connectingTimers.set(
      connection,
      setTimeout(() => {
        this.connectingTimers.delete(connection);
        const current = connection === this.currentPublisher || connection === this.currentReceiver;
        const stuck = connection.state === 'new' || connection.state === 'connecting';
        if (current && stuck && this.signaling.open && !this.closed) void this.restart();
      }, CONNECTING_TIMEOUT_MS),
    );
  }

  private fail(): void {
    this.onFailure?.();
  }
}
