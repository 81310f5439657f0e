/**
 * The SFU in worker processes (MEDIA_WORKERS): N children of the server, each running the SFU
 * of the calls pinned to it (media-worker.ts), the mediasoup model. Each new call goes to the
 * worker with the fewest participants; it stays there until it ends. A worker that dies (crash,
 * kill -9) ends its calls with `media_failed` and is started again; the other workers' calls
 * go on. Children of a server that exits are killed; children of a server killed outright
 * exit on their own (their IPC channel closes).
 */
import { LinkcallError } from '../../protocol/errors.js';
import type { MediaNetworkOptions } from '../config.js';
import { CounterTotals } from './counter-totals.js';
import { MediaWorker } from './media-worker.js';
import type { Sfu, SfuCounters, SfuLog } from './sfu.js';
import type { WorkerRoomMedia } from './worker-room-media.js';

export interface MediaWorkersOptions {
  count: number;
  /** Where the SFU's sockets bind and what they announce (config.ts, mediaNetwork). */
  network?: MediaNetworkOptions;
  log?: SfuLog;
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

/** A worker that dies before it is ready, or this soon after, is started again after a growing pause. */
const CRASH_LOOP_MS = 2000;
const MAX_RESTART_DELAY_MS = 30_000;
/** How long /metrics waits for the workers' fresh totals (a slow one keeps its last). */
const REFRESH_TIMEOUT_MS = 1000;

export class MediaWorkers implements Sfu {
  private readonly slots: MediaWorker[] = [];
  /** Per slot: workers in a row that died before they were ready or within CRASH_LOOP_MS. */
  private readonly quickDeaths: number[] = [];
  /** Media counters of every worker, live or gone (a dead one: up to its last report). */
  private readonly totals = new CounterTotals<MediaWorker>((worker) => worker.stats?.counters ?? {});
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
      if (worker.participants < best.participants || (worker.participants === best.participants && worker.calls < best.calls)) best = worker;
    }
    return best.openRoom(this.options.network);
  }

  workers(): MediaWorkerInfo[] {
    return this.slots.map((w) => ({
      index: w.index,
      pid: w.pid,
      ready: w.readyAt !== undefined && w.alive,
      calls: w.calls,
      participants: w.participants,
      cpuSeconds: w.stats?.cpuSeconds ?? 0,
      rssBytes: w.stats?.rssBytes ?? 0,
    }));
  }

  /** Fresh totals from every worker (each reports every few seconds anyway); a slow one keeps its last. */
  async counters(): Promise<SfuCounters> {
    await Promise.all(
      this.slots.map((w) => (w.alive && w.pid !== undefined ? w.request((id) => ({ type: 'stats', id }), REFRESH_TIMEOUT_MS).catch(() => {}) : undefined)),
    );
    return {
      media: this.totals.sum(),
      workers: {
        each: this.workers().map(({ index, calls, cpuSeconds, rssBytes }) => ({ index, calls, cpuSeconds, rssBytes })),
        restarts: this.restarts,
      },
    };
  }

  /** Stop every worker (their calls should be closed already) and start no new ones. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      await Promise.all(this.slots.map((w) => w.stop()));
      process.off('exit', this.killAll);
    })());
  }

  private start(index: number, delayMs: number): MediaWorker {
    const worker = new MediaWorker(index, this.options.log, (w, code, signal) => this.exited(w, code, signal), delayMs);
    this.totals.add(worker);
    return worker;
  }

  private exited(worker: MediaWorker, code: number | null, signal: NodeJS.Signals | null): void {
    this.totals.retire(worker);
    if (this.closing || this.slots[worker.index] !== worker) return;
    const quick = worker.readyAt === undefined || Date.now() - worker.readyAt < CRASH_LOOP_MS;
    this.quickDeaths[worker.index] = quick ? this.quickDeaths[worker.index]! + 1 : 0;
    const delayMs = quick ? Math.min(MAX_RESTART_DELAY_MS, 500 * 2 ** (this.quickDeaths[worker.index]! - 1)) : 0;
    this.options.log?.error({ worker: worker.index, workerPid: worker.pid, code, signal, restartInMs: delayMs }, 'media worker died: its calls ended; starting another');
    this.restarts++;
    this.slots[worker.index] = this.start(worker.index, delayMs);
  }
}
