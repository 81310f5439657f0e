/**
 * One media worker process (MEDIA_WORKERS), from start to exit: it runs the SFU of the calls
 * pinned to it (worker-process.ts), talking over the IPC channel in typed messages
 * (worker-messages.ts). It owns those calls: it opens them (openRoom), routes the worker's
 * offers to them, and ends them if the process dies. A crashed worker is replaced by a new
 * MediaWorker (see media-workers.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { LinkcallError } from '../../protocol/errors.js';
import type { MediaNetworkOptions } from '../config.js';
import type { SfuLog } from './sfu.js';
import { fromWorker, type FromWorker, type ToWorker, type WorkerRequest, type WorkerStats } from './worker-messages.js';
import { WorkerRoomMedia } from './worker-room-media.js';

const ENTRY = fileURLToPath(new URL('./worker-process.ts', import.meta.url));
/** The worker is TypeScript, run by tsx whether the server runs under `tsx`, `node --import tsx` or scripts/start.mjs. */
const EXEC_ARGV = ['--import', import.meta.resolve('tsx')];
/** How long a worker gets to close its calls on shutdown before it is killed. */
const STOP_TIMEOUT_MS = 2000;

export class MediaWorker {
  /** When its process said it was ready for calls. */
  readyAt: number | undefined;
  /** The calls pinned here, by room id (opened by openRoom, forgotten when they close). */
  private readonly rooms = new Map<string, WorkerRoomMedia>();
  /** The latest totals the worker reported. */
  stats: WorkerStats | undefined;
  private child?: ChildProcess;
  private ready = false;
  private dead = false;
  private readonly queue: ToWorker[] = [];
  private readonly pending = new Map<number, { resolve: (m: FromWorker) => void; reject: (err: Error) => void }>();
  private nextId = 1;
  private readonly startTimer?: NodeJS.Timeout;

  constructor(
    readonly index: number,
    private readonly log: SfuLog | undefined,
    private readonly onExit: (worker: MediaWorker, code: number | null, signal: NodeJS.Signals | null) => void,
    delayMs = 0,
  ) {
    if (delayMs > 0) this.startTimer = setTimeout(() => this.spawn(), delayMs);
    else this.spawn();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get alive(): boolean {
    return !this.dead;
  }

  /** Calls pinned here. */
  get calls(): number {
    return this.rooms.size;
  }

  /** Participants with media in the calls pinned here (how new calls are placed). */
  get participants(): number {
    let n = 0;
    for (const room of this.rooms.values()) n += room.participants;
    return n;
  }

  /** A new call pinned to this worker: its media, as the Room sees it. */
  openRoom(network: MediaNetworkOptions | undefined): WorkerRoomMedia {
    const roomId = randomUUID();
    const room = new WorkerRoomMedia(
      roomId,
      {
        pid: () => this.pid,
        send: (message) => this.send(message),
        request: (build) => this.request(build),
        closed: () => this.rooms.delete(roomId),
      },
      this.log,
    );
    this.rooms.set(roomId, room);
    this.send({ type: 'open', roomId, ...(network !== undefined ? { network } : {}) });
    return room;
  }

  /** Commands go out in order; those sent before the worker listens wait for it. A dead worker takes nothing. */
  send(message: ToWorker): void {
    if (this.dead) return;
    if (!this.ready || !this.child) {
      this.queue.push(message);
      return;
    }
    // A failed send means the worker is dying: its exit handles everything in flight.
    this.child.send(message, undefined, {}, () => {});
  }

  /** A request whose reply is correlated by id; rejects with `media_failed` if the worker dies first. */
  request(build: (id: number) => WorkerRequest, timeoutMs?: number): Promise<FromWorker> {
    if (this.dead) return Promise.reject(new LinkcallError('media_failed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
        this.pending.delete(id);
        reject(new LinkcallError('media_failed', 'media worker did not answer'));
      }, timeoutMs);
      const settle = <T>(fn: (value: T) => void) => (value: T) => {
        clearTimeout(timer);
        this.pending.delete(id);
        fn(value);
      };
      this.pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      this.send(build(id));
    });
  }

  /** Ask it to close its calls and exit; kill it if it does not within STOP_TIMEOUT_MS. */
  async stop(): Promise<void> {
    clearTimeout(this.startTimer);
    const child = this.child;
    if (this.dead || !child) {
      this.died(null, null);
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.exitCode !== null || child.signalCode !== null) return;
    this.send({ type: 'shutdown' });
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  /** At process exit: no time for anything but the signal. */
  kill(): void {
    clearTimeout(this.startTimer);
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  private spawn(): void {
    if (this.dead) return;
    const child = fork(ENTRY, [], { execArgv: EXEC_ARGV, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    this.child = child;
    child.on('message', (raw) => this.receive(raw));
    child.once('exit', (code, signal) => this.died(code, signal));
    child.on('error', (err) => {
      // Spawning failed (no exit follows); errors of a running child are its sends failing, as it dies.
      if (child.pid === undefined) {
        this.log?.error({ worker: this.index, err: { name: err.name, code: (err as NodeJS.ErrnoException).code } }, 'media worker could not start');
        this.died(null, null);
      }
    });
  }

  private receive(raw: unknown): void {
    const parsed = fromWorker.safeParse(raw);
    if (!parsed.success) {
      this.log?.warn({ worker: this.index }, 'media worker sent a message that was not understood');
      return;
    }
    const message = parsed.data;
    switch (message.type) {
      case 'ready':
        this.ready = true;
        this.readyAt = Date.now();
        for (const queued of this.queue.splice(0)) this.send(queued);
        return;
      case 'reply':
        this.pending.get(message.id)?.resolve(message);
        return;
      case 'refused':
        this.pending.get(message.id)?.reject(new LinkcallError(message.code));
        return;
      case 'stats':
        this.stats = message;
        if (message.id !== undefined) this.pending.get(message.id)?.resolve(message);
        return;
      case 'offer':
        this.rooms.get(message.roomId)?.deliverOffer(message.participantId, message.generation, message.sdp);
        return;
      case 'sendLayers':
        this.rooms.get(message.roomId)?.deliverSendLayers(message.participantId, message.mid, message.layers, message.from, message.thinSmall);
        return;
      case 'failed':
        this.log?.warn({ worker: this.index, command: message.command, code: message.code }, 'media worker refused a command');
        return;
    }
  }

  private died(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.dead) return;
    this.dead = true;
    this.queue.length = 0;
    for (const { reject } of [...this.pending.values()]) reject(new LinkcallError('media_failed'));
    this.pending.clear();
    const rooms = [...this.rooms.values()];
    this.rooms.clear();
    for (const room of rooms) room.fail('media_failed');
    this.onExit(this, code, signal);
  }
}
