/**
 * A media worker: a child process of the server (MEDIA_WORKERS) running the SFU of the calls
 * pinned to it, one CallMedia each, driven by typed messages over the IPC channel (see
 * worker-messages.ts). Processes, not worker threads: node-datachannel aborts the process
 * (`v8::HandleScope::CreateHandle()`) when it is loaded in two threads of one process.
 */
import { LinkcallError, type ErrorCode } from '../../protocol/errors.js';
import { shutdownMediaEngine } from '../media/router.js';
import { CallMedia } from './call-media.js';
import { CounterTotals } from './counter-totals.js';
import { toWorker, type FromWorker, type ToWorker, type WorkerStats } from './worker-messages.js';

/** How often totals go to the server unasked (it also asks before each /metrics scrape). */
const STATS_EVERY_MS = 2000;

if (!process.send) throw new Error('the media worker runs as a child process of the server (see MEDIA_WORKERS)');

const calls = new Map<string, CallMedia>();
/** Media counters of every call here, ended ones included. */
const totals = new CounterTotals<CallMedia>((media) => media.router.stats());

function send(message: FromWorker): void {
  // Once the channel is closed the server is gone and this process is on its way out.
  if (process.connected) process.send!(message, undefined, {}, () => {});
}

function stats(id?: number): WorkerStats {
  const counters = { ...totals.sum() };
  const cpu = process.cpuUsage();
  return {
    type: 'stats',
    ...(id !== undefined ? { id } : {}),
    calls: calls.size,
    counters,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    rssBytes: process.memoryUsage.rss(),
  };
}

function codeOf(err: unknown): ErrorCode {
  return err instanceof LinkcallError ? err.code : 'internal';
}

function call(roomId: string): CallMedia {
  const media = calls.get(roomId);
  if (!media) throw new LinkcallError('not_in_call');
  return media;
}

function closeCall(roomId: string): void {
  const media = calls.get(roomId);
  if (!media) return;
  calls.delete(roomId);
  media.close();
  totals.retire(media);
}

function shutdown(): never {
  for (const roomId of [...calls.keys()]) closeCall(roomId);
  shutdownMediaEngine();
  process.exit(0);
}

/** Requests that answer: the outcome goes back under the request's id. */
async function reply(id: number, work: () => Promise<string | void>): Promise<void> {
  try {
    const sdp = await work();
    send({ type: 'reply', id, ...(sdp !== undefined ? { sdp } : {}) });
  } catch (err) {
    send({ type: 'refused', id, code: codeOf(err) });
  }
}

function handle(message: ToWorker): void {
  switch (message.type) {
    case 'open':
      if (!calls.has(message.roomId)) {
        const media = new CallMedia(message.network ?? {});
        calls.set(message.roomId, media);
        totals.add(media);
      }
      return;
    case 'connect':
    case 'admit': {
      const { roomId, participantId, generation } = message;
      const sendOffer = (sdp: string) => send({ type: 'offer', roomId, participantId, generation, sdp });
      if (message.type === 'connect') call(roomId).connect(participantId, sendOffer);
      else call(roomId).admit(participantId, sendOffer);
      return;
    }
    case 'publish':
      void reply(message.id, () => {
        const { roomId, participantId } = message;
        const sendLayers = (mid: string, layers: number, from: number, thinSmall: boolean) => send({ type: 'sendLayers', roomId, participantId, mid, layers, from, thinSmall });
        return call(roomId).publish(participantId, message.sdp, sendLayers);
      });
      return;
    case 'answer':
      void reply(message.id, () => call(message.roomId).answer(message.participantId, message.sdp));
      return;
    case 'silence':
      call(message.roomId).silence(message.participantId, message.on);
      return;
    case 'viewport':
      call(message.roomId).viewport(message.participantId, message.tiles);
      return;
    case 'keyFrame':
      call(message.roomId).keyFrame(message.participantId);
      return;
    case 'drop':
      calls.get(message.roomId)?.drop(message.participantId);
      return;
    case 'close':
      closeCall(message.roomId);
      return;
    case 'stats':
      send(stats(message.id));
      return;
    case 'shutdown':
      shutdown();
  }
}

process.on('message', (raw) => {
  const parsed = toWorker.safeParse(raw);
  if (!parsed.success) {
    send({ type: 'failed', command: 'unknown', code: 'bad_message' });
    return;
  }
  try {
    handle(parsed.data);
  } catch (err) {
    send({ type: 'failed', command: parsed.data.type, code: codeOf(err) });
  }
});
// The server gone (even by kill -9): nothing here is of use to anyone any more. (It may have
// gone while this process was still loading.)
process.on('disconnect', shutdown);
if (!process.connected) shutdown();
// Ctrl-C or a service manager's SIGTERM reaches the whole process group, but the server lets
// calls go on for SHUTDOWN_GRACE_MS: a worker stops when the server says so, or is gone.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => {});
setInterval(() => send(stats()), STATS_EVERY_MS).unref();
send({ type: 'ready' });
