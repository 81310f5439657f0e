/**
 * A headless participant for group, load and soak tests: joins by link like a guest (knock
 * with a name, wait for approval, join the MLS group from the Welcome — CallSession does all of it), then
 * publishes pre-encoded VP8 + Opus, encrypted per frame, and counts the frames it receives
 * that authenticate. With the link owner's session cookie it enters as the host instead, and
 * can let everyone in.
 */
import WebSocket from 'ws';
import { CallSession, type Member } from '../client/call.js';
import { MediaConnections } from '../client/media-connections.js';
import { SignalingClient, type SocketLike } from '../client/signaling.js';
import { linkId } from '../protocol/ids.js';
import { deriveLinkKeys, parseLinkFragment, type LinkKeys } from '../e2ee/keys.js';
import type { SigningKey } from '../e2ee/mls.js';
import { type Fixtures, type LayerName, loadFixtures } from './fixtures.js';
import { FrameOpener } from './frame-opener.js';
import { FrameSealer } from './frame-sealer.js';
import { MediaReceiver, type StreamStats } from './receiver.js';
import { MediaSender, type SenderStats } from './sender.js';

export interface ParsedLink {
  /** http(s)://host[:port] */
  origin: string;
  linkId: string;
  secret: Uint8Array;
  hostKeyHash: string;
}

/** `https://host/join/<linkId>#k=<secret>&h=<hostKeyHash>` → its parts; throws TypeError on anything else. */
export function parseJoinLink(link: string): ParsedLink {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw new TypeError('not a call link (expected http(s)://host/join/<id>#k=<secret>&h=<hash>)');
  }
  const id = /^\/join\/([^/]+)$/.exec(url.pathname)?.[1];
  const fragment = parseLinkFragment(url.hash);
  if (!id || !linkId.safeParse(id).success || !fragment) throw new TypeError('not a call link (expected http(s)://host/join/<id>#k=<secret>&h=<hash>)');
  return { origin: url.origin, linkId: id, secret: fragment.secret, hostKeyHash: fragment.hostKeyHash };
}

export interface BotOptions {
  /** The call link with its secret, or its parts. */
  link: string | ParsedLink;
  name: string;
  /** The link owner's session cookie ("lc_session=…"): the bot enters as host. */
  cookie?: string;
  /** The host's signing key (the one the link's `h=` pins): with it, the bot is the host in the encrypted call. */
  hostKey?: SigningKey;
  /** Approve every knock whose name card opens (as host, or as an approver). */
  admitAll?: boolean;
  /** Simulcast layers to send, lowest first. Default ['h'] (640×360). */
  layers?: LayerName[];
  audio?: 'tone' | 'silence' | 'off';
  /** RFC 6464 audio level in -dBov sent with every audio packet (default 30 for a tone). */
  audioLevel?: number;
  /** Address ICE binds to (default: all). */
  bindAddress?: string;
  fixtures?: Fixtures;
  /** Link keys already derived (many bots of one link share them). */
  linkKeys?: LinkKeys;
  /**
   * How large the bot "shows" everyone else's video, in device pixels, told to the SFU like a
   * page's tiles (it forwards the smallest layer that fills it). Default 320×180, a grid tile
   * of a group call; 'full': a 4K tile, so the SFU forwards the best layer bandwidth allows.
   */
  tile?: { width: number; height: number } | 'full';
  /**
   * Whose video the bot shows (default: everyone's). The others are told to the SFU as hidden
   * (0×0), so it forwards the bot none of their video, as for a page's off-screen tile.
   */
  watch?: (participant: Member) => boolean;
}

export interface BotStats {
  /** This bot's participant id once admitted. */
  id: string | undefined;
  phase: CallSession['phase']['kind'];
  /** Why the call ended for this bot (an error code), once it has. */
  endedWith?: string;
  epoch: number | undefined;
  sent: SenderStats;
  received: StreamStats[];
  /** Offers from the SFU this bot could not answer. */
  negotiationFailures: number;
  /** States of the publish and receive connections. */
  connections: { publish: string; receive: string };
}

const DEFAULT_TILE = { width: 320, height: 180 };
const FULL_TILE = { width: 3840, height: 2160 };
const HIDDEN = { width: 0, height: 0 };

export class Bot {
  readonly signaling: SignalingClient;
  readonly call: CallSession;
  private readonly cryptor = new FrameSealer();
  private readonly opener = new FrameOpener();
  private readonly sender: MediaSender;
  private readonly receiver: MediaReceiver;
  /** The rules a page's media connections follow (publish once, answers in order, media only with a verified key). */
  private readonly media: MediaConnections<MediaSender, MediaReceiver>;
  /** Offers from the SFU this bot could not answer, answers it could not take (counted, never logged). */
  private failures = 0;
  private mediaStateSent = false;
  private closed = false;
  private readonly approving = new Set<string>();

  private constructor(
    private readonly opts: BotOptions,
    link: ParsedLink,
    linkKeys: LinkKeys,
  ) {
    const wsUrl = `${link.origin.replace(/^http/, 'ws')}/ws`;
    this.signaling = new SignalingClient(wsUrl, (u) => {
      // A closed bot never reconnects (CallSession would try to resume a lost connection).
      if (this.closed) throw new Error('bot closed');
      const socket = new WebSocket(u, { headers: opts.cookie ? { cookie: opts.cookie } : {} });
      socket.on('error', () => {}); // a close event follows; unhandled, `ws` would throw
      return socket as unknown as SocketLike;
    });
    this.call = new CallSession(this.signaling, { linkId: link.linkId, keys: linkKeys, hostKeyHash: link.hostKeyHash, hostKey: opts.hostKey });
    const rtcConfig = { iceServers: [], ...(opts.bindAddress ? { bindAddress: opts.bindAddress } : {}) };
    this.sender = new MediaSender({
      fixtures: opts.fixtures ?? loadFixtures(),
      cryptor: this.cryptor,
      layers: opts.layers,
      audio: opts.audio,
      audioLevel: opts.audioLevel,
      rtcConfig,
    });
    this.receiver = new MediaReceiver(this.opener, rtcConfig);
    // One connection each way for the bot's life: a bot never rebuilds them (its sending state lives with them).
    this.media = new MediaConnections(this.signaling, { publisher: () => this.sender, receiver: () => this.receiver }, { rebuild: false });
    this.media.onFailure = () => void this.failures++;
    this.call.onKeys = (state) => {
      void this.opener.addKey(state.key);
      void this.cryptor.setSendKey(state.key, state.senderIndex).catch(() => {});
      this.media.allowMedia();
    };
    this.call.onChange(() => this.sync());
  }

  /** Connects and knocks (or, with the owner's cookie, enters). Resolves once the knock is sent. */
  static async join(opts: BotOptions): Promise<Bot> {
    const link = typeof opts.link === 'string' ? parseJoinLink(opts.link) : opts.link;
    const linkKeys = opts.linkKeys ?? (await deriveLinkKeys(link.secret));
    const bot = new Bot(opts, link, linkKeys);
    // The publish offer is gathered while the knock waits, as the browser does.
    bot.sender.offer().catch(() => {});
    try {
      await bot.signaling.connect();
      await bot.call.join(opts.name);
    } catch (err) {
      bot.close();
      throw err;
    }
    return bot;
  }

  get id(): string | undefined {
    return this.call.you?.id;
  }

  /** Resolves once admitted with a call key; rejects if the call ends for this bot first. */
  inCall(timeoutMs = 30_000): Promise<void> {
    return this.until(() => {
      const phase = this.call.phase;
      if (phase.kind === 'ended') throw new Error(`bot's call ended: ${phase.code}`);
      return phase.kind === 'in-call' && this.call.keys !== undefined;
    }, timeoutMs);
  }

  stats(): BotStats {
    return {
      id: this.id,
      phase: this.call.phase.kind,
      ...(this.call.phase.kind === 'ended' ? { endedWith: this.call.phase.code } : {}),
      epoch: this.call.keys?.key.epoch,
      sent: { ...this.sender.stats, layers: [...this.sender.stats.layers] },
      received: this.receiver.stats(),
      negotiationFailures: this.failures,
      connections: { publish: this.sender.state, receive: this.receiver.started ? this.receiver.state : 'none' },
    };
  }

  /** Leave the call (the server confirms with `closed`), then close the media. */
  async leave(timeoutMs = 5000): Promise<void> {
    if (this.closed) return;
    if (this.signaling.open && this.call.phase.kind !== 'ended') {
      this.call.leave();
      await this.until(() => this.call.phase.kind === 'ended', timeoutMs).catch(() => {});
    }
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.media.close();
    this.signaling.close();
  }

  private sync(): void {
    const call = this.call;
    if (call.phase.kind === 'ended') {
      this.close();
      return;
    }
    if (call.phase.kind !== 'in-call') return;
    const tile = this.opts.tile ?? DEFAULT_TILE;
    const size = tile === 'full' ? FULL_TILE : tile;
    const watch = this.opts.watch ?? (() => true);
    call.setViewport([...call.participants.values()].map((p) => ({ participantId: p.id, ...(watch(p) ? size : HIDDEN) })));
    if (!this.mediaStateSent) {
      this.mediaStateSent = true;
      void this.publishNow().then(() => !this.closed && call.setMediaState(this.opts.audio !== 'off', true));
    }
    if (this.opts.admitAll && call.canApprove) {
      for (const knock of call.knocks.values()) {
        // Only knocks whose name card opened can be approved (CallSession refuses the rest).
        if (knock.name === undefined || knock.stale || this.approving.has(knock.id)) continue;
        this.approving.add(knock.id);
        void call.approve(knock.id).catch(() => this.approving.delete(knock.id));
      }
    }
  }

  /**
   * Publish at once (done on admission anyway). While waiting to be let in, the SFU takes the
   * offer but forwards nothing of it; tests use this to check that a waiting sender reaches no one.
   */
  publishNow(): Promise<void> {
    return this.media.publish().then(
      () => {},
      () => void this.failures++,
    );
  }

  private until(predicate: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        try {
          if (!predicate()) return false;
          resolve();
        } catch (err) {
          reject(err);
        }
        return true;
      };
      if (check()) return;
      const timer = setTimeout(() => {
        off();
        reject(new Error(`bot: not done within ${timeoutMs} ms (phase ${this.call.phase.kind})`));
      }, timeoutMs);
      const off = this.call.onChange(() => {
        if (!check()) return;
        clearTimeout(timer);
        off();
      });
    });
  }
}
