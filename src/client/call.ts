/**
 * One person's part in an end-to-end encrypted call — connecting, waiting in
 * the lobby, in the call, or over with a reason — kept from signaling
 * messages, plus the call's keys: sealed name cards, MACed key grants,
 * ratchet on join and rotation on leave. No DOM: the UI renders it, bots use it.
 */
import {
  createGrant,
  GrantRefused,
  newCallIdentity,
  newCallKey,
  newSenderIndex,
  openGrant,
  openKnock,
  ratchet,
  safetyCode,
  sealKnock,
  type CallIdentity,
  type CallKey,
  type KeyGrant,
  type LinkKeys,
} from '../e2ee/keys.js';
import { errorMessage, LinkcallError, type ErrorCode } from '../protocol/errors.js';
import { parseDisplayName, type ParticipantInfo, type Role, type ViewportTile } from '../protocol/messages.js';
import type { SignalingClient } from './signaling.js';

export type CallPhase =
  | { kind: 'connecting' }
  | { kind: 'waiting'; hostName: string; hostPresent: boolean }
  | { kind: 'in-call' }
  | { kind: 'ended'; code: ErrorCode | 'disconnected'; message: string };

/** Someone in the call, with their name card opened (undefined name: the card did not open). */
export interface Member {
  id: string;
  name: string | undefined;
  publicKey: string | undefined;
  role: Role;
  since: number;
  audio: boolean;
  video: boolean;
  /** Their connection dropped; the server keeps their place while they come back. */
  reconnecting: boolean;
}

export interface Knock {
  id: string;
  name: string | undefined;
  publicKey: string | undefined;
  since: number;
}

export interface CallKeyState {
  key: CallKey;
  senderIndex: number;
}

/** How long a participant admitted without a grant waits for the key leader's grant. */
const GRANT_WAIT_MS = 10_000;
/** Backoff between attempts to come back after a lost connection. */
const RESUME_FIRST_DELAY_MS = 250;
const RESUME_MAX_DELAY_MS = 4000;

export class CallSession {
  phase: CallPhase = { kind: 'connecting' };
  you?: Member;
  linkName = '';
  canApprove = false;
  readonly participants = new Map<string, Member>();
  readonly knocks = new Map<string, Knock>();
  /** The last refusal of something we asked for, as a sentence. */
  lastError?: string;
  /** The current call key (undefined until we hold one), and the code everyone compares. */
  keys?: CallKeyState;
  safetyCode?: string;
  /** Called whenever our call key changes: the media layer re-keys its frame cryptor. */
  onKeys?: (state: CallKeyState) => void;
  /** True while the connection to the server is lost and we are trying to come back. */
  reconnecting = false;
  /** A notice from the server for everyone (it is restarting), as a sentence. */
  serverNotice?: string;
  /** Called when we are back after a lost connection (the media layer checks its connections). */
  onResumed?: () => void;

  private identity?: CallIdentity;
  private card?: string;
  private joinSent = false;
  private readonly listeners = new Set<() => void>();
  /** Key operations run one at a time, in the order their messages arrived. */
  private keyQueue: Promise<unknown> = Promise.resolve();
  private approvals: Promise<unknown> = Promise.resolve();
  private grantTimer?: ReturnType<typeof setTimeout>;
  /** The last viewport sent (normalized JSON), so repeats are not sent again. */
  private lastViewport?: string;
  private resumeToken?: string;
  private resumeGraceMs = 0;
  private lostAt = 0;
  private resumeAttempts = 0;
  private resumeTimer?: ReturnType<typeof setTimeout>;

  constructor(
    readonly signaling: SignalingClient,
    private readonly linkId: string,
    private readonly linkKeys: LinkKeys,
  ) {
    const s = signaling;
    s.on('waiting', (m) => this.set({ kind: 'waiting', hostName: m.hostName, hostPresent: m.hostPresent }));
    s.on('joined', (m) =>
      this.serially(async () => {
        // The key first: media waits for it (CallConnection answers media offers only with a key).
        if (m.grant && !(await this.acceptGrant(m.grant, m.you.id))) return;
        this.you = await this.member(m.you);
        this.linkName = m.linkName;
        this.canApprove = m.canApprove;
        this.participants.clear();
        for (const p of m.participants) this.participants.set(p.id, await this.member(p));
        this.knocks.clear();
        for (const k of m.knocks) this.knocks.set(k.id, await this.knock(k));
        if (!m.grant) await this.keysWithoutGrant();
        this.set({ kind: 'in-call' });
      }),
    );
    s.on('participantJoined', (m) =>
      this.serially(async () => {
        const member = await this.member(m.participant);
        this.participants.set(member.id, member);
        // Ratchet on join: the newcomer cannot read what was said before it came.
        if (this.keys) await this.setKeys({ key: await ratchet(this.keys.key), senderIndex: this.keys.senderIndex });
        // A returning host, or anyone returning after a lost server node, entered without a grant.
        if ((member.role === 'host' || m.returning) && this.isKeyLeader(member.id)) await this.sendGrant(member);
        this.emit();
      }),
    );
    s.on('participantUpdated', (m) =>
      this.serially(async () => {
        this.participants.set(m.participant.id, await this.member(m.participant));
        this.emit();
      }),
    );
    s.on('participantLeft', (m) =>
      this.serially(async () => {
        this.participants.delete(m.participantId);
        // Rotation on leave: the leaver's key must not open what is said next.
        if (this.keys && this.isKeyLeader()) {
          const next: CallKey = newCallKey(this.keys.key.epoch + 1);
          for (const member of this.participants.values()) await this.sendGrant(member, next);
          await this.setKeys({ key: next, senderIndex: newSenderIndex() });
        }
        this.emit();
      }),
    );
    s.on('grant', (m) => this.serially(() => this.acceptGrant(m.grant)));
    s.on('knock', (m) =>
      this.serially(async () => {
        this.knocks.set(m.knock.id, await this.knock(m.knock));
        this.emit();
      }),
    );
    s.on('knockGone', (m) => this.serially(async () => void (this.knocks.delete(m.participantId) && this.emit())));
    s.on('canApprove', (m) => {
      this.canApprove = m.canApprove;
      if (!m.canApprove) this.knocks.clear();
      this.emit();
    });
    s.on('error', (m) => {
      this.lastError = m.message;
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
   * Make this call's key pair and seal the name card ahead of time, so that
   * pressing Join only sends a message. Refuses bad names before anything is sent.
   */
  async prepare(name: string): Promise<void> {
    const clean = parseDisplayName(name);
    if (!clean) throw new LinkcallError('invalid_name');
    this.identity = await newCallIdentity();
    this.card = await sealKnock(this.linkKeys, this.linkId, { name: clean, publicKey: this.identity.publicKey });
  }

  /** Sends the knock once (later calls do nothing). */
  sendJoin(): void {
    if (!this.card) throw new Error('prepare() the name card before joining');
    if (this.joinSent) return;
    this.joinSent = true;
    this.signaling.send({ type: 'join', linkId: this.linkId, card: this.card });
  }

  /**
   * Let a guest in with a key grant for the ratcheted call key. Approvals go
   * one at a time: the next grant must carry the key after this guest's ratchet,
   * which happens when its participantJoined arrives.
   */
  approve(participantId: string): Promise<void> {
    const run = this.approvals.then(async () => {
      const epochBefore = await this.serially(async () => {
        const knock = this.knocks.get(participantId);
        if (!knock?.publicKey || !this.keys || !this.identity) return undefined;
        const grant = await createGrant(this.linkKeys, this.identity, {
          linkId: this.linkId,
          recipientId: knock.id,
          recipientPublicKey: knock.publicKey,
          callKey: await ratchet(this.keys.key),
          senderIndex: newSenderIndex(),
        });
        this.signaling.send({ type: 'approve', participantId, grant });
        return this.keys.key.epoch;
      });
      if (epochBefore === undefined) return;
      await this.until(() => (this.keys?.key.epoch ?? 0) > epochBefore || !this.knocks.has(participantId), 5000);
    });
    this.approvals = run.catch(() => undefined);
    return run;
  }

  decline(participantId: string): void {
    this.signaling.send({ type: 'decline', participantId });
  }
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
    this.signaling.send({ type: 'mediaState', audio, video });
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

  /** The key leader: the host present longest, else whoever was admitted first. */
  isKeyLeader(excludeId?: string): boolean {
    if (!this.you) return false;
    const everyone = [this.you, ...this.participants.values()].filter((p) => p.id !== excludeId);
    const hosts = everyone.filter((p) => p.role === 'host');
    const pool = hosts.length > 0 ? hosts : everyone;
    pool.sort((a, b) => a.since - b.since || (a.id < b.id ? -1 : 1));
    return pool[0]?.id === this.you.id;
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
      });
      return;
    }
    clearTimeout(this.resumeTimer);
    // A failed attempt ends in another disconnect, which schedules the next one.
    this.resumeTimer = setTimeout(() => void this.signaling.resume(token).catch(() => undefined), delay);
  }

  /**
   * Joined without a grant. Back after our server node was lost (the call moved), we keep our key:
   * alone, we move to a fresh epoch past it (the others will get it from us); otherwise the key
   * leader grants us the current one. First in, we make the call's key. A returning host entered
   * on its own: the key leader sends it the key.
   */
  private async keysWithoutGrant(): Promise<void> {
    if (this.keys) {
      if (this.participants.size === 0) await this.setKeys({ key: newCallKey(this.keys.key.epoch + 1), senderIndex: newSenderIndex() });
    } else if (this.participants.size === 0) {
      await this.setKeys({ key: newCallKey(0), senderIndex: newSenderIndex() });
    } else {
      this.grantTimer = setTimeout(() => this.fail('grant_refused'), GRANT_WAIT_MS);
    }
  }

  private async sendGrant(member: Member, key?: CallKey): Promise<void> {
    if (!this.identity || !this.keys || !member.publicKey) return;
    const grant = await createGrant(this.linkKeys, this.identity, {
      linkId: this.linkId,
      recipientId: member.id,
      recipientPublicKey: member.publicKey,
      callKey: key ?? this.keys.key,
      senderIndex: newSenderIndex(),
    });
    this.signaling.send({ type: 'grant', participantId: member.id, grant });
  }

  /** Take a key only from a grant that verifies with the link's auth key; otherwise leave, saying why. */
  private async acceptGrant(grant: KeyGrant, myId = this.you?.id): Promise<boolean> {
    if (!this.identity || !myId) return false;
    try {
      const opened = await openGrant(this.linkKeys, this.identity, { linkId: this.linkId, myId }, grant);
      // A grant may arrive after we ratcheted past it; only move forward.
      if (!this.keys || opened.callKey.epoch >= this.keys.key.epoch) {
        await this.setKeys({ key: opened.callKey, senderIndex: opened.senderIndex });
      }
      clearTimeout(this.grantTimer);
      return true;
    } catch (err) {
      if (!(err instanceof GrantRefused)) throw err;
      this.fail('grant_refused');
      return false;
    }
  }

  private async setKeys(state: CallKeyState): Promise<void> {
    this.keys = state;
    this.onKeys?.(state);
    this.safetyCode = await safetyCode(state.key);
    this.emit();
  }

  private fail(code: ErrorCode): void {
    this.set({ kind: 'ended', code, message: errorMessage(code) });
    this.signaling.send({ type: 'leave' });
    this.signaling.close();
  }

  private async member(p: ParticipantInfo): Promise<Member> {
    const card = await openKnock(this.linkKeys, this.linkId, p.card);
    const name = card ? parseDisplayName(card.name) : undefined;
    return {
      id: p.id,
      name,
      publicKey: name ? card?.publicKey : undefined,
      role: p.role,
      since: p.since,
      audio: p.audio,
      video: p.video,
      reconnecting: p.reconnecting,
    };
  }

  private async knock(k: { id: string; card: string; since: number }): Promise<Knock> {
    const card = await openKnock(this.linkKeys, this.linkId, k.card);
    const name = card ? parseDisplayName(card.name) : undefined;
    return { id: k.id, name, publicKey: name ? card?.publicKey : undefined, since: k.since };
  }

  private serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.keyQueue.then(task);
    this.keyQueue = run.catch(() => undefined);
    return run;
  }

  private until(predicate: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      if (predicate()) return resolve();
      const timer = setTimeout(done, timeoutMs);
      const off = this.onChange(() => predicate() && done());
      function done() {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  }

  private set(phase: CallPhase): void {
    if (this.phase.kind === 'ended') return;
    this.phase = phase;
    if (phase.kind === 'ended') {
      clearTimeout(this.grantTimer);
      clearTimeout(this.resumeTimer);
      this.reconnecting = false;
      this.knocks.clear();
    }
    this.emit();
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }
}
