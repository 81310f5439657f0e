/** The directory of live rooms on this node, one per link with people in it. */
import { LinkcallError, type ErrorCode } from '../../protocol/errors.js';
import { Room, type ParticipantEvents, type RoomLimits, type RoomMedia } from './room.js';

export interface RoomSpec {
  linkId: string;
  linkName: string;
  ownerAccountId: string;
  hostName: string;
  /**
   * Continue this call instance (a call taken over from a node that is gone); when a call of
   * the link already runs here, it must be this one.
   */
  callId?: string;
}

/**
 * What the rooms of this node report to whoever keeps a directory of calls (the cluster), by
 * event name: a call opened or closed here, and what happened to a participant's place in it
 * (leaving, being removed or declined, and the call ending are all `ended`, with that code).
 */
export interface RoomsEvents extends ParticipantEvents {
  opened: [];
  closed: [];
}

/** Hears one event of every room of this node (which room, then the event's data). */
export type RoomsListener<E extends keyof RoomsEvents> = (room: Room, ...args: RoomsEvents[E]) => void;

/** How long the reason a participant's time ended is kept for a resume that comes too late. */
const DISMISSAL_MEMORY_MS = 120_000;

export class Rooms {
  private readonly rooms = new Map<string, Room>();
  private joinsStopped = false;
  /** Resume token → why that participant's time ended (kept briefly, in insertion order). */
  private readonly dismissals = new Map<string, { code: ErrorCode; at: number }>();
  private readonly listeners: { [E in keyof RoomsEvents]: RoomsListener<E>[] } = { opened: [], closed: [], knocked: [], admitted: [], ended: [] };

  constructor(
    private readonly createMedia: () => RoomMedia,
    private readonly limits?: Partial<RoomLimits>,
    /** Counts for /metrics (see http/metrics.ts). */
    private readonly onEvent?: (event: 'call_started' | 'knock' | 'admitted' | ErrorCode) => void,
  ) {}

  /** The room of a link, started when the first person (host or guest) arrives. */
  open(spec: RoomSpec): Room {
    if (this.joinsStopped) throw new LinkcallError('server_shutdown');
    const existing = this.rooms.get(spec.linkId);
    if (existing && !existing.isClosed) {
      if (spec.callId && spec.callId !== existing.callId) throw new LinkcallError('resume_failed');
      return existing;
    }
    const room: Room = new Room({
      ...spec,
      media: this.createMedia(),
      limits: this.limits,
      onEmpty: () => {
        if (this.rooms.get(spec.linkId) === room) this.rooms.delete(spec.linkId);
        this.emit('closed', room);
      },
      // RoomsEvents extends ParticipantEvents: the same data (TypeScript cannot see it through the generic).
      onParticipant: (event, ...args) => this.emit(event, room, ...(args as RoomsEvents[typeof event])),
      onDismissed: (token, code) => {
        this.remember(token, code);
        this.onEvent?.(code);
      },
      onEvent: this.onEvent,
    });
    this.rooms.set(spec.linkId, room);
    this.onEvent?.('call_started');
    this.emit('opened', room);
    return room;
  }

  /** Hear `event` in every room of this node (a throwing listener does not stop the room, nor the other listeners). */
  on<E extends keyof RoomsEvents>(event: E, listener: RoomsListener<E>): void {
    this.listeners[event].push(listener);
  }

  private emit<E extends keyof RoomsEvents>(event: E, room: Room, ...args: RoomsEvents[E]): void {
    for (const listener of this.listeners[event]) {
      try {
        listener(room, ...args);
      } catch {
        // A directory that cannot be told must not take the call down.
      }
    }
  }

  /** The room holding a resume token's participant; otherwise why it ended (`resume_failed` if unknown). */
  findResumable(resumeToken: string): Room | ErrorCode {
    for (const room of this.rooms.values()) if (!room.isClosed && room.hasResumeToken(resumeToken)) return room;
    const dismissal = this.dismissals.get(resumeToken);
    return dismissal && Date.now() - dismissal.at < DISMISSAL_MEMORY_MS ? dismissal.code : 'resume_failed';
  }

  private remember(resumeToken: string, code: ErrorCode): void {
    const now = Date.now();
    for (const [token, { at }] of this.dismissals) {
      if (now - at < DISMISSAL_MEMORY_MS) break;
      this.dismissals.delete(token);
    }
    this.dismissals.set(resumeToken, { code, at: now });
  }

  get(linkId: string): Room | undefined {
    return this.rooms.get(linkId);
  }

  closeRoom(linkId: string, code: ErrorCode): void {
    this.rooms.get(linkId)?.close(code);
  }

  /** Shutting down: every later join, into a new call or a running one, is refused. */
  stopJoins(): void {
    this.joinsStopped = true;
  }

  get acceptingJoins(): boolean {
    return !this.joinsStopped;
  }

  closeAll(code: ErrorCode): void {
    for (const room of [...this.rooms.values()]) room.close(code);
  }

  /** Every live room on this node (for metrics and load reports). */
  values(): IterableIterator<Room> {
    return this.rooms.values();
  }

  get size(): number {
    return this.rooms.size;
  }
}
