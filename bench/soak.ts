/**
 * Soak: does one node keep working, and its memory stay flat, while people keep joining and
 * leaving calls for a long time?
 *
 *   npx tsx bench/soak.ts --minutes 30 --calls 3 --sample 10
 *   npx tsx bench/soak.ts --minutes 2                       (a short run: warm-up 0.5 min)
 *
 * The real server runs alone in a child process (`node --import tsx src/server/main.ts`, a
 * temporary DATA_DIR, a free loopback port), so its RSS is its own. This process holds, per
 * call, a host (the protocol library with the owner's cookie, approving every knock) and bots
 * (src/bot: encrypted VP8 of the smallest simulcast layer, q 320×180, plus Opus) that keep
 * coming and going: every 60/--knocks-per-minute seconds the next call (in turn) loses a random
 * bot, gains a new one, or both, staying between --min-bots and --max-bots. Knocks stay below
 * the server's default limit of 20 a minute per address (every bot knocks from 127.0.0.1).
 *
 * Every --sample seconds: the server's RSS (VmRSS in /proc), and from its /metrics the
 * event-loop delay p99 since the previous scrape, participants and CPU. Prints a line per
 * sample and a summary; "flat" compares the median RSS of the first 10 % of the samples after
 * the warm-up with the median of the last 10 % (within 10 %). Writes bench/results/soak.json
 * (also when stopped early with Ctrl-C, marked incomplete).
 * Prints counts only: never keys, secrets, names or frame bytes.
 */
import nodeDataChannel from 'node-datachannel';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Bot } from '../src/bot/bot.js';
import { loadFixtures } from '../src/bot/fixtures.js';
import { connectClient, createLink, signUp, until, type TestLink, type TestServer } from '../test/support/server.js';
import { freePort } from '../test/support/services.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    calls: { type: 'string', default: '3' },
    sample: { type: 'string', default: '10' },
    warmup: { type: 'string' },
    'min-bots': { type: 'string', default: '2' },
    'max-bots': { type: 'string', default: '4' },
    'knocks-per-minute': { type: 'string', default: '17' },
  },
});
const MINUTES = Number(values.minutes);
const CALLS = Number(values.calls);
const SAMPLE_S = Number(values.sample);
const MIN_BOTS = Number(values['min-bots']);
const MAX_BOTS = Number(values['max-bots']);
const KNOCKS_PER_MINUTE = Number(values['knocks-per-minute']);
// The warm-up must leave samples to compare: at most a quarter of a short run.
const WARMUP_MIN = values.warmup !== undefined ? Number(values.warmup) : Math.min(2, MINUTES / 4);
if (!(MINUTES > 0) || !(Number.isInteger(CALLS) && CALLS >= 1) || !(SAMPLE_S >= 1) || !(WARMUP_MIN >= 0 && WARMUP_MIN < MINUTES)) {
  throw new TypeError('--minutes > 0, --calls ≥ 1, --sample ≥ 1 (seconds), 0 ≤ --warmup < --minutes');
}
if (!(Number.isInteger(MIN_BOTS) && MIN_BOTS >= 1 && MAX_BOTS >= MIN_BOTS) || !(KNOCKS_PER_MINUTE > 0)) {
  throw new TypeError('1 ≤ --min-bots ≤ --max-bots, --knocks-per-minute > 0');
}
const KNOCK_SPACING_MS = 60_000 / KNOCKS_PER_MINUTE;
const ROOT = new URL('..', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stdout.write(`${line}\n`);

// ------------------------------------------------------------------ the server process

interface ServerProcess {
  url: string;
  wsUrl: string;
  proc: ChildProcess;
  dataDir: string;
}

/** Log lines of the server at warn (40) and error (50+) level: counted, never printed. */
const serverLogs = { warn: 0, error: 0 };

async function startServerProcess(): Promise<ServerProcess> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'linkcall-soak-'));
  const env = { PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, MEDIA_ADDRESS: '127.0.0.1', LOG_LEVEL: 'warn', SHUTDOWN_GRACE_MS: '1000', WS_CONNECTIONS_PER_ADDRESS: '1000' };
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/server/main.ts'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const server = { url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws`, proc, dataDir };
  serverProcess = server;
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const level = (() => {
      try {
        return Number((JSON.parse(line) as { level?: number }).level);
      } catch {
        return 0;
      }
    })();
    if (level >= 50) serverLogs.error++;
    else if (level >= 40) serverLogs.warn++;
  });
  proc.stderr!.on('data', () => {});
  for (let i = 0; i < 150; i++) {
    if (proc.exitCode !== null) throw new Error(`the server exited (code ${proc.exitCode})`);
    if (await fetch(`${server.url}/healthz`).then((r) => r.ok, () => false)) return server;
    await sleep(200);
  }
  throw new Error('the server did not start within 30 s');
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** The unlabelled samples of /metrics, by name. */
async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-z_0-9]+) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

// ------------------------------------------------------------------ calls and bots

interface Call {
  index: number;
  link: TestLink;
  host: Awaited<ReturnType<typeof connectClient>>;
  /** Bots admitted and not (yet) leaving. */
  inCall: Set<Bot>;
  /** Bots that knocked and wait to be let in. */
  joining: number;
}

const errors = new Map<string, number>();
function countError(kind: string): void {
  errors.set(kind, (errors.get(kind) ?? 0) + 1);
}

/** "bot's call ended: rate_limited" → "rate_limited"; timeouts and the rest by a short kind. */
function errorKind(err: unknown): string {
  const message = (err as Error)?.message ?? '';
  const ended = /call ended: ([a-z_]+)/.exec(message);
  if (ended) return ended[1]!;
  if (/not done within/.test(message)) return 'not_admitted_in_time';
  return 'join_failed';
}

const counts = { joins: 0, admitted: 0, leaves: 0 };
let botNumber = 0;
const fixtures = loadFixtures();
const calls: Call[] = [];
/** Every bot that has not been closed yet, for the clean-up. */
const liveBots = new Set<Bot>();

/** Authenticated video frames a bot has received so far, from everyone. */
function videoFrames(bot: Bot): number {
  return bot.stats().received.reduce((sum, s) => sum + (s.kind === 'video' ? s.authenticatedFrames : 0), 0);
}
/** Frames counted into a sample already, per bot; frames of bots that left since the last sample. */
const framesCounted = new WeakMap<Bot, number>();
let framesOfDeparted = 0;

async function addBot(call: Call): Promise<void> {
  call.joining++;
  counts.joins++;
  let bot: Bot | undefined;
  try {
    bot = await Bot.join({
      link: call.link.url,
      linkKeys: call.link.keys,
      fixtures,
      name: `Bot ${++botNumber}`,
      layers: ['q'],
      audio: 'tone',
      bindAddress: '127.0.0.1',
    });
    liveBots.add(bot);
    await bot.inCall(30_000);
    if (!running) throw new Error('stopping');
    counts.admitted++;
    framesCounted.set(bot, 0);
    call.inCall.add(bot);
  } catch (err) {
    if (running) countError(errorKind(err));
    if (bot) {
      bot.close();
      liveBots.delete(bot);
    }
  } finally {
    call.joining--;
  }
}

async function removeBot(call: Call, bot: Bot): Promise<void> {
  call.inCall.delete(bot);
  framesOfDeparted += videoFrames(bot) - (framesCounted.get(bot) ?? 0);
  framesCounted.set(bot, videoFrames(bot));
  await bot.leave(5000);
  if (bot.call.phase.kind !== 'ended' || (bot.call.phase.code !== 'left' && running)) countError('leave_not_confirmed');
  counts.leaves++;
  liveBots.delete(bot);
}

/** Bots whose call ended without them leaving (removed, call ended, lost connection). */
function dropEndedBots(): void {
  for (const call of calls) {
    for (const bot of call.inCall) {
      const phase = bot.call.phase;
      if (phase.kind !== 'ended') continue;
      countError(`ended_${phase.code}`);
      call.inCall.delete(bot);
      framesOfDeparted += videoFrames(bot) - (framesCounted.get(bot) ?? 0);
      bot.close();
      liveBots.delete(bot);
    }
  }
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

/** One step of churn in one call: a bot leaves, one joins, or both, within [MIN_BOTS, MAX_BOTS]. */
function churn(call: Call): void {
  const size = call.inCall.size + call.joining;
  const moves: ('join' | 'leave' | 'swap')[] = [];
  if (size < MAX_BOTS) moves.push('join');
  if (size > MIN_BOTS && call.inCall.size > 0) moves.push('leave');
  if (size <= MAX_BOTS && size >= MIN_BOTS && call.inCall.size > 0) moves.push('swap');
  const move = size < MIN_BOTS ? 'join' : moves.length ? pick(moves) : undefined;
  if (move === 'leave' || move === 'swap') void removeBot(call, pick([...call.inCall]));
  if (move === 'join' || move === 'swap') void addBot(call);
}

async function openCall(server: TestServer, cookie: string, index: number): Promise<Call> {
  const link = await createLink(server, cookie, `Soak ${index + 1}`);
  const host = await connectClient(server, link, cookie);
  await host.call.join('Host');
  await until(host.call, () => host.call.phase.kind === 'in-call' && host.call.keys !== undefined, 15_000);
  // The host lets in every knock whose name card opens, one approval at a time (CallSession queues them).
  const approving = new Set<string>();
  host.call.onChange(() => {
    for (const knock of host.call.knocks.values()) {
      if (knock.name === undefined || knock.stale || approving.has(knock.id)) continue;
      approving.add(knock.id);
      host.call.approve(knock.id).then(
        () => approving.delete(knock.id),
        () => {
          approving.delete(knock.id);
          countError('approve_failed');
        },
      );
    }
  });
  return { index, link, host, inCall: new Set(), joining: 0 };
}

// ------------------------------------------------------------------ the run

interface Sample {
  /** Minutes since the workload started. */
  minute: number;
  rssMiB: number;
  /** process_resident_memory_bytes from /metrics, in MiB. */
  metricsRssMiB: number | null;
  loopDelayP99Ms: number | null;
  serverCpuPercent: number | null;
  participants: number | null;
  joins: number;
  leaves: number;
  bots: number;
  /** Authenticated video frames received per bot in the call per second, over the interval. */
  framesPerBotPerSecond: number | null;
  /** Median over streams whose sender and receiver were in the call the whole interval. */
  streamFpsMedian: number | null;
}

let running = true;
let serverProcess: ServerProcess | undefined;
const samples: Sample[] = [];
let started = 0;

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}
const round = (x: number, digits = 1) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);

function summarize() {
  const warm = samples.filter((s) => s.minute >= WARMUP_MIN);
  const tenth = Math.max(1, Math.round(warm.length / 10));
  const first = warm.slice(0, tenth).map((s) => s.rssMiB);
  const last = warm.slice(-tenth).map((s) => s.rssMiB);
  const flatRatio = median(last) / median(first);
  const loop = samples.map((s) => s.loopDelayP99Ms).filter((x): x is number => x !== null);
  const loopWarm = warm.map((s) => s.loopDelayP99Ms).filter((x): x is number => x !== null);
  const fps = warm.map((s) => s.framesPerBotPerSecond).filter((x): x is number => x !== null);
  const streamFps = warm.map((s) => s.streamFpsMedian).filter((x): x is number => x !== null);
  const firstAfterWarmup = warm[0];
  const lastSample = samples[samples.length - 1];
  return {
    samples: samples.length,
    samplesAfterWarmup: warm.length,
    rssMiB: {
      firstAfterWarmup: firstAfterWarmup ? { minute: round(firstAfterWarmup.minute, 2), value: round(firstAfterWarmup.rssMiB) } : null,
      last: lastSample ? { minute: round(lastSample.minute, 2), value: round(lastSample.rssMiB) } : null,
      lastOverFirst: firstAfterWarmup && lastSample ? round(lastSample.rssMiB / firstAfterWarmup.rssMiB, 3) : null,
      max: round(Math.max(...samples.map((s) => s.rssMiB))),
      medianFirstTenth: round(median(first)),
      medianLastTenth: round(median(last)),
      flatRatio: round(flatRatio, 3),
      flatWithin10Percent: Number.isFinite(flatRatio) ? Math.abs(flatRatio - 1) <= 0.1 : null,
      samplesPerTenth: tenth,
    },
    loopDelayP99Ms: {
      all: { p50: round(median(loop)), p99: round(quantile(loop, 0.99)), max: round(Math.max(...loop)) },
      afterWarmup: { p50: round(median(loopWarm)), p99: round(quantile(loopWarm, 0.99)), max: round(Math.max(...loopWarm)) },
    },
    framesPerBotPerSecond: { median: round(median(fps)), min: round(Math.min(...fps)) },
    streamFpsMedian: { median: round(median(streamFps)), min: round(Math.min(...streamFps)) },
    joins: counts.joins,
    admitted: counts.admitted,
    leaves: counts.leaves,
    errors: Object.fromEntries([...errors].sort(([a], [b]) => a.localeCompare(b))),
    errorCount: [...errors.values()].reduce((a, b) => a + b, 0),
    serverLogLines: { ...serverLogs },
  };
}

function writeResults(completed: boolean): ReturnType<typeof summarize> {
  const summary = summarize();
  const result = {
    at: new Date().toISOString(),
    completed,
    config: {
      minutes: MINUTES,
      calls: CALLS,
      sampleSeconds: SAMPLE_S,
      warmupMinutes: WARMUP_MIN,
      botsPerCall: [MIN_BOTS, MAX_BOTS],
      knocksPerMinute: KNOCKS_PER_MINUTE,
      layers: ['q'],
      audio: 'tone',
    },
    machine: { cores: cpus().length, loadAverage: loadavg().map((x) => round(x, 2)) },
    summary,
    samples,
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/soak.json'), `${JSON.stringify(result, null, 2)}\n`);
  return summary;
}

function printSummary(s: ReturnType<typeof summarize>, completed: boolean): void {
  const f = (x: number | null | undefined, unit = '') => (x === null || x === undefined ? '-' : `${x}${unit}`);
  log('');
  log(`${completed ? '' : 'STOPPED EARLY: '}${f(round(samples.at(-1)?.minute ?? 0, 1))} min, ${CALLS} call(s), ${s.samples} samples (${s.samplesAfterWarmup} after ${WARMUP_MIN} min warm-up)`);
  const r = s.rssMiB;
  log(`server RSS: ${f(r.firstAfterWarmup?.value, ' MiB')} at minute ${f(r.firstAfterWarmup?.minute)} → ${f(r.last?.value, ' MiB')} at minute ${f(r.last?.minute)} (×${f(r.lastOverFirst)}), max ${f(r.max, ' MiB')}`);
  log(`RSS flat: median of the first ${r.samplesPerTenth} sample(s) after warm-up ${f(r.medianFirstTenth, ' MiB')}, of the last ${r.samplesPerTenth} ${f(r.medianLastTenth, ' MiB')}: ×${f(r.flatRatio)} → ${r.flatWithin10Percent === null ? '-' : r.flatWithin10Percent ? 'flat within 10 %' : 'NOT flat within 10 %'}`);
  log(`event-loop delay p99 per sample: p50 ${f(s.loopDelayP99Ms.all.p50, ' ms')}, p99 ${f(s.loopDelayP99Ms.all.p99, ' ms')}, max ${f(s.loopDelayP99Ms.all.max, ' ms')} (after warm-up: p50 ${f(s.loopDelayP99Ms.afterWarmup.p50, ' ms')}, p99 ${f(s.loopDelayP99Ms.afterWarmup.p99, ' ms')})`);
  log(`video after warm-up: ${f(s.framesPerBotPerSecond.median)} frames/s per bot (median of samples, min ${f(s.framesPerBotPerSecond.min)}); per stream median ${f(s.streamFpsMedian.median)} fps (min ${f(s.streamFpsMedian.min)})`);
  log(`joins ${s.joins} (admitted ${s.admitted}), leaves ${s.leaves}; errors ${s.errorCount}${s.errorCount ? ` ${JSON.stringify(s.errors)}` : ''}; server log lines: ${s.serverLogLines.warn} warn, ${s.serverLogLines.error} error`);
  log('written to bench/results/soak.json');
}

async function main(): Promise<void> {
  const server = await startServerProcess();
  const pid = server.proc.pid!;
  const asTest = server as unknown as TestServer;
  const cookie = await signUp(asTest, 'soakhost');
  for (let i = 0; i < CALLS; i++) calls.push(await openCall(asTest, cookie, i));
  log(`server pid ${pid} at ${server.url}; ${CALLS} call(s) of ${MIN_BOTS}–${MAX_BOTS} bots (layer q + Opus), a join or leave every ${(KNOCK_SPACING_MS / 1000).toFixed(1)} s; ${MINUTES} min, sample every ${SAMPLE_S} s, warm-up ${WARMUP_MIN} min`);
  log('   min    RSS MiB  loop p99 ms  server CPU  joins  leaves  bots  fr/s/bot  stream fps');

  started = performance.now();
  const end = started + MINUTES * 60_000;

  // Churn: one call per step, in turn; the first steps fill every call to the middle of the range.
  const fillTo = Math.ceil((MIN_BOTS + MAX_BOTS) / 2);
  let turn = 0;
  const churnTimer = setInterval(() => {
    if (!running) return;
    dropEndedBots();
    const call = calls[turn++ % calls.length]!;
    if (call.inCall.size + call.joining < fillTo && samples.length === 0 && turn <= fillTo * calls.length) void addBot(call);
    else churn(call);
  }, KNOCK_SPACING_MS);

  // Bot-seconds in the call, for frames per bot per second.
  let botSeconds = 0;
  const secondTimer = setInterval(() => {
    for (const call of calls) botSeconds += call.inCall.size;
  }, 1000);

  let previousStreams = new Map<string, number>(); // "receiver>sender" -> authenticated frames
  let previousCpu: { at: number; seconds: number } | undefined;
  let previousAt = performance.now();
  while (running && performance.now() < end) {
    await sleep(Math.min(SAMPLE_S * 1000, end - performance.now()));
    if (!running) break;
    dropEndedBots();
    const now = performance.now();
    const rss = rssMiB(pid);
    let metrics: Map<string, number> | undefined;
    try {
      metrics = await scrape(server.url);
    } catch {
      countError('metrics_scrape_failed');
    }
    if (server.proc.exitCode !== null) throw new Error(`the server exited (code ${server.proc.exitCode})`);

    let frames = framesOfDeparted;
    framesOfDeparted = 0;
    const streams = new Map<string, number>();
    const fps: { sender: string; fps: number }[] = [];
    const interval = (now - previousAt) / 1000;
    for (const call of calls) {
      for (const bot of call.inCall) {
        const total = videoFrames(bot);
        frames += total - (framesCounted.get(bot) ?? 0);
        framesCounted.set(bot, total);
        for (const s of bot.stats().received) {
          if (s.kind !== 'video') continue;
          const key = `${bot.id}>${s.peerId}`;
          streams.set(key, s.authenticatedFrames);
          const before = previousStreams.get(key);
          if (before !== undefined) fps.push({ sender: s.peerId, fps: (s.authenticatedFrames - before) / interval });
        }
      }
    }
    // Only streams present at both samples whose sender is still in a call (a departed sender's stream stops).
    const senders = new Set(calls.flatMap((c) => [...c.inCall].map((b) => b.id)));
    const steadyFps = fps.filter((f) => senders.has(f.sender)).map((f) => f.fps);
    previousStreams = streams;

    const cpuSeconds = metrics?.get('process_cpu_seconds_total');
    const cpuPercent = cpuSeconds !== undefined && previousCpu ? (100 * (cpuSeconds - previousCpu.seconds)) / ((now - previousCpu.at) / 1000) : undefined;
    if (cpuSeconds !== undefined) previousCpu = { at: now, seconds: cpuSeconds };
    const bots = calls.reduce((n, c) => n + c.inCall.size, 0);
    const sample: Sample = {
      minute: round((now - started) / 60_000, 3)!,
      rssMiB: round(rss, 1)!,
      metricsRssMiB: metrics?.has('process_resident_memory_bytes') ? round(metrics.get('process_resident_memory_bytes')! / 2 ** 20, 1) : null,
      loopDelayP99Ms: metrics?.has('linkcall_event_loop_delay_p99_seconds') ? round(metrics.get('linkcall_event_loop_delay_p99_seconds')! * 1000, 2) : null,
      serverCpuPercent: cpuPercent === undefined ? null : round(cpuPercent, 1),
      participants: metrics?.get('linkcall_participants') ?? null,
      joins: counts.joins,
      leaves: counts.leaves,
      bots,
      framesPerBotPerSecond: botSeconds > 0 ? round(frames / botSeconds, 1) : null,
      streamFpsMedian: steadyFps.length ? round(median(steadyFps), 1) : null,
    };
    botSeconds = 0;
    previousAt = now;
    samples.push(sample);
    const c = (x: number | null, w: number) => (x === null ? '-' : String(x)).padStart(w);
    log(
      `${sample.minute.toFixed(2).padStart(6)} ${c(sample.rssMiB, 10)} ${c(sample.loopDelayP99Ms, 12)} ${c(sample.serverCpuPercent, 9)} % ${c(sample.joins, 6)} ${c(sample.leaves, 7)} ${c(sample.bots, 5)} ${c(sample.framesPerBotPerSecond, 9)} ${c(sample.streamFpsMedian, 11)}`,
    );
  }
  clearInterval(churnTimer);
  clearInterval(secondTimer);
  if (!running) return; // Ctrl-C: stop() writes the results
  const summary = writeResults(true);
  printSummary(summary, true);
}

// ------------------------------------------------------------------ clean-up

let stopping: Promise<void> | undefined;
function stop(): Promise<void> {
  return (stopping ??= (async () => {
    running = false;
    // Bots leave (the server confirms), then the hosts go, then the server.
    await Promise.race([Promise.allSettled([...liveBots].map((b) => b.leave(3000))), sleep(8000)]);
    for (const b of liveBots) b.close();
    for (const call of calls) call.host.signaling.close();
    const server = serverProcess;
    if (server && server.proc.exitCode === null && server.proc.signalCode === null) {
      const exited = new Promise((r) => server.proc.once('exit', r));
      server.proc.kill('SIGINT');
      server.proc.kill('SIGINT'); // a second signal ends the calls at once
      await Promise.race([exited, sleep(5000)]);
      if (server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGKILL');
    }
    if (server) rmSync(server.dataDir, { recursive: true, force: true });
    nodeDataChannel.cleanup();
  })());
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`\n${signal}: stopping (bots leave, the server is stopped)…`);
    running = false;
    void stop().then(() => {
      if (samples.length > 0) printSummary(writeResults(false), false);
      process.exit(130);
    });
  });
}
// Last resort (an exception past stop()): the server must not outlive us.
process.on('exit', () => {
  const p = serverProcess?.proc;
  if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

main().then(
  async () => {
    if (interrupted) return; // the signal handler finishes
    await stop();
    process.exit(0);
  },
  async (err: unknown) => {
    process.stderr.write(`soak failed: ${(err as Error).message}\n`);
    running = false;
    await stop();
    if (samples.length > 0) printSummary(writeResults(false), false);
    process.exit(1);
  },
);
