/**
 * The media worker processes (MEDIA_WORKERS): N children of the server, each running the SFU of
 * the calls pinned to it (worker.ts), the mediasoup model. Each new call goes to the worker
 * with the fewest participants; it stays there until it ends. A worker that dies (crash,
 * kill -9) ends its calls with `media_failed` and is started again; the other workers' calls
 * go on. Children of a server that exits are killed; children of a server killed outright
 * exit on their own (their IPC channel closes).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LinkcallError } from '../../protocol/errors.js';
import type { MediaNetworkOptions } from '../config.js';
import { fromWorker, type FromWorker, type ToWorker, type WorkerStats } from './messages.js';
import { WorkerRoomMedia } from './worker-room-media.js';

/** Pino-style: Fastify's logger fits. Only codes, counts and process ids are ever logged. */
export interface MediaWorkersLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface MediaWorkersOptions {
  count: number;
  /** Where the SFU's sockets bind and what they announce (config.ts, mediaNetwork). */
  network?: MediaNetworkOptions;
  log?: MediaWorkersLog;
}

/** What /metrics and tests see of one worker. */
export interface MediaWorkerInfo {
  index: number;
  /** Undefined until it is started (or while it waits to be, after crashing). */
  pid: number | undefined;
  /** Whether it has started and takes messages (until then they wait). */
  ready: boolean;
  calls: number;
  participants: number;
  cpuSeconds: number;
  rssBytes: number;
}

const ENTRY = fileURLToPath(new URL('./worker.ts', import.meta.url));
/** The worker is TypeScript, run by tsx whether the server runs under `tsx`, `node --import tsx` or scripts/start.mjs. */
const EXEC_ARGV = ['--import', import.meta.resolve('tsx')];
/** How long a worker gets to close its calls on shutdown before it is killed. */
const STOP_TIMEOUT_MS = 2000;
/** A worker that dies before it is ready, or this soon after, is started again after a growing pause. */
const CRASH_LOOP_MS = 2000;
const MAX_RESTART_DELAY_MS = 30_000;

type Request = Extract<ToWorker, { id: number }>;

/** One worker process, from start to exit; a crashed worker is replaced by a new MediaWorker. */
export class MediaWorker {
  /** When its process said it was ready for calls. */
  readyAt: number | undefined;
  /** The calls pinned here, by room id. */
  readonly rooms = new Map<string, WorkerRoomMedia>();
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
    private readonly log: MediaWorkersLog | undefined,
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

  /** Participants with media in the calls pinned here (how new calls are placed). */
  get participants(): number {
    let n = 0;
    for (const room of this.rooms.values()) n += room.participants;
    return n;
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
  request(build: (id: number) => Request, timeoutMs?: number): Promise<FromWorker> {
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
        this.rooms.get(message.roomId)?.deliverSendLayers(message.participantId, message.mid, message.layers, message.from);
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

export class MediaWorkers {
  private readonly slots: MediaWorker[] = [];
  /** Per slot: workers in a row that died before they were ready or within CRASH_LOOP_MS. */
  private readonly quickDeaths: number[] = [];
  /** Media counters last reported by workers that are gone. */
  private readonly retired: Record<string, number> = {};
  private closing?: Promise<void>;
  private readonly killAll = () => this.slots.forEach((w) => w.kill());
  /** Workers started again after dying. */
  restarts = 0;

  constructor(private readonly options: MediaWorkersOptions) {
    if (!Number.isInteger(options.count) || options.count < 1) throw new TypeError(`media worker count must be a positive integer, got ${options.count}`);
    for (let i = 0; i < options.count; i++) {
      this.quickDeaths.push(0);
      this.slots.push(this.start(i, 0));
    }
    process.on('exit', this.killAll);
  }

  /**
   * The media of a new call, pinned to the worker with the fewest participants (then calls);
   * a worker that keeps crashing gets new calls only if every one does.
   */
  createRoomMedia(): WorkerRoomMedia {
    if (this.closing) throw new LinkcallError('server_shutdown');
    const steady = this.slots.filter(
      (w) => this.quickDeaths[w.index] === 0 || (w.readyAt !== undefined && Date.now() - w.readyAt >= CRASH_LOOP_MS),
    );
    const candidates = steady.length > 0 ? steady : this.slots;
    let best = candidates[0]!;
    for (const worker of candidates) {
      if (worker.participants < best.participants || (worker.participants === best.participants && worker.rooms.size < best.rooms.size)) best = worker;
    }
    return new WorkerRoomMedia(best, this.options.network, this.options.log);
  }

  workers(): MediaWorkerInfo[] {
    return this.slots.map((w) => ({
      index: w.index,
      pid: w.pid,
      ready: w.readyAt !== undefined && w.alive,
      calls: w.rooms.size,
      participants: w.participants,
      cpuSeconds: w.stats?.cpuSeconds ?? 0,
      rssBytes: w.stats?.rssBytes ?? 0,
    }));
  }

  /** Media counters of every worker since the server started (dead workers: up to their last report). */
  counters(): Record<string, number> {
    const sum = { ...this.retired };
    for (const worker of this.slots) {
      for (const [key, value] of Object.entries(worker.stats?.counters ?? {})) sum[key] = (sum[key] ?? 0) + value;
    }
    return sum;
  }

  /** Fresh stats from every worker (each reports every few seconds anyway); a slow one keeps its last. */
  async refresh(timeoutMs = 1000): Promise<void> {
    await Promise.all(this.slots.map((w) => (w.alive && w.pid !== undefined ? w.request((id) => ({ type: 'stats', id }), timeoutMs).catch(() => {}) : undefined)));
  }

  /** Stop every worker (their calls should be closed already) and start no new ones. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      await Promise.all(this.slots.map((w) => w.stop()));
      process.off('exit', this.killAll);
    })());
  }

  private start(index: number, delayMs: number): MediaWorker {
    return new MediaWorker(index, this.options.log, (worker, code, signal) => this.exited(worker, code, signal), delayMs);
  }

  private exited(worker: MediaWorker, code: number | null, signal: NodeJS.Signals | null): void {
    for (const [key, value] of Object.entries(worker.stats?.counters ?? {})) this.retired[key] = (this.retired[key] ?? 0) + value;
    if (this.closing || this.slots[worker.index] !== worker) return;
    const quick = worker.readyAt === undefined || Date.now() - worker.readyAt < CRASH_LOOP_MS;
    this.quickDeaths[worker.index] = quick ? this.quickDeaths[worker.index]! + 1 : 0;
    const delayMs = quick ? Math.min(MAX_RESTART_DELAY_MS, 500 * 2 ** (this.quickDeaths[worker.index]! - 1)) : 0;
    this.options.log?.error({ worker: worker.index, workerPid: worker.pid, code, signal, restartInMs: delayMs }, 'media worker died: its calls ended; starting another');
    this.restarts++;
    this.slots[worker.index] = this.start(worker.index, delayMs);
  }
}
