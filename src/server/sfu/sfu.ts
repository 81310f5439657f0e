/**
 * The seam between rooms and media: a Room gets its call's media (RoomMedia) from the Sfu and
 * knows nothing else of it. Two implementations: the calls' SFU in this process
 * (in-process-sfu.ts), or in worker processes (media-workers.ts, MEDIA_WORKERS).
 */
import type { MediaCounters } from '../media/counters.js';
import type { RoomMedia } from '../rooms/room.js';

export type { MediaCounters } from '../media/counters.js';

/** Pino-style: Fastify's logger fits. Only codes, counts and process ids are ever logged. */
export interface SfuLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What /metrics sees of one media worker process. */
export interface MediaWorkerLoad {
  index: number;
  calls: number;
  cpuSeconds: number;
  rssBytes: number;
}

/** What the SFU has counted since the server started, ended calls included. */
export interface SfuCounters {
  media: MediaCounters;
  /** Only when calls run in worker processes: each worker's load, and how many were started again after dying. */
  workers?: { each: MediaWorkerLoad[]; restarts: number };
}

export interface Sfu {
  /** The media of a new call (refused with `server_shutdown` once the Sfu is closing). */
  createRoomMedia(): RoomMedia;
  /** Fresh totals (worker processes are asked, with a bounded wait). */
  counters(): Promise<SfuCounters>;
  /** Stop: the calls should be closed already. */
  close(): Promise<void>;
}
