/**
 * The receiving side's call keys, apart from frame encryption (as livekit keeps its key
 * handler apart from its frame cryptor): one SFrame base key per MLS epoch, the per-sender
 * keys derived from it as each sender's first frame arrives, which of them ever opened a
 * frame, and the previous epoch kept readable a few seconds after a newer one arrives.
 *
 * Shared by the browser's frame worker (FrameCryptor, WebCrypto keys) and the bots' fast
 * FrameOpener (node:crypto keys): each brings its own per-sender key type. Nothing here
 * runs per frame except `epoch()`, `sender()` and the replay window, and none of them allocates.
 */
import { type CallKey, sframeBaseKey } from './keys.js';

/** A KID carries the epoch mod 256 (RFC 9605 §5.2 with E = 8). */
export const EPOCH_MASK = 0xff;
/** Counters a receiver remembers per sender key, to refuse replayed frames. */
const REPLAY_WINDOW = 1024;

/** Counters seen recently for one sender key: refuses a frame the SFU sends twice. */
export class ReplayWindow {
  private highest = -1;
  private readonly seen = new Uint8Array(REPLAY_WINDOW);

  fresh(ctr: number): boolean {
    if (ctr > this.highest) return true;
    return this.highest - ctr < REPLAY_WINDOW && this.seen[ctr % REPLAY_WINDOW] === 0;
  }

  /** Records an authenticated counter; false if it was seen meanwhile. */
  mark(ctr: number): boolean {
    if (!this.fresh(ctr)) return false;
    if (ctr > this.highest) {
      const from = Math.max(this.highest + 1, ctr - REPLAY_WINDOW + 1);
      for (let c = from; c < ctr; c++) this.seen[c % REPLAY_WINDOW] = 0;
      this.highest = ctr;
    }
    this.seen[ctr % REPLAY_WINDOW] = 1;
    return true;
  }
}

/** What the ring needs of a sender's receive key, whatever the crypto library behind it. */
export interface SenderKey {
  readonly replay: ReplayWindow;
  /** A frame has authenticated with this key (keys of KIDs that never did are not kept). */
  verified: boolean;
}

/** The receive keys of one epoch; per-sender keys are derived when a sender's first frame arrives. */
export class EpochKeys<S extends SenderKey> {
  expiresAt = Infinity;
  /** Derived keys by sender index: the lookup every frame makes. */
  private readonly senders = new Map<number, S>();
  /** Derivations under way, shared by the frames that wait for them. */
  private readonly deriving = new Map<number, Promise<S>>();

  private constructor(
    readonly key: CallKey,
    readonly baseKey: Uint8Array,
  ) {}

  static async derive<S extends SenderKey>(key: CallKey): Promise<EpochKeys<S>> {
    const own = { secret: new Uint8Array(key.secret), epoch: key.epoch };
    return new EpochKeys<S>(own, await sframeBaseKey(own));
  }

  sender(senderIndex: number): S | undefined {
    return this.senders.get(senderIndex);
  }

  /** A key derived at once (synchronous crypto): kept until it proves forged (see forget). */
  keep(senderIndex: number, key: S): void {
    this.senders.set(senderIndex, key);
  }

  /** A key derived asynchronously, once per sender however many of its frames wait for it. */
  deriveSender(senderIndex: number, derive: (baseKey: Uint8Array) => Promise<S>): Promise<S> {
    const known = this.senders.get(senderIndex);
    if (known) return Promise.resolve(known);
    let keys = this.deriving.get(senderIndex);
    if (!keys) {
      keys = derive(this.baseKey).then(
        (receiveKey) => {
          if (this.deriving.get(senderIndex) === keys) this.senders.set(senderIndex, receiveKey);
          this.deriving.delete(senderIndex);
          return receiveKey;
        },
        (error: unknown) => {
          this.deriving.delete(senderIndex);
          throw error;
        },
      );
      this.deriving.set(senderIndex, keys);
    }
    return keys;
  }

  /** Forget keys derived for a KID that never authenticated a frame (a forged KID must not cost memory). */
  forget(senderIndex: number, keys: S): void {
    if (!keys.verified && this.senders.get(senderIndex) === keys) this.senders.delete(senderIndex);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * Receive keys by epoch mod 256 (a newer epoch with the same low byte replaces the older, §5.2).
 * Only epochs we were given are read: MLS epochs are not a ratchet, and anything derived from an
 * older key could come from someone removed.
 */
export class KeyRing<S extends SenderKey> {
  private readonly graceMs: number;
  private readonly now: () => number;
  private readonly ring = new Map<number, EpochKeys<S>>();
  /** The earliest expiresAt in the ring: frames look at the ring's end dates only once it passes. */
  private nextExpiry = Infinity;

  constructor(opts: { graceMs?: number; now?: () => number } = {}) {
    this.graceMs = opts.graceMs ?? 5000;
    this.now = opts.now ?? (() => Date.now());
  }

  /** Previous epochs stay readable for graceMs after a newer one is added. */
  async add(key: CallKey): Promise<void> {
    this.install(await EpochKeys.derive<S>(key));
  }

  /** The keys of the epoch a KID's low byte names, unless it expired. */
  epoch(epochByte: number): EpochKeys<S> | undefined {
    if (this.nextExpiry !== Infinity && this.now() >= this.nextExpiry) this.expire();
    return this.ring.get(epochByte);
  }

  private newest(): EpochKeys<S> | undefined {
    let newest: EpochKeys<S> | undefined;
    for (const e of this.ring.values()) if (!newest || e.key.epoch > newest.key.epoch) newest = e;
    return newest;
  }

  private expire(): void {
    const now = this.now();
    for (const [byte, e] of this.ring) if (e.expiresAt <= now) this.ring.delete(byte);
    this.nextExpiry = Infinity;
    for (const e of this.ring.values()) this.nextExpiry = Math.min(this.nextExpiry, e.expiresAt);
  }

  private install(keys: EpochKeys<S>): void {
    this.expire();
    const byte = keys.key.epoch & EPOCH_MASK;
    const existing = this.ring.get(byte);
    if (existing) {
      if (existing.key.epoch > keys.key.epoch) return; // 256 epochs stale
      if (existing.key.epoch === keys.key.epoch && sameBytes(existing.key.secret, keys.key.secret)) return;
    }
    const newest = this.newest();
    const graceEnd = this.now() + this.graceMs;
    if (newest && newest !== existing && newest.key.epoch > keys.key.epoch) {
      keys.expiresAt = graceEnd; // a late key for an older epoch only serves the grace period
    } else {
      for (const e of this.ring.values()) if (e !== existing) e.expiresAt = Math.min(e.expiresAt, graceEnd);
    }
    this.ring.set(byte, keys);
    this.nextExpiry = Math.min(this.nextExpiry, graceEnd);
  }
}
