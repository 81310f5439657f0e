/**
 * One person's part in an end-to-end encrypted call — connecting, waiting in
 * the lobby, in the call, or over with a reason — kept from signaling
 * messages, plus who is in the encrypted call: an MLS group (src/e2ee/mls.ts)
 * that this client checks for itself. The server's participant list only maps
 * media to members; a participant the group does not hold is not shown and
 * gets no key. No DOM: the UI renders it, bots use it.
 */
import { checkGroupId, newGroupId, openCard, openLobbyNote, fromBase64url, sealLobbyNote, toBase64url, type CallKey, type LinkKeys, sealCard } from '../e2ee/keys.js';
import type { CallGroup, CommitRules, KnockCard, MemberKeys, PendingCommit, SigningKey } from '../e2ee/mls.js';
import { errorMessage, LinkcallError, type ErrorCode } from '../protocol/errors.js';
import { chatText, parseDisplayName, type ParticipantInfo, type Role, type ViewportTile } from '../protocol/messages.js';
import type { SignalingClient } from './signaling.js';

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** The MLS code is loaded when the person presses Continue, not with the join page. */
const mls = () => import('../e2ee/mls.js');

export type CallPhase =
  | { kind: 'connecting' }
  | { kind: 'waiting'; hostPresent: boolean }
  | { kind: 'in-call' }
  /**
   * `restoreFailed`: disconnected, and the attempts to come back ran out of time. `unanswered`:
   * the server never answered the knock (JOIN_ANSWER_MS).
   */
  | { kind: 'ended'; code: ErrorCode | 'disconnected'; message: string; restoreFailed?: boolean; unanswered?: boolean };

/** Someone in the encrypted call: a participant the server lists whose key the MLS group holds. */
export interface Member {
  id: string;
  /** From the member's MLS credential (checked by the group), never from the server. */
  name: string | undefined;
  /** The member's leaf in the MLS group: its SFrame sender index. */
  leaf: number;
  /** Holds the link owner's pinned key. */
  isHost: boolean;
  /** The server's role: who it lets remove and end (it checks those itself). */
  role: Role;
  since: number;
  audio: boolean;
  video: boolean;
  /** Their connection dropped; the server keeps their place while they come back. */
  reconnecting: boolean;
}

export interface Knock {
  id: string;
  /** undefined: the card did not open (not made with this link, or not a valid KeyPackage). */
  name: string | undefined;
  since: number;
  /** The knock was made long ago or seen before: a replay, never shown as a fresh name and never approvable. */
  stale: boolean;
}

/** A chat message, end-to-end encrypted (an MLS application message): the server never sees its text. */
export interface ChatMessage {
  /** Counts up in this page. */
  id: number;
  /** The sender's name from its MLS credential (authenticated by the group), never from the server. */
  name: string | undefined;
  mine: boolean;
  text: string;
  /** When it arrived here (ms since epoch). */
  at: number;
}

/** The reactions one can send: a small fixed set, so nothing else can be shown over a tile. */
export const REACTIONS = ['👍', '👏', '😂', '❤️', '🎉', '😮'] as const;
export type Reaction = (typeof REACTIONS)[number];

/** Longest note to a waiting guest, in characters. */
export const MAX_LOBBY_NOTE = 200;

/** Most chat messages kept on screen; older ones scroll away for good. */
const MAX_CHAT_KEPT = 500;

export interface CallKeyState {
  key: CallKey;
  senderIndex: number;
}

/** The link as its fragment gives it: what every member checks against. */
export interface LinkTrust {
  linkId: string;
  keys: LinkKeys;
  hostKeyHash: string;
  /** The host's own signing key (only in the browser that made the link). */
  hostKey?: SigningKey;
  /** While the host is away, members added this long ago may approve (default 30 s; every member must agree, so only tests change it). */
  approverDelayMs?: number;
}

/** How long an admitted participant waits for its Welcome before giving up. */
const WELCOME_WAIT_MS = 15_000;
/**
 * How long a knock waits for the server's first answer (waiting in the lobby, or in): the server
 * answers at once, so silence this long is a server that stopped, and the page says so instead of
 * showing "Connecting…" for ever.
 */
const JOIN_ANSWER_MS = 30_000;
/** A prepared KeyPackage older than this is made again at Join (its time must look fresh to the approver). */
const CARD_REFRESH_MS = 60_000;
/** Backoff between attempts to come back after a lost connection. */
const RESUME_FIRST_DELAY_MS = 250;
const RESUME_MAX_DELAY_MS = 4000;

interface Seen {
  info: ParticipantInfo;
  /** Signature key hash of the participant's KeyPackage; undefined while (or if) the card does not open. */
  keyHash?: string;
  card?: KnockCard;
}

/** Something we want to commit; re-made on the current epoch until it goes through or no longer applies. */
type Intent = { kind: 'approve'; participantId: string } | { kind: 'tidy' };

export class CallSession {
  phase: CallPhase = { kind: 'connecting' };
  you?: Member;
  canApprove = false;
  /** The other members of the encrypted call, by participant id. */
  readonly participants = new Map<string, Member>();
  readonly knocks = new Map<string, Knock>();
  /** The last refusal of something we asked for, as a sentence. */
  lastError?: string;
  /** The registry code of lastError: pages show their own sentence for it, in the person's language. */
  lastErrorCode?: ErrorCode;
  /** A change to the call that this client refused (someone not allowed tried to let someone in), as a sentence. */
  securityNotice?: string;
  /** The current frame key (undefined until we are in the group), the code everyone compares, and how many it covers. */
  keys?: CallKeyState;
  /** Who was in the group when we last re-keyed (their signature keys' hashes). */
  private keyedMembers?: Set<string>;
  safetyCode?: string;
  memberCount = 0;
  /** Called whenever our frame key changes: the media layer re-keys its frame cryptor. */
  onKeys?: (state: CallKeyState) => void;
  /** True while the connection to the server is lost and we are trying to come back. */
  reconnecting = false;
  /** A notice from the server for everyone (it is restarting), as a sentence. */
  serverNotice?: string;
  /** Called when we are back after a lost connection (the media layer checks its connections). */
  onResumed?: () => void;
  /** Commits refused by this client (counts only; tests and bots read it). */
  refusedCommits = 0;
  /** The latest note for us while we wait (sealed by whoever may let us in), as text. */
  lobbyNote?: string;
  /** Who muted our microphone (a name from the group), until we unmute; the media layer turns the microphone off. */
  mutedBy?: string;
  /** Called when someone muted us: the page turns its microphone off. */
  onMutedByOther?: () => void;
  /** Who asked us to unmute (a name), until we do or dismiss it. */
  unmuteRequest?: string;
  /** Whether the call is locked (no new knocks reach the lobby). */
  locked = false;
  /** The chat since we joined (forward secrecy: nothing from before). */
  readonly chat: ChatMessage[] = [];
  /** Raised hands by participant id (ours included), with when each went up: the host's list is in that order. */
  readonly hands = new Map<string, number>();
  /** The latest reaction of each participant, with when it came (the UI shows it for a few seconds). */
  readonly reactions = new Map<string, { reaction: Reaction; at: number }>();
  private chatIds = 0;
  private readonly chatBudget = { tokens: 10, at: Date.now() };
  /** Signature key hashes of the members the host made co-hosts (from the host's leaf only). */
  private readonly coHostKeys = new Set<string>();

  private me?: MemberKeys;
  private card?: string;
  private group?: CallGroup;
  private myId?: string;
  private joinSent = false;
  private joinTimer?: ReturnType<typeof setTimeout>;
  private readonly seen = new Map<string, Seen>();
  private readonly knockCards = new Map<string, KnockCard>();
  /** Knock nonces seen in this page: a knock repeated is a replay. */
  private readonly nonces = new Map<string, string>();
  /** Nonces of KeyPackages we added: never added twice. */
  private readonly usedNonces = new Set<string>();
  private readonly listeners = new Set<() => void>();
  /** Group operations run one at a time, in the order their messages arrived. */
  private queue: Promise<unknown> = Promise.resolve();
  private nextSlot = 0;
  private pending?: { commit: PendingCommit; intent: Intent; settle: () => void; seq?: number };
  private readonly intents: { intent: Intent; settle: () => void }[] = [];
  /**
   * Add commits made ahead for waiting knocks (on the current epoch), so Approve only sends: a
   * commit is made when the knock arrives or the epoch changes, not when the button is pressed.
   */
  private readonly ready = new Map<string, Promise<PendingCommit | undefined>>();
  private welcomeTimer?: ReturnType<typeof setTimeout>;
  /** The last viewport sent (normalized JSON), so repeats are not sent again. */
  private lastViewport?: string;
  private resumeToken?: string;
  private resumeGraceMs = 0;
  private lostAt = 0;
  private resumeAttempts = 0;
  private resumeTimer?: ReturnType<typeof setTimeout>;
  private readonly rules: CommitRules;

  /** `joinAnswerMs`: JOIN_ANSWER_MS, shorter in tests. */
  constructor(
    readonly signaling: SignalingClient,
    private readonly link: LinkTrust,
    private readonly joinAnswerMs = JOIN_ANSWER_MS,
  ) {
    this.rules = {
      hostKeyHash: link.hostKeyHash,
      isGone: (leaf) => this.isGone(leaf),
      now: () => Date.now(),
      approverDelayMs: link.approverDelayMs,
      isCoHost: (keyHash) => this.coHostKeys.has(keyHash),
      groupIds: { make: () => newGroupId(link.keys, link.linkId), check: (id) => checkGroupId(link.keys, link.linkId, id) },
    };
    const s = signaling;
    s.on('waiting', (m) => this.set({ kind: 'waiting', hostPresent: m.hostPresent }));
    s.on('joined', (m) => {
      // Answered: whatever entering takes now (the group, the Welcome) has its own deadlines.
      clearTimeout(this.joinTimer);
      return this.serially(async () => {
        this.myId = m.you.id;
        this.nextSlot = m.slot;
        this.locked = m.locked;
        this.canApprove = m.canApprove;
        if (m.welcome) {
          const start = performance.now();
          if (!(await this.enter(m.welcome))) return;
          // The frame key first: media waits for it (CallConnection answers media offers only with a key).
          await this.rekey();
          // User Timing (no contents): bench/join reads how long joining the group took.
          performance.measure?.('linkcall:welcome', { start, end: performance.now() });
        }
        this.seen.clear();
        for (const p of [m.you, ...m.participants]) this.seen.set(p.id, await this.open(p));
        this.knocks.clear();
        for (const k of m.knocks) await this.addKnock(k);
        if (!this.group) {
          const others = m.participants.length;
          if (others === 0 && this.isPinnedHost()) {
            // The host, first in: it makes the group.
            this.group = await (await mls()).CallGroup.create(this.me!, this.rules);
          } else {
            // A host who re-entered is added by a member; anyone else admitted without a Welcome
            // was let in by the server alone, and will never get the call's keys.
            this.welcomeTimer = setTimeout(() => this.fail('key_refused'), WELCOME_WAIT_MS);
          }
        }
        await this.refresh();
        this.set({ kind: 'in-call' });
      });
    });
    s.on('welcome', (m) =>
      this.serially(async () => {
        if (this.group) return;
        if (await this.enter(m.welcome)) await this.refresh();
      }),
    );
    s.on('handshake', (m) => this.serially(() => this.handshake(m.slot, m.from, m.commit)));
    s.on('appMessage', (m) => this.serially(() => this.receiveApp(m.data)));
    s.on('lobbyNote', (m) =>
      this.serially(async () => {
        const text = this.me && (await openLobbyNote(this.link.keys, this.link.linkId, this.me.credential.nonce, m.sealed));
        const clean = text === undefined ? undefined : chatText.safeParse(text);
        if (!clean?.success || clean.data.length > MAX_LOBBY_NOTE) return;
        this.lobbyNote = clean.data;
        this.emit();
      }),
    );
    s.on('mutedBy', (m) => {
      this.mutedBy = this.nameOf(m.by);
      this.onMutedByOther?.();
      this.emit();
    });
    s.on('unmuteRequest', (m) => {
      this.unmuteRequest = this.nameOf(m.from);
      this.emit();
    });
    s.on('locked', (m) => {
      this.locked = m.locked;
      this.emit();
    });
    s.on('participantJoined', (m) =>
      this.serially(async () => {
        this.seen.set(m.participant.id, await this.open(m.participant));
        await this.refresh();
      }),
    );
    s.on('participantUpdated', (m) =>
      this.serially(async () => {
        const before = this.seen.get(m.participant.id);
        this.seen.set(m.participant.id, before?.info.card === m.participant.card ? { ...before, info: m.participant } : await this.open(m.participant));
        await this.refresh();
      }),
    );
    s.on('participantLeft', (m) =>
      this.serially(async () => {
        this.seen.delete(m.participantId);
        await this.refresh();
      }),
    );
    s.on('knock', (m) =>
      this.serially(async () => {
        await this.addKnock(m.knock);
        this.emit();
      }),
    );
    s.on('knockGone', (m) =>
      this.serially(async () => {
        this.ready.delete(m.participantId);
        if (this.knocks.delete(m.participantId)) this.emit();
        // Let in, it is the participant the server announces next; else it is gone for good.
        if (!this.seen.has(m.participantId)) setTimeout(() => void this.serially(async () => this.forgetKnock(m.participantId)), 2000);
      }),
    );
    s.on('canApprove', (m) => {
      this.canApprove = m.canApprove;
      if (!m.canApprove) this.knocks.clear();
      this.emit();
    });
    s.on('error', (m) => {
      if (m.code === 'commit_conflict') {
        // Another commit took the slot; it is on its way to us. Try again once it has been handled.
        void this.serially(() => this.retryPending());
        return;
      }
      if (this.pending && m.seq === this.pending.seq) {
        // The server refused our commit for good (the guest is gone, the call is full, we may no longer approve).
        const p = this.pending;
        this.pending = undefined;
        p.settle();
        void this.serially(() => this.drive());
      }
      if (this.phase.kind === 'connecting' && this.joinSent) {
        // The server refused our knock (its final refusals come as 'closed'): say why rather than wait.
        this.fail(m.code);
        return;
      }
      // An offer or answer of ours the SFU could not take: the media layer makes its connections
      // again by itself (MediaConnections) and says so only if that fails for good. Shown here, "Join
      // again from the link" stayed on screen over a call that had healed within a second.
      if (m.code === 'media_failed') return;
      this.lastError = m.message;
      this.lastErrorCode = m.code;
      this.emit();
    });
    s.on('closed', (m) => this.set({ kind: 'ended', code: m.code, message: m.message }));
    // New SFU transports know nothing of our tiles: tell them again.
    s.on('mediaRestarted', () => {
      const last = this.lastViewport;
      this.lastViewport = undefined;
      if (last) this.setViewport(JSON.parse(last) as ViewportTile[]);
    });
    s.on('shutdown', (m) => {
      this.serverNotice = m.message;
      this.emit();
    });
    s.on('resumable', (m) => {
      this.resumeToken = m.token;
      this.resumeGraceMs = m.graceMs;
    });
    s.on('resumed', () => {
      this.reconnecting = false;
      this.resumeAttempts = 0;
      this.onResumed?.();
      this.emit();
    });
    s.onDisconnect((d) => this.connectionLost(d.notified));
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Knock (or, for the link's owner, enter) with a name only link holders can read. */
  async join(name: string): Promise<void> {
    await this.prepare(name);
    this.sendJoin();
  }

  /**
   * Make this call's MLS KeyPackage (name, time, nonce) and seal it ahead of time, so that
   * pressing Join only sends a message. Refuses bad names before anything is sent.
   */
  async prepare(name: string): Promise<void> {
    const clean = parseDisplayName(name);
    if (!clean) throw new LinkcallError('invalid_name');
    const { newMemberKeys, warmUp } = await mls();
    this.me = await newMemberKeys(clean, Date.now(), this.link.hostKey);
    this.card = await sealCard(this.link.keys, this.link.linkId, this.me.bytes);
    // In the background, while the person looks at the preview: the first Welcome then runs warm code.
    setTimeout(() => void warmUp(), 0);
  }

  /** Sends the knock once (later calls do nothing). */
  sendJoin(): void {
    if (!this.card || !this.me) throw new Error('prepare() the name card before joining');
    if (this.joinSent) return;
    this.joinSent = true;
    this.joinTimer = setTimeout(() => {
      if (this.phase.kind !== 'connecting') return;
      this.set({ kind: 'ended', code: 'disconnected', message: 'The server did not answer your request to join.', unanswered: true });
      this.signaling.close();
    }, this.joinAnswerMs);
    if (Date.now() - this.me.credential.time > CARD_REFRESH_MS) {
      // Made long ago (the person looked at the preview for a while): a fresh one, or it looks replayed.
      void this.prepare(this.me.credential.name).then(() => this.signaling.send({ type: 'join', linkId: this.link.linkId, card: this.card! }));
      return;
    }
    this.signaling.send({ type: 'join', linkId: this.link.linkId, card: this.card });
  }

  /**
   * Let a guest in: our Add commit and its Welcome. Resolves once the commit went through (or no
   * longer applies: the guest left, or someone else let it in first).
   */
  approve(participantId: string): Promise<void> {
    return this.want({ kind: 'approve', participantId });
  }

  /**
   * Send a chat message to everyone in the call, end-to-end encrypted. Throws LinkcallError
   * `bad_message` for an empty or over-long text; before we are in the group it is not sent.
   */
  async sendChat(text: string): Promise<void> {
    const clean = chatText.safeParse(text);
    if (!clean.success) throw new LinkcallError('bad_message');
    // The server relays at most 5 a second (bursts of 10): the same budget here, so a message over it
    // is refused with a sentence instead of being lost.
    const now = Date.now();
    const budget = this.chatBudget;
    budget.tokens = Math.min(10, budget.tokens + ((now - budget.at) / 1000) * 5);
    budget.at = now;
    if (budget.tokens < 1) throw new LinkcallError('rate_limited');
    budget.tokens -= 1;
    if (await this.sendApp({ k: 'chat', t: clean.data })) this.addChat({ name: this.you?.name, mine: true, text: clean.data });
  }

  /** An application message to the group; false when we are not in the group (yet). */
  private sendApp(body: Record<string, unknown>): Promise<boolean> {
    return this.serially(async () => {
      const group = this.group;
      if (!group) return false;
      const data = await group.seal(utf8.encode(JSON.stringify(body)));
      this.signaling.send({ type: 'appMessage', data: toBase64url(data) });
      return true;
    });
  }

  private setHand(participantId: string | undefined, up: boolean): void {
    if (!participantId) return;
    if (up && !this.hands.has(participantId)) this.hands.set(participantId, Date.now());
    if (!up) this.hands.delete(participantId);
    this.emit();
  }

  /**
   * Host only: make someone a co-host (or not). The server lets them approve, remove and lock; the
   * MLS message from our leaf tells every member to accept their commits as the host's.
   */
  async setCoHost(participantId: string, coHost: boolean): Promise<void> {
    const member = this.participants.get(participantId);
    const keyHash = member && this.seen.get(participantId)?.keyHash;
    if (!member || !keyHash || !this.you?.isHost) return;
    if (!(await this.sendApp({ k: 'cohost', key: keyHash, on: coHost }))) return;
    if (coHost) this.coHostKeys.add(keyHash);
    else this.coHostKeys.delete(keyHash);
    this.signaling.send({ type: 'coHost', participantId, coHost });
    this.emit();
  }

  /** Whether the host made this participant a co-host (as the group knows it). */
  isCoHost(participantId: string): boolean {
    const keyHash = this.seen.get(participantId)?.keyHash;
    return keyHash !== undefined && this.coHostKeys.has(keyHash);
  }

  /** Raise or lower our hand (everyone sees it on our tile; the host sees raised hands in order). */
  async raiseHand(up: boolean): Promise<void> {
    if (await this.sendApp({ k: 'hand', up })) this.setHand(this.myId, up);
  }

  /** The host lowers someone's hand (every member checks that it came from the host's leaf). */
  async lowerHand(participantId: string): Promise<void> {
    const leaf = this.participants.get(participantId)?.leaf ?? (participantId === this.myId ? this.you?.leaf : undefined);
    if (leaf === undefined || !this.you?.isHost) return;
    if (await this.sendApp({ k: 'lower', leaf })) this.setHand(participantId, false);
  }

  async react(reaction: Reaction): Promise<void> {
    if (!REACTIONS.includes(reaction)) throw new TypeError(`not a reaction: ${String(reaction)}`);
    if (await this.sendApp({ k: 'react', e: reaction }) && this.myId) {
      this.reactions.set(this.myId, { reaction, at: Date.now() });
      this.emit();
    }
  }

  /** A short note to a waiting guest (at most 200 characters), sealed so the server cannot read it. */
  async sendLobbyNote(participantId: string, text: string): Promise<void> {
    const clean = chatText.safeParse(text);
    if (!clean.success || clean.data.length > MAX_LOBBY_NOTE) throw new LinkcallError('bad_message');
    const nonce = this.knockCards.get(participantId)?.credential.nonce;
    if (!nonce) throw new LinkcallError('participant_not_found');
    this.signaling.send({ type: 'lobbyNote', participantId, sealed: await sealLobbyNote(this.link.keys, this.link.linkId, nonce, clean.data) });
  }

  /** Host only (the server checks): lock the call against new knocks, or unlock it. */
  setLocked(locked: boolean): void {
    this.signaling.send({ type: 'lock', locked });
  }

  decline(participantId: string): void {
    this.signaling.send({ type: 'decline', participantId });
  }
  /** The server takes the person out at once (it checks we are the host); the group's Remove commit follows. */
  remove(participantId: string): void {
    this.signaling.send({ type: 'remove', participantId });
  }
  end(): void {
    this.signaling.send({ type: 'end' });
  }
  leave(): void {
    this.signaling.send({ type: 'leave' });
  }
  setMediaState(audio: boolean, video: boolean): void {
    if (audio) this.mutedBy = this.unmuteRequest = undefined;
    this.signaling.send({ type: 'mediaState', audio, video });
  }

  /** Host or co-host (the server checks): mute someone, or everyone else. Nobody can unmute another. */
  mute(participantId: string): void {
    this.signaling.send({ type: 'mute', participantId });
  }
  muteEveryone(): void {
    this.signaling.send({ type: 'mute', everyone: true });
  }
  askToUnmute(participantId: string): void {
    this.signaling.send({ type: 'askUnmute', participantId });
  }
  dismissUnmuteRequest(): void {
    this.unmuteRequest = undefined;
    this.emit();
  }

  /** A participant's name as the group knows it. */
  private nameOf(participantId: string): string {
    return this.participants.get(participantId)?.name ?? 'Someone';
  }

  /**
   * Tell the SFU how big each participant's video is shown now, in device pixels (CSS size ×
   * devicePixelRatio); 0×0 or left out: not shown (off-screen, paused). The SFU then forwards
   * the smallest simulcast layer that fills each tile and nothing unseen. Call it whenever
   * tiles change; repeats of the same viewport are not sent.
   */
  setViewport(tiles: readonly ViewportTile[]): void {
    const normalized = tiles
      .map((t) => ({ participantId: t.participantId, width: Math.max(0, Math.round(t.width)), height: Math.max(0, Math.round(t.height)) }))
      .sort((a, b) => (a.participantId < b.participantId ? -1 : a.participantId > b.participantId ? 1 : 0));
    const key = JSON.stringify(normalized);
    if (key === this.lastViewport) return;
    this.lastViewport = key;
    this.signaling.send({ type: 'viewport', tiles: normalized });
  }

  /** The MLS epoch we are in (undefined before we are in the group). */
  get epoch(): number | undefined {
    return this.group?.epoch;
  }

  // ------------------------------------------------------------------ the group

  private isPinnedHost(): boolean {
    return this.link.hostKey !== undefined;
  }

  private async enter(welcome: string): Promise<boolean> {
    const bytes = fromBase64url(welcome);
    try {
      if (!bytes) throw new TypeError('malformed Welcome');
      this.group = await (await mls()).CallGroup.fromWelcome(bytes, this.me!, this.rules);
    } catch {
      this.fail('key_refused');
      return false;
    }
    clearTimeout(this.welcomeTimer);
    return true;
  }

  private async handshake(slot: number, from: string, commitText: string): Promise<void> {
    this.nextSlot = Math.max(this.nextSlot, slot + 1);
    if (!this.group) return;
    const pending = this.pending;
    if (pending && from === this.myId && toBase64url(pending.commit.commit) === commitText) {
      // Ours came first for its epoch: apply it.
      this.pending = undefined;
      if (this.group.applyOwn(pending.commit)) {
        pending.settle();
        await this.refresh();
      } else {
        this.intents.unshift(pending);
        await this.refresh();
      }
      return;
    }
    const bytes = fromBase64url(commitText);
    const result = bytes ? await this.group.process(bytes) : ({ ok: false, reason: 'malformed' } as const);
    if (!result.ok) {
      // A stale commit (someone lost a race) is normal; anything else was refused on purpose.
      if (result.reason !== 'wrong_epoch') {
        this.refusedCommits++;
        this.securityNotice = 'A change to the call from someone not allowed to make it was refused. Nothing changed.';
      }
      this.emit();
      return;
    }
    await this.refresh();
  }

  /** Another member's application message: shown only if it opens with the group's keys and reads as one of ours. */
  private async receiveApp(dataText: string): Promise<void> {
    const data = fromBase64url(dataText);
    const opened = data && this.group ? await this.group.open(data) : undefined;
    if (!opened) return;
    let body: unknown;
    try {
      body = JSON.parse(utf8Decoder.decode(opened.payload));
    } catch {
      return;
    }
    if (typeof body !== 'object' || body === null) return;
    const b = body as Record<string, unknown>;
    const member = this.group!.members().find((m) => m.leaf === opened.leaf);
    // Who sent it, by the leaf MLS authenticated (never the server's `from`).
    const sender = [...this.participants.values()].find((p) => p.leaf === opened.leaf)?.id;
    if (b.k === 'chat') {
      const text = chatText.safeParse(b.t);
      if (text.success) this.addChat({ name: member?.name === undefined ? undefined : parseDisplayName(member.name), mine: false, text: text.data });
    } else if (b.k === 'hand' && typeof b.up === 'boolean') {
      this.setHand(sender, b.up);
    } else if (b.k === 'lower' && typeof b.leaf === 'number' && member?.isHost) {
      const target = b.leaf === this.you?.leaf ? this.myId : [...this.participants.values()].find((p) => p.leaf === b.leaf)?.id;
      this.setHand(target, false);
    } else if (b.k === 'cohost' && typeof b.key === 'string' && typeof b.on === 'boolean' && member?.isHost) {
      if (b.on) this.coHostKeys.add(b.key);
      else this.coHostKeys.delete(b.key);
      this.emit();
    } else if (b.k === 'react' && REACTIONS.includes(b.e as Reaction) && sender) {
      this.reactions.set(sender, { reaction: b.e as Reaction, at: Date.now() });
      this.emit();
    }
  }

  private addChat(m: Omit<ChatMessage, 'id' | 'at'>): void {
    this.chat.push({ ...m, id: ++this.chatIds, at: Date.now() });
    if (this.chat.length > MAX_CHAT_KEPT) this.chat.splice(0, this.chat.length - MAX_CHAT_KEPT);
    this.emit();
  }

  /** Queue something to commit; it settles when done or no longer needed. */
  private want(intent: Intent): Promise<void> {
    return new Promise((settle) => {
      this.intents.push({ intent, settle });
      void this.serially(() => this.drive());
    });
  }

  /** Make the next wanted commit, if none is in flight. */
  private async drive(): Promise<void> {
    const group = this.group;
    if (!group || this.pending || this.phase.kind === 'ended') return;
    while (this.intents.length > 0) {
      const next = this.intents.shift()!;
      const made = await this.make(next.intent);
      if (!made) {
        next.settle();
        continue;
      }
      this.pending = { commit: made.commit, intent: next.intent, settle: next.settle };
      this.sendPending(made.welcomeTo);
      return;
    }
  }

  private async make(intent: Intent): Promise<{ commit: PendingCommit; welcomeTo?: string } | undefined> {
    const group = this.group!;
    if (intent.kind === 'approve') {
      const card = this.knockCards.get(intent.participantId);
      const knock = this.knocks.get(intent.participantId);
      if (!card || !knock || knock.stale || !group.mayApprove()) return undefined;
      const early = await this.ready.get(intent.participantId);
      this.ready.delete(intent.participantId);
      if (early && early.epoch === group.epoch) return { commit: early, welcomeTo: intent.participantId };
      return { commit: await group.add([card.keyPackage]), welcomeTo: intent.participantId };
    }
    // Tidy: remove members the server reports gone; add a host who re-entered.
    const gone = group.members().filter((m) => !m.isMe && this.isGone(m.leaf)).map((m) => m.leaf);
    if (gone.length > 0 && this.isTidier()) return { commit: await group.remove(gone) };
    // Only a fresh KeyPackage: the server could replay one the host used before (its Welcome would be useless
    // to the server, but the host would look present).
    const { KNOCK_FRESH_MS } = await mls();
    const host = [...this.seen.values()].find(
      (p) =>
        p.keyHash === this.link.hostKeyHash &&
        p.card &&
        group.leafOf(p.keyHash) === undefined &&
        Math.abs(Date.now() - p.card.credential.time) < KNOCK_FRESH_MS &&
        !this.usedNonces.has(p.card.credential.nonce),
    );
    if (host && this.isTidier()) {
      this.usedNonces.add(host.card!.credential.nonce);
      return { commit: await group.add([host.card!.keyPackage]), welcomeTo: host.info.id };
    }
    return undefined;
  }

  private sendPending(welcomeTo?: string): void {
    const p = this.pending!;
    const commit = toBase64url(p.commit.commit);
    const welcome = p.commit.welcome ? toBase64url(p.commit.welcome) : undefined;
    p.seq =
      p.intent.kind === 'approve' && welcome
        ? this.signaling.send({ type: 'approve', participantId: p.intent.participantId, slot: this.nextSlot, commit, welcome })
        : this.signaling.send({ type: 'commit', slot: this.nextSlot, commit, ...(welcome && welcomeTo ? { welcome, welcomeTo } : {}) });
  }

  /** The server gave our slot to another commit: send the same commit again if it still applies, else make it anew. */
  private async retryPending(): Promise<void> {
    const p = this.pending;
    if (!p || !this.group) return;
    this.pending = undefined;
    this.intents.unshift({ intent: p.intent, settle: p.settle });
    await this.drive();
  }

  /**
   * Who tidies the group (removes the gone, re-adds the host): the host if it is in the group,
   * else the present member with the lowest leaf. Everyone agrees, so one commit is made, not many.
   */
  private isTidier(): boolean {
    const group = this.group!;
    const present = group.members().filter((m) => !this.isGone(m.leaf));
    const host = present.find((m) => m.isHost);
    const tidier = host ?? present.sort((a, b) => a.leaf - b.leaf)[0];
    return tidier?.isMe ?? false;
  }

  /** A leaf whose participant the server no longer lists (left, removed, or never let in by a Welcome we saw). */
  private isGone(leaf: number): boolean {
    const group = this.group;
    if (!group) return false;
    const member = group.members().find((m) => m.leaf === leaf);
    if (!member || member.isMe) return false;
    for (const p of this.seen.values()) if (p.keyHash === member.signatureKeyHash) return false;
    // Just let in: its Add commit reaches us before the server's word that it joined.
    for (const card of this.knockCards.values()) if (card.signatureKeyHash === member.signatureKeyHash) return false;
    return true;
  }

  /** After any change: the roster from the group, our frame key, the safety code; then tidy if it is our turn. */
  private async refresh(): Promise<void> {
    const group = this.group;
    this.participants.clear();
    if (group) {
      const members = group.members();
      this.memberCount = members.length;
      const shown = new Set<number>();
      for (const p of this.seen.values()) {
        const member = p.keyHash === undefined ? undefined : members.find((m) => m.signatureKeyHash === p.keyHash);
        // One participant per leaf: a second one claiming the same key (a replayed card) is nobody.
        if (!member || shown.has(member.leaf)) continue;
        shown.add(member.leaf);
        const m: Member = {
          id: p.info.id,
          name: member.name === undefined ? undefined : parseDisplayName(member.name),
          leaf: member.leaf,
          isHost: member.isHost,
          role: p.info.role,
          since: p.info.since,
          audio: p.info.audio,
          video: p.info.video,
          reconnecting: p.info.reconnecting,
        };
        if (p.info.id === this.myId) this.you = m;
        else this.participants.set(m.id, m);
      }
      await this.rekey();
      // Hands and reactions of people who left go with them.
      for (const map of [this.hands, this.reactions]) for (const id of map.keys()) if (id !== this.myId && !this.participants.has(id)) map.delete(id);
      if (!this.intents.some((i) => i.intent.kind === 'tidy')) this.intents.push({ intent: { kind: 'tidy' }, settle: () => undefined });
      await this.drive();
    } else if (this.myId) {
      const p = this.seen.get(this.myId);
      if (p) this.you = { id: p.info.id, name: this.me?.credential.name, leaf: -1, isHost: this.isPinnedHost(), role: p.info.role, since: p.info.since, audio: p.info.audio, video: p.info.video, reconnecting: false };
    }
    this.emit();
  }

  /** Our frame key and safety code follow the group's epoch. */
  private async rekey(): Promise<void> {
    const group = this.group;
    if (!group || this.keys?.key.epoch === group.epoch) return;
    const state = { key: await group.callKey(), senderIndex: group.myLeaf };
    const before = this.keyedMembers;
    this.keyedMembers = new Set(group.members().map((m) => m.signatureKeyHash));
    this.keys = state;
    this.onKeys?.(state);
    // Someone new can read only this epoch's frames: our next frame should be a key frame. Asked
    // now (our frames use the new key from here on), it is on its way while they join the group.
    if (before && [...this.keyedMembers].some((k) => !before.has(k))) this.signaling.send({ type: 'keyFrame' });
    this.safetyCode = await group.safetyCode();
    // Commits made ahead on the old epoch are useless now.
    this.ready.clear();
    for (const id of this.knocks.keys()) this.prepareAdd(id);
  }

  /** Make the Add commit for a waiting knock ahead of the click (when we may approve). */
  private prepareAdd(participantId: string): void {
    const group = this.group;
    const card = this.knockCards.get(participantId);
    if (!group || !card || this.ready.has(participantId) || !group.mayApprove()) return;
    // A moment later: the knock is drawn on the approver's screen first.
    this.ready.set(
      participantId,
      new Promise((resolve) => setTimeout(resolve, 30)).then(() => group.add([card.keyPackage])).catch(() => undefined),
    );
  }

  private async open(info: ParticipantInfo): Promise<Seen> {
    const card = await this.readCard(info.card);
    return { info, keyHash: card?.signatureKeyHash, card };
  }

  private async readCard(sealed: string): Promise<KnockCard | undefined> {
    const bytes = await openCard(this.link.keys, this.link.linkId, sealed);
    return bytes ? (await mls()).readKeyPackage(bytes) : undefined;
  }

  private async forgetKnock(participantId: string): Promise<void> {
    if (!this.knockCards.delete(participantId) || this.knocks.has(participantId)) return;
    await this.refresh();
  }

  private async addKnock(k: { id: string; card: string; since: number }): Promise<void> {
    const card = await this.readCard(k.card);
    const name = card ? parseDisplayName(card.credential.name) : undefined;
    const { KNOCK_FRESH_MS } = await mls();
    let stale = false;
    if (card) {
      const firstSeenBy = this.nonces.get(card.credential.nonce);
      stale = (firstSeenBy !== undefined && firstSeenBy !== k.id) || Date.now() - card.credential.time > KNOCK_FRESH_MS;
      this.nonces.set(card.credential.nonce, k.id);
      if (name && !stale) this.knockCards.set(k.id, card);
    }
    this.knocks.set(k.id, { id: k.id, name, since: k.since, stale });
    this.prepareAdd(k.id);
  }

  // ------------------------------------------------------------------ internals

  /**
   * The signaling connection dropped without the server ending our part: come
   * back as the same participant (with backoff) while the server holds our place.
   */
  private connectionLost(notified: boolean): void {
    if (this.phase.kind === 'ended' || notified) return;
    const token = this.resumeToken;
    if (!token || this.phase.kind === 'connecting') {
      this.set({ kind: 'ended', code: 'disconnected', message: 'The connection to the server was lost.' });
      return;
    }
    if (!this.reconnecting) {
      this.reconnecting = true;
      this.lostAt = Date.now();
      this.signaling.hold();
      this.emit();
    }
    const delay = Math.min(RESUME_FIRST_DELAY_MS * 2 ** this.resumeAttempts++, RESUME_MAX_DELAY_MS);
    if (Date.now() + delay > this.lostAt + this.resumeGraceMs) {
      this.set({
        kind: 'ended',
        code: 'disconnected',
        message: 'The connection to the server was lost and could not be restored.',
        restoreFailed: true,
      });
      return;
    }
    clearTimeout(this.resumeTimer);
    // A failed attempt ends in another disconnect, which schedules the next one.
    this.resumeTimer = setTimeout(() => void this.signaling.resume(token).catch(() => undefined), delay);
  }

  private fail(code: ErrorCode): void {
    this.set({ kind: 'ended', code, message: errorMessage(code) });
    this.signaling.send({ type: 'leave' });
    this.signaling.close();
  }

  private serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private set(phase: CallPhase): void {
    if (this.phase.kind === 'ended') return;
    this.phase = phase;
    if (phase.kind !== 'connecting') clearTimeout(this.joinTimer);
    if (phase.kind === 'ended') {
      clearTimeout(this.welcomeTimer);
      clearTimeout(this.resumeTimer);
      this.reconnecting = false;
      this.knocks.clear();
      for (const i of this.intents.splice(0)) i.settle();
      this.pending?.settle();
      this.pending = undefined;
    }
    this.emit();
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }
}
