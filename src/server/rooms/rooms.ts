/** The directory of live rooms on this node, one per link with people in it. */
import type { ErrorCode } from '../../protocol/errors.js';
import { Room, type RoomLimits, type RoomMedia } from './room.js';

export interface RoomSpec {
  linkId: string;
  linkName: string;
  ownerAccountId: string;
  hostName: string;
}

export class Rooms {
  private readonly rooms = new Map<string, Room>();

  constructor(
    private readonly createMedia: () => RoomMedia,
    private readonly limits?: Partial<RoomLimits>,
  ) {}

  /** The room of a link, started when the first person (host or guest) arrives. */
  open(spec: RoomSpec): Room {
    const existing = this.rooms.get(spec.linkId);
    if (existing && !existing.isClosed) return existing;
    const room: Room = new Room({
      ...spec,
      media: this.createMedia(),
      limits: this.limits,
      onEmpty: () => {
        if (this.rooms.get(spec.linkId) === room) this.rooms.delete(spec.linkId);
      },
    });
    this.rooms.set(spec.linkId, room);
    return room;
  }

  get(linkId: string): Room | undefined {
    return this.rooms.get(linkId);
  }

  closeRoom(linkId: string, code: ErrorCode): void {
    this.rooms.get(linkId)?.close(code);
  }

  closeAll(code: ErrorCode): void {
    for (const room of [...this.rooms.values()]) room.close(code);
  }

  get size(): number {
    return this.rooms.size;
  }
}
