/**
 * The state of one person's part in a call — connecting, waiting in the
 * lobby, in the call, or over with a reason — kept from signaling messages.
 * No DOM: the UI renders it, bots read it.
 */
import type { ErrorCode } from '../protocol/errors.js';
import type { KnockInfo, ParticipantInfo } from '../protocol/messages.js';
import type { SignalingClient } from './signaling.js';

export type CallPhase =
  | { kind: 'connecting' }
  | { kind: 'waiting'; hostName: string; hostPresent: boolean }
  | { kind: 'in-call' }
  | { kind: 'ended'; code: ErrorCode | 'disconnected'; message: string };

export class CallSession {
  phase: CallPhase = { kind: 'connecting' };
  you?: ParticipantInfo;
  linkName = '';
  canApprove = false;
  readonly participants = new Map<string, ParticipantInfo>();
  readonly knocks = new Map<string, KnockInfo>();
  /** The last refusal of something we asked for, as a sentence. */
  lastError?: string;
  private readonly listeners = new Set<() => void>();

  constructor(readonly signaling: SignalingClient) {
    const s = signaling;
    s.on('waiting', (m) => this.set({ kind: 'waiting', hostName: m.hostName, hostPresent: m.hostPresent }));
    s.on('joined', (m) => {
      this.you = m.you;
      this.linkName = m.linkName;
      this.canApprove = m.canApprove;
      this.participants.clear();
      for (const p of m.participants) this.participants.set(p.id, p);
      this.knocks.clear();
      for (const k of m.knocks) this.knocks.set(k.id, k);
      this.set({ kind: 'in-call' });
    });
    s.on('participantJoined', (m) => this.update(() => this.participants.set(m.participant.id, m.participant)));
    s.on('participantUpdated', (m) => this.update(() => this.participants.set(m.participant.id, m.participant)));
    s.on('participantLeft', (m) => this.update(() => this.participants.delete(m.participantId)));
    s.on('knock', (m) => this.update(() => this.knocks.set(m.knock.id, m.knock)));
    s.on('knockGone', (m) => this.update(() => this.knocks.delete(m.participantId)));
    s.on('canApprove', (m) =>
      this.update(() => {
        this.canApprove = m.canApprove;
        if (!m.canApprove) this.knocks.clear();
      }),
    );
    s.on('error', (m) => this.update(() => (this.lastError = m.message)));
    s.on('closed', (m) => this.set({ kind: 'ended', code: m.code, message: m.message }));
    s.onDisconnect(() => {
      if (this.phase.kind !== 'ended') {
        this.set({ kind: 'ended', code: 'disconnected', message: 'The connection to the server was lost.' });
      }
    });
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  join(linkId: string, name: string): void {
    this.signaling.send({ type: 'join', linkId, name });
  }
  approve(participantId: string): void {
    this.signaling.send({ type: 'approve', participantId });
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

  private set(phase: CallPhase): void {
    if (this.phase.kind === 'ended') return;
    this.phase = phase;
    if (phase.kind === 'ended') this.knocks.clear();
    this.emit();
  }

  private update(change: () => unknown): void {
    change();
    this.emit();
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }
}
