/**
 * `/metrics` in Prometheus text format (0.0.4), written by hand: counts of calls,
 * participants, knocks and forwarded media, and CPU per thread. Only numbers: no link
 * ids, names, addresses or anything else about a person is ever a label.
 */
import type { FastifyInstance } from 'fastify';
import { readdirSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ErrorCode } from '../../protocol/errors.js';
import type { MediaCounters, Sfu } from '../sfu/sfu.js';

/** What happens in rooms, as the metrics count it: a call started, a knock, an admission, or why someone's time ended. */
export type RoomEvent = 'call_started' | 'knock' | 'admitted' | ErrorCode;

/** Live numbers read at scrape time. */
export interface MetricsGauges {
  calls(): number;
  participants(): number;
  waiting(): number;
  connections(): number;
}

type Sample = [labels: Record<string, string>, value: number];

const MEDIA_COUNTERS: [keyof MediaCounters, string, string][] = [
  ['rtpIn', 'linkcall_rtp_received_packets_total', 'RTP packets received from publishers.'],
  ['rtpForwarded', 'linkcall_rtp_forwarded_packets_total', 'RTP packets sent to subscribers.'],
  ['rtpDropped', 'linkcall_rtp_dropped_packets_total', 'RTP packets not forwarded (RTX, padding, unknown payload types).'],
  ['rtpBytesIn', 'linkcall_rtp_received_bytes_total', 'RTP bytes received from publishers (headers included).'],
  ['rtpBytesForwarded', 'linkcall_rtp_forwarded_bytes_total', 'RTP bytes sent to subscribers (headers included).'],
  ['rtpLost', 'linkcall_rtp_lost_packets_total', 'RTP packets publishers sent that never arrived (sequence gaps).'],
  ['keyFrameRequestsSent', 'linkcall_key_frame_requests_total', 'PLIs sent to publishers.'],
  ['nackRetransmits', 'linkcall_nack_retransmits_total', 'Packets re-sent from history on a subscriber\'s NACK.'],
  ['keyFramesForUnrepairedLoss', 'linkcall_key_frames_for_unrepaired_loss_total', 'Key frames asked of publishers because a subscriber NACKed a packet too old to re-send.'],
  ['sendErrors', 'linkcall_media_send_errors_total', 'Packets the engine refused to send.'],
  ['listenerErrors', 'linkcall_media_listener_errors_total', 'Listeners of media events that threw (caught; the other listeners and the call went on).'],
];

const ROOM_COUNTERS: [RoomEvent, string, string][] = [
  ['call_started', 'linkcall_calls_started_total', 'Calls started (a room opened for a link).'],
  ['knock', 'linkcall_knocks_total', 'Guests who asked to join.'],
  ['admitted', 'linkcall_admissions_total', 'Participants let into a call (hosts included).'],
  ['too_slow', 'linkcall_ws_too_slow_total', 'Signaling connections cut because their peer stopped reading (a full send queue or a missed pong).'],
];

export class Metrics {
  private readonly events = new Map<RoomEvent, number>();
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 20 });
  private readonly startedAt = Date.now();

  /** `sfu`: the calls' media, counted in this process or in worker processes. */
  constructor(
    private readonly gauges: MetricsGauges,
    private readonly sfu: Pick<Sfu, 'counters'>,
  ) {
    this.loopDelay.enable();
  }

  count(event: RoomEvent): void {
    this.events.set(event, (this.events.get(event) ?? 0) + 1);
  }

  close(): void {
    this.loopDelay.disable();
  }

  async render(): Promise<string> {
    const sfu = await this.sfu.counters();
    const out: string[] = [];
    const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: Sample[]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) out.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
    };

    metric('linkcall_calls', 'gauge', 'Calls in progress on this node.', [[{}, this.gauges.calls()]]);
    metric('linkcall_participants', 'gauge', 'Participants in calls on this node.', [[{}, this.gauges.participants()]]);
    metric('linkcall_waiting', 'gauge', 'Guests waiting to be let in on this node.', [[{}, this.gauges.waiting()]]);
    metric('linkcall_signaling_connections', 'gauge', 'Open signaling WebSockets.', [[{}, this.gauges.connections()]]);
    for (const [event, name, help] of ROOM_COUNTERS) metric(name, 'counter', help, [[{}, this.events.get(event) ?? 0]]);
    const counted = new Set(ROOM_COUNTERS.map(([e]) => e));
    metric(
      'linkcall_participants_ended_total',
      'counter',
      'Participants (waiting or admitted) whose time in a call ended, by reason (an error code: left, declined, removed, call_ended, ...).',
      [...this.events].filter(([e]) => !counted.has(e)).sort(([a], [b]) => a.localeCompare(b)).map(([reason, n]) => [{ reason }, n]),
    );

    for (const [key, name, help] of MEDIA_COUNTERS) metric(name, 'counter', help, [[{}, sfu.media[key]]]);

    if (sfu.workers) {
      const workers = sfu.workers.each;
      const each = (value: (w: (typeof workers)[number]) => number): Sample[] => workers.map((w) => [{ worker: String(w.index) }, value(w)]);
      metric('linkcall_media_worker_calls', 'gauge', 'Calls pinned to each media worker process.', each((w) => w.calls));
      metric('linkcall_media_worker_cpu_seconds_total', 'counter', 'CPU time of each media worker process (starts again from 0 when a worker is replaced).', each((w) => w.cpuSeconds));
      metric('linkcall_media_worker_resident_memory_bytes', 'gauge', 'Resident memory of each media worker process.', each((w) => w.rssBytes));
      metric('linkcall_media_worker_restarts_total', 'counter', 'Media worker processes that died and were started again (their calls ended with media_failed).', [[{}, sfu.workers.restarts]]);
    }

    const cpu = process.cpuUsage();
    metric('process_cpu_seconds_total', 'counter', 'CPU time of the whole process (user + system).', [[{}, (cpu.user + cpu.system) / 1e6]]);
    metric('linkcall_thread_cpu_seconds_total', 'counter', 'CPU time per kind of thread: main (JavaScript), the media engine\'s RTC workers and pollers, others.', threadCpu());
    metric('process_resident_memory_bytes', 'gauge', 'Resident memory.', [[{}, process.memoryUsage.rss()]]);
    metric('process_start_time_seconds', 'gauge', 'When the process started (Unix time).', [[{}, Math.floor(this.startedAt / 1000)]]);
    metric('linkcall_event_loop_delay_p99_seconds', 'gauge', 'Event-loop delay, 99th percentile since the last scrape.', [[{}, this.loopDelay.percentile(99) / 1e9]]);
    this.loopDelay.reset();
    return out.join('\n') + '\n';
  }
}

export function registerMetrics(app: FastifyInstance, metrics: Metrics): void {
  app.get('/metrics', async (_req, reply) => {
    const text = await metrics.render();
    return reply.type('text/plain; version=0.0.4; charset=utf-8').header('Cache-Control', 'no-store').send(text);
  });
  app.addHook('onClose', async () => metrics.close());
}

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds per thread kind, from /proc (Linux); nothing elsewhere. */
function threadCpu(): Sample[] {
  const byKind = new Map<string, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
      const kind = Number(tid) === process.pid ? 'main' : threadKind(comm);
      byKind.set(kind, (byKind.get(kind) ?? 0) + ticks / CLOCK_TICKS_PER_SECOND);
    }
  } catch {
    // Not Linux, or a thread ended while we read: report what we have.
  }
  return [...byKind].sort(([a], [b]) => a.localeCompare(b)).map(([thread, seconds]) => [{ thread }, seconds]);
}

/** libdatachannel names its threads ("RTC worker", "RTC poll", "juice poll", "SCTP timer"); V8/libuv threads are "node" or similar. */
function threadKind(comm: string): string {
  const kind = comm.trim().toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
  return kind || 'other';
}

function formatLabels(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(Math.round(value * 1e6) / 1e6);
}
