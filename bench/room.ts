/**
 * One call of N participants on this machine, for a given time: bots (src/bot, in child
 * processes) and up to two Chromium pages, against the real server in a child process.
 *
 *   npx tsx bench/room.ts --bots 31 --pages 2 --seconds 600
 *   npx tsx bench/room.ts --bots 10 --seconds 30            (a short run)
 *
 * Options: --layers q,h,f (what bots send) --speakers 3 (bots sending a tone; the rest send
 * silence) --warmup 15 (seconds after everyone is in, not measured) --bot-procs K (default: one
 * per 16 bots) --media-workers N|auto (the server's MEDIA_WORKERS; default 0, the SFU in the
 * server process), --out room.json (the file in bench/results), --profile (the first page's
 * main-thread CPU profile over the measured time: its 15 costliest functions are printed),
 * --trace (a Chromium trace of 10 s before the measured time: what the first page's main thread and
 * its compositor, media and WebRTC threads spend their time in, by task, are printed),
 * --bots-watch all|pages (bots receive everyone's video, or only the pages': on one machine the
 * bots' decrypting of 31 × 32 streams takes CPU that 31 other devices would spend on their own),
 * --bots-nice N (the bots' processes at a lower CPU priority: the pages come first, as the
 * pages of a real call have their own device), --server-nice N (the same for the server and its
 * media workers, which a real call runs on another machine), --speakers-nice N (the speaking bots
 * in a process of their own at this priority instead: on a busy day the niced bots sent their
 * audio late, and the pages concealed what the bots never sent in time). A negative N, written
 * `--server-nice=-10`, puts those processes ahead of the pages (root only). --bots-cpu-prof DIR:
 * each bot process writes a V8 CPU profile there when it ends. The first bot is the host (signed
 * in) and lets everyone in.
 *
 * Reports per subscriber (every bot and page) and sender: complete authenticated frames per
 * second (bots) or frames drawn per second (pages), packet loss (bots), freezes (gaps > 500 ms
 * without a frame); the server's CPU (all its threads and those of its media workers, from /proc)
 * and RSS; each core's load.
 * Writes bench/results/room.json and prints a summary.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { BotStats } from '../src/bot/bot.js';
import { toBase64url } from '../src/e2ee/keys.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../test/support/browser.js';
import { guestKnocks } from '../test/support/flow.js';
import { mediaWorkersOf } from '../test/support/media-workers.js';
import { createLink, signUp, type TestServer } from '../test/support/server.js';
import { freePort } from '../test/support/services.js';

const { values } = parseArgs({
  options: {
    bots: { type: 'string', default: '10' },
    pages: { type: 'string', default: '0' },
    seconds: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '15' },
    layers: { type: 'string', default: 'q,h,f' },
    speakers: { type: 'string', default: '3' },
    'bot-procs': { type: 'string' },
    'media-workers': { type: 'string', default: '0' },
    out: { type: 'string', default: 'room.json' },
    profile: { type: 'boolean', default: false },
    trace: { type: 'boolean', default: false },
    'bots-watch': { type: 'string', default: 'all' },
    'bots-nice': { type: 'string', default: '0' },
    'server-nice': { type: 'string', default: '0' },
    'speakers-nice': { type: 'string' },
    'bots-cpu-prof': { type: 'string' },
  },
});
const BOTS = Number(values.bots);
const PAGES = Number(values.pages);
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
const BOT_PROCS = Number(values['bot-procs'] ?? Math.max(1, Math.ceil(BOTS / 16)));
const MEDIA_WORKERS = values['media-workers']!;
if (!(BOTS >= 1) || !(PAGES >= 0 && PAGES <= 2) || !(SECONDS > 0)) throw new Error('--bots ≥ 1, --pages 0–2, --seconds > 0');
if (!/^(\d+|auto)$/.test(MEDIA_WORKERS)) throw new Error('--media-workers: a number or auto');
if (!['all', 'pages'].includes(values['bots-watch']!)) throw new Error('--bots-watch: all or pages');
const ROOT = new URL('..', import.meta.url).pathname;
const TSX = ['--import', 'tsx'];
const BOT_CLI = 'src/bot/cli.ts';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stdout.write(`${line}\n`);

// ------------------------------------------------------------------ /proc

const TICKS = 100; // USER_HZ
function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS; // utime + stime of every thread
}
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}
function threadCount(pid: number): number {
  const m = /Threads:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
/** This bench's Chromium processes (its descendants) by kind (browser, renderer, gpu-process, utility). */
function chromiumProcesses(): Map<string, number[]> {
  const parent = new Map<number, number>();
  const commands = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      parent.set(Number(entry), Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]));
      commands.set(Number(entry), readFileSync(`/proc/${entry}/cmdline`, 'utf8'));
    } catch {
      // gone meanwhile
    }
  }
  const ours = (pid: number) => {
    for (let p = parent.get(pid); p && p > 1; p = parent.get(p)) if (p === process.pid) return true;
    return false;
  };
  const byKind = new Map<string, number[]>();
  for (const [pid, cmd] of commands) {
    if (!cmd.includes('chromium') || !ours(pid)) continue;
    const kind = /--type=([a-z-]+)/.exec(cmd)?.[1] ?? 'browser';
    byKind.set(kind, [...(byKind.get(kind) ?? []), pid]);
  }
  return byKind;
}
const safeCpu = (pid: number) => {
  try {
    return processCpuSeconds(pid);
  } catch {
    return 0;
  }
};

/** The server and its media worker processes (MEDIA_WORKERS; none by default). */
const serverPids = (pid: number): number[] => [pid, ...mediaWorkersOf(pid)];
const sum = (pids: number[], of: (pid: number) => number) => pids.reduce((n, pid) => n + of(pid), 0);
/** Busy and total jiffies per core. */
function coreTimes(): { busy: number; steal: number; total: number }[] {
  return readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((l) => /^cpu\d+ /.test(l))
    .map((l) => {
      const v = l.split(/\s+/).slice(1).map(Number);
      const idle = v[3]! + v[4]!;
      const total = v.reduce((a, b) => a + b, 0);
      // Steal: time the virtual machine's host gave to others (a slower machine, not our load).
      return { busy: total - idle, steal: v[7] ?? 0, total };
    });
}

/** The SFU's key-frame and resend counters from the server's /metrics (cumulative). */
async function sfuCounters(url: string): Promise<Record<string, number>> {
  const wanted = ['linkcall_key_frame_requests_total', 'linkcall_key_frames_for_unrepaired_loss_total', 'linkcall_nack_retransmits_total', 'linkcall_rtp_lost_packets_total'];
  const text = await fetch(`${url}/metrics`).then((r) => r.text(), () => '');
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [name, value] = line.split(' ');
    if (name && wanted.includes(name)) out[name.replace(/^linkcall_|_total$/g, '')] = Number(value);
  }
  return out;
}

// ------------------------------------------------------------------ processes

const children: ChildProcess[] = [];
let stopping = false;
function child(args: string[], env: Record<string, string> = {}, nice = 0): ChildProcess {
  // A lower priority needs a session of its own: with the kernel's autogroups (on by default), a
  // niced process in the bench's session still shared the cores equally with the browser's
  // session (Playwright starts Chromium in one of its own), and the pages' main threads waited
  // behind the bots (longest tasks 213-324 ms; 0-104 ms with the bots and server in niced sessions
  // of their own). The session's autogroup takes the nice too.
  const profile = values['bots-cpu-prof'] && args[0] === BOT_CLI ? ['--cpu-prof', `--cpu-prof-dir=${values['bots-cpu-prof']}`] : [];
  const c = spawn(process.execPath, [...profile, ...TSX, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: nice !== 0 });
  children.push(c);
  if (nice !== 0) {
    setPriority(c.pid!, nice);
    try {
      writeFileSync(`/proc/${c.pid}/autogroup`, String(nice));
    } catch {
      // No autogroups (a kernel without them): the process's nice is all there is.
    }
  }
  // Bots print only counts and, when they give up, one sentence why (never keys, links or names).
  let lastError = '';
  c.stderr!.on('data', (d: Buffer) => {
    const lines = String(d).trim().split('\n');
    lastError = lines.at(-1) ?? '';
    for (const l of lines) if (l.includes('left out')) log(l.slice(0, 200));
  });
  c.once('exit', (code) => {
    if (code && code !== 0 && !stopping) log(`a child process exited with ${code}: ${lastError.slice(0, 200)}`);
  });
  return c;
}

async function startServerProcess(): Promise<{ url: string; proc: ChildProcess; dataDir: string }> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'linkcall-bench-'));
  // Media workers are started later by the server's main thread, so they inherit its nice.
  const proc = child(['src/server/main.ts'], { PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn', MEDIA_ADDRESS: '127.0.0.1', MEDIA_WORKERS: MEDIA_WORKERS, KNOCKS_PER_ADDRESS_PER_MINUTE: '1000', WS_CONNECTIONS_PER_ADDRESS: '1000' }, Number(values['server-nice']));
  proc.stdout!.on('data', () => {});
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 150; i++) {
    if (proc.exitCode !== null) throw new Error('the server exited');
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) return { url, proc, dataDir };
    await sleep(200);
  }
  throw new Error('the server did not start');
}

/** Latest counts of every bot, by its index. */
const botStats = new Map<number, BotStats>();
function startBots(link: string, cookie: string, hostKey: string): void {
  // With --speakers-nice, the speakers (bots 1…speakers, the host among them) run apart.
  const apart = values['speakers-nice'] === undefined ? 0 : Math.min(BOTS, Number(values.speakers));
  const per = Math.ceil((BOTS - apart) / BOT_PROCS);
  const counts: number[] = apart > 0 ? [apart] : [];
  for (let left = BOTS - apart; left > 0; left -= per) counts.push(Math.min(per, left));
  for (let p = 0, first = 1; p < counts.length; first += counts[p]!, p++) {
    const count = counts[p]!;
    const nice = apart > 0 && p === 0 ? Number(values['speakers-nice']) : Number(values['bots-nice']);
    const args = [BOT_CLI, '--url', link, '--count', String(count), '--first', String(first), '--name', 'Bot', '--bind', '127.0.0.1'];
    args.push('--layers', values.layers!, '--speakers', String(Math.max(0, Number(values.speakers) - (first - 1))), '--json', '--every', '1');
    if (p === 0) args.push('--cookie', cookie, '--admit', '--host-key', hostKey);
    if (values['bots-watch'] === 'pages') args.push('--watch', 'Page ');
    const proc = child(args, {}, nice);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const { bots } = JSON.parse(line) as { bots: BotStats[] };
        bots.forEach((s, i) => botStats.set(first + i, s));
      } catch {
        // not a stats line
      }
    });
  }
}

// ------------------------------------------------------------------ pages

/**
 * Counts frames drawn per remote <video> (requestVideoFrameCallback) and gaps > 500 ms, the
 * longest main-thread task, and keeps the page's RTCPeerConnections (for audio statistics).
 * Plain JS for the page.
 */
const PAGE_METER = `
  window.__meter = {};
  window.__longest = { ms: 0 };
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longest.ms = Math.max(window.__longest.ms, e.duration);
    }).observe({ type: 'longtask' });
  } catch {}
  // What the long frames were doing (Long Animation Frames: script attribution, style and layout).
  window.__loaf = [];
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (e.duration < 150) continue;
        window.__loaf.push({
          at: Math.round(e.startTime), ms: Math.round(e.duration), blockingMs: Math.round(e.blockingDuration),
          renderMs: e.renderStart ? Math.round(e.startTime + e.duration - e.renderStart) : 0,
          styleAndLayoutMs: e.styleAndLayoutStart ? Math.round(e.startTime + e.duration - e.styleAndLayoutStart) : 0,
          scripts: e.scripts.slice(0, 4).map((x) => ({ ms: Math.round(x.duration), invoker: x.invoker, fn: x.sourceFunctionName, src: (x.sourceURL || '').split('/').pop() + ':' + x.sourceCharPosition, forcedLayoutMs: Math.round(x.forcedStyleAndLayoutDuration) })),
        });
      }
    }).observe({ type: 'long-animation-frame' });
  } catch {}
  window.__pcs = [];
  const NativePC = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends NativePC {
    constructor(config) { super(config); window.__pcs.push(this); }
  };
  setInterval(() => {
    for (const v of document.querySelectorAll('video[aria-label^="Video of "]')) {
      if (v.__metered) continue;
      v.__metered = true;
      const name = v.getAttribute('aria-label').slice(9);
      const m = (window.__meter[name] ??= { frames: 0, callbacks: 0, freezes: 0, freezeMs: 0, last: 0, width: 0 });
      let presented = -1;
      const onFrame = (now, meta) => {
        if (m.last && now - m.last > 500) { m.freezes++; m.freezeMs += now - m.last; }
        // Frames the compositor presented (what the person sees; video does not wait for the main
        // thread), not callbacks, which come at most once per main-thread frame.
        if (presented >= 0) m.frames += Math.max(0, meta.presentedFrames - presented);
        presented = meta.presentedFrames;
        m.last = now; m.callbacks++; m.width = meta.width;
        if (v.isConnected) v.requestVideoFrameCallback(onFrame);
      };
      v.requestVideoFrameCallback(onFrame);
    }
  }, 250);
`;
interface LongFrame {
  at: number;
  ms: number;
  blockingMs: number;
  renderMs: number;
  styleAndLayoutMs: number;
  scripts: { ms: number; invoker: string; fn: string; src: string; forcedLayoutMs: number }[];
}
interface Meter {
  /** Frames presented (rVFC metadata.presentedFrames). */
  frames: number;
  /** requestVideoFrameCallback callbacks: the main thread's view of the same video. */
  callbacks: number;
  freezes: number;
  freezeMs: number;
  last: number;
  width: number;
}
/** Per received audio track: samples played, concealed, packets (cumulative). */
interface AudioCounts {
  [trackId: string]: { samples: number; concealed: number; packets: number };
}
const readAudio = (page: Page) =>
  page.evaluate(async () => {
    const out: Record<string, { samples: number; concealed: number; packets: number }> = {};
    for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((r: { type: string; kind?: string; trackIdentifier?: string; totalSamplesReceived?: number; concealedSamples?: number; packetsReceived?: number }) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio' && r.trackIdentifier) {
          out[r.trackIdentifier] = { samples: r.totalSamplesReceived ?? 0, concealed: r.concealedSamples ?? 0, packets: r.packetsReceived ?? 0 };
        }
        // Video received, whatever plays: what the SFU still sends this page (key 'video').
        if (r.type === 'inbound-rtp' && r.kind === 'video') {
          const v = (out.video ??= { samples: 0, concealed: 0, packets: 0 });
          v.packets += r.packetsReceived ?? 0;
          v.samples += (r as { framesDecoded?: number }).framesDecoded ?? 0;
        }
      });
    }
    return out;
  }) as Promise<AudioCounts>;
/** The page's "Showing video for N of M" line and the names whose <video> plays now. */
const readBudget = (page: Page) =>
  page.evaluate(() => ({
    line: [...document.querySelectorAll('[role="status"]')].map((e) => e.textContent ?? '').find((t) => t.startsWith('Showing video for')) ?? '',
    /** Why the budget last dropped (budget.ts), if it did. */
    reason: document.querySelector('.video-budget')?.getAttribute('data-reason') ?? '',
    playing: [...document.querySelectorAll<HTMLVideoElement>('video[aria-label^="Video of "]')].filter((v) => v.srcObject).map((v) => v.getAttribute('aria-label')!.slice(9)),
  }));
const readMeter = (page: Page) => page.evaluate(() => JSON.parse(JSON.stringify((window as unknown as { __meter: Record<string, Meter> }).__meter)) as Record<string, Meter>);

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}
/** The costliest functions of a page's main thread, by self time. */
interface TraceEvent { name: string; ph: string; pid: number; tid: number; ts: number; dur?: number; args?: { name?: string } }

/**
 * Per thread of the traced renderer (main, compositor, media, WebRTC), the busy share of the
 * traced time and the 12 event names with the most total time (nested events count in their
 * parents too: a summary, not a profile).
 */
function printTrace(trace: { traceEvents: TraceEvent[] }): void {
  const events = trace.traceEvents;
  const threadNames = new Map<string, string>();
  for (const e of events) if (e.ph === 'M' && e.name === 'thread_name' && e.args?.name) threadNames.set(`${e.pid}:${e.tid}`, e.args.name);
  const main = [...threadNames].find(([, n]) => n === 'CrRendererMain')?.[0];
  const pid = main?.split(':')[0];
  let first = Infinity;
  let last = -Infinity;
  for (const e of events) {
    if (!(e.ts > 0)) continue;
    first = Math.min(first, e.ts);
    last = Math.max(last, e.ts + (e.dur ?? 0));
  }
  const span = (last - first) / 1000;
  const byThread = new Map<string, Map<string, number>>();
  const busy = new Map<string, number>();
  for (const e of events) {
    if (e.ph !== 'X' || e.dur === undefined || String(e.pid) !== pid) continue;
    const thread = threadNames.get(`${e.pid}:${e.tid}`) ?? `tid ${e.tid}`;
    const m = byThread.get(thread) ?? new Map<string, number>();
    m.set(e.name, (m.get(e.name) ?? 0) + e.dur / 1000);
    byThread.set(thread, m);
    if (e.name === 'ThreadControllerImpl::RunTask' || e.name === 'ThreadPool_RunTask') busy.set(thread, (busy.get(thread) ?? 0) + e.dur / 1000);
  }
  log(`trace of the first page's renderer over ${(span / 1000).toFixed(1)} s:`);
  for (const [thread, m] of [...byThread].sort((a, b) => (busy.get(b[0]) ?? 0) - (busy.get(a[0]) ?? 0)).slice(0, 8)) {
    const top = [...m].sort((a, b) => b[1] - a[1]).slice(0, 12);
    log(`  ${thread}: tasks ${((100 * (busy.get(thread) ?? 0)) / span).toFixed(0)} % busy; ${top.map(([n, ms]) => `${n} ${((100 * ms) / span).toFixed(1)} %`).join(', ')}`);
  }
}

function printProfile(profile: CpuProfile): void {
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byName = new Map<string, number>();
  let total = 0;
  for (const n of profile.nodes) {
    const us = self.get(n.id) ?? 0;
    total += us;
    const where = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber + 1}`;
    byName.set(where, (byName.get(where) ?? 0) + us);
  }
  log(`Page 1 main thread, self time of ${(total / 1e6).toFixed(1)} s sampled:`);
  for (const [where, us] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, 15)) log(`  ${(us / 1e3).toFixed(0).padStart(7)} ms  ${where}`);
}

// ------------------------------------------------------------------ the run

/** The lowest and the median frame rate of some streams (0 for none). */
function fpsMinAndMedian(streams: readonly StreamResult[]): { fpsMin: number; fpsMedian: number } {
  const f = streams.map((s) => s.fps).sort((a, b) => a - b);
  return { fpsMin: f[0] ?? 0, fpsMedian: f[Math.floor(f.length / 2)] ?? 0 };
}

interface StreamResult {
  subscriber: string;
  sender: string;
  fps: number;
  loss: number | undefined;
  freezes: number;
  freezeMs: number;
  width: number;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const server = await startServerProcess();
  const cookie = await signUp({ url: server.url } as TestServer, 'benchhost');
  const link = await createLink({ url: server.url } as TestServer, cookie, 'Room benchmark');
  log(`server pid ${server.proc.pid} at ${server.url} (MEDIA_WORKERS=${MEDIA_WORKERS}); ${BOTS} bots in ${BOT_PROCS} process(es), ${PAGES} Chromium page(s)`);
  startBots(link.url, cookie, `${toBase64url(link.hostKey.signKey)}.${toBase64url(link.hostKey.publicKey)}`);

  let browser: Browser | undefined;
  const pages: Page[] = [];
  if (PAGES > 0) {
    const args = CHROMIUM_ARGS.map((a) => (a === '--use-fake-device-for-media-stream' ? `${a}=fps=30` : a));
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args });
    for (let i = 0; i < PAGES; i++) {
      const context = await browser.newContext({ baseURL: server.url, permissions: ['camera', 'microphone'], viewport: { width: 1600, height: 1000 } });
      await context.addInitScript({ content: PAGE_METER });
      const page = await context.newPage();
      await guestKnocks(page, link.url, `Page ${i + 1}`);
      pages.push(page);
    }
    for (const [i, page] of pages.entries()) {
      // Bots knock at the same time: a page the full lobby (or the link's knock limit) turned away
      // knocks again, as a person would.
      for (let attempt = 1; ; attempt++) {
        // One wait for either (Locator.or), not two racing waitFor calls: the loser kept searching
        // the page's text for its full 120 s, in the page, and made the measured time's longest tasks.
        const leave = page.getByRole('button', { name: 'Leave' });
        const outcome = await leave
          .or(page.getByText('Too many people are waiting to join this call'))
          .or(page.getByText('Too many attempts'))
          .first()
          .waitFor({ timeout: 120_000 })
          .then(async () => ((await leave.isVisible()) ? ('in' as const) : ('full' as const)))
          .catch(async (err: Error) => {
            const shown = await page.locator('main').innerText().catch(() => '?');
            throw new Error(`Page ${i + 1} did not get into the call; it shows: ${shown.replace(/\s+/g, ' ').slice(0, 200)} (${err.message.split('\n')[0]})`);
          });
        if (outcome === 'in') break;
        if (attempt >= 20) throw new Error(`Page ${i + 1} found the lobby full ${attempt} times`);
        await sleep(2000);
        await guestKnocks(page, link.url, `Page ${i + 1}`);
      }
    }
  }

  const everyone = BOTS + PAGES;
  const phases = () => {
    const count = new Map<string, number>();
    for (const s of botStats.values()) {
      const phase = s.phase === 'ended' ? `ended (${s.endedWith ?? '?'})` : s.phase;
      count.set(phase, (count.get(phase) ?? 0) + 1);
    }
    return `phases: ${[...count].map(([k, n]) => `${k} ${n}`).join(', ')}; ${BOTS - botStats.size} never reported`;
  };
  for (let i = 0; ; i++) {
    const inCall = [...botStats.values()].filter((s) => s.phase === 'in-call').length;
    if (inCall === BOTS) break;
    // A busy machine may leave a bot or two out (each gives up after a few tries): measure the
    // call as it is, and say so.
    if (i > 600 && inCall >= BOTS - Math.max(1, Math.floor(BOTS / 10))) {
      log(`only ${inCall} of ${BOTS} bots got in (${phases()}): measuring the call without the others`);
      break;
    }
    if (i > 600) throw new Error(`only ${inCall} of ${BOTS} bots got in (${phases()})`);
    if (i % 60 === 59) log(`  … ${inCall} of ${BOTS} bots in after ${((performance.now() - t0) / 1000).toFixed(0)} s (${phases()})`);
    await sleep(500);
  }
  const inCallBots = [...botStats.values()].filter((s) => s.phase === 'in-call').length;
  log(`${inCallBots + PAGES} of ${everyone} in the call after ${((performance.now() - t0) / 1000).toFixed(1)} s; warming up ${WARMUP} s`);
  await sleep(WARMUP * 1000);
  // The trace comes before the measured time, whose counters it would inflate (tracing costs CPU).
  if (values.trace && browser && pages[0]) {
    await browser.startTracing(pages[0], { categories: ['toplevel', 'devtools.timeline', 'blink', 'cc', 'media', 'webrtc', 'v8', 'disabled-by-default-devtools.timeline'] });
    await sleep(10_000);
    printTrace(JSON.parse((await browser.stopTracing()).toString('utf8')) as { traceEvents: TraceEvent[] });
  }

  // Measure.
  const names = new Map<string, string>(); // participant id -> "Bot n" / "Page n"
  for (const [i, s] of botStats) if (s.id) names.set(s.id, `Bot ${i}`);
  // A page's own tile is the one with the mirrored video.
  for (const [i, page] of pages.entries()) {
    const id = await page.evaluate(() => document.querySelector('video.mirror')?.closest('figure')?.getAttribute('data-participant'));
    if (id) names.set(id, `Page ${i + 1}`);
  }
  const botsBefore = new Map([...botStats].map(([i, s]) => [i, structuredClone(s)]));
  const pagesBefore = await Promise.all(pages.map(readMeter));
  const audioBefore = await Promise.all(pages.map(readAudio));
  const budgetBefore = await Promise.all(pages.map(readBudget));
  // The longest main-thread task counts from here: the call has settled.
  await Promise.all(pages.map((p) => p.evaluate(() => { const w = window as unknown as { __longest: { ms: number }; __loaf: unknown[] }; w.__longest.ms = 0; w.__loaf.length = 0; })));
  // The server and its media workers (a worker replaced during the run is said, its CPU before that lost).
  const sfu0 = await sfuCounters(server.url);
  const pids0 = serverPids(server.proc.pid!);
  const cpu0ByPid = new Map(pids0.map((pid) => [pid, processCpuSeconds(pid)]));
  const botCpu0 = children.slice(1).map((c) => (c.exitCode === null ? processCpuSeconds(c.pid!) : 0));
  const cores0 = coreTimes();
  const chromium0 = new Map([...chromiumProcesses().values()].flat().map((pid) => [pid, safeCpu(pid)]));
  const rss: number[] = [];
  const profiler = values.profile && pages[0] ? await pages[0].context().newCDPSession(pages[0]) : undefined;
  if (profiler) {
    await profiler.send('Profiler.enable');
    await profiler.send('Profiler.start');
  }
  const start = performance.now();
  const end = start + SECONDS * 1000;
  let lastReport = start;
  while (performance.now() < end) {
    await sleep(1000);
    rss.push(sum(serverPids(server.proc.pid!), rssMb));
    if (performance.now() - lastReport > 30_000) {
      lastReport = performance.now();
      log(`  … ${Math.round((performance.now() - start) / 1000)} s, server RSS ${rss[rss.length - 1]!.toFixed(0)} MB`);
    }
  }
  const elapsed = (performance.now() - start) / 1000;
  if (profiler) printProfile((await profiler.send('Profiler.stop')).profile as unknown as CpuProfile);
  const pids1 = serverPids(server.proc.pid!);
  if (pids1.join() !== pids0.join()) log(`the server's media workers changed during the run: ${pids0.length - 1} → ${pids1.length - 1}`);
  const cpuByPid = pids1.map((pid) => processCpuSeconds(pid) - (cpu0ByPid.get(pid) ?? 0));
  const cpu = cpuByPid.reduce((a, b) => a + b, 0);
  const botCpu = children.slice(1).map((c, i) => (c.exitCode === null ? processCpuSeconds(c.pid!) - botCpu0[i]! : 0));
  const cores1 = coreTimes();
  // Chromium's CPU by kind of process over the run (both pages share one browser).
  const chromiumCores: Record<string, number> = {};
  for (const [kind, pids] of chromiumProcesses()) {
    const used = pids.reduce((n, pid) => n + safeCpu(pid) - (chromium0.get(pid) ?? safeCpu(pid)), 0);
    chromiumCores[kind] = Number((used / elapsed).toFixed(3));
  }
  const serverThreads = sum(pids1, threadCount);
  const sfu1 = await sfuCounters(server.url);
  /** What the SFU did over the measured time (its /metrics counters). */
  const sfu = Object.fromEntries(Object.entries(sfu1).map(([k, v]) => [k, v - (sfu0[k] ?? 0)]));
  const pagesAfter = await Promise.all(pages.map(readMeter));
  const audioAfter = await Promise.all(pages.map(readAudio));
  const budgetAfter = await Promise.all(pages.map(readBudget));
  const longestTask = await Promise.all(pages.map((p) => p.evaluate(() => (window as unknown as { __longest: { ms: number } }).__longest.ms)));
  const longFrames = await Promise.all(pages.map((p) => p.evaluate(() => (window as unknown as { __loaf: LongFrame[] }).__loaf)));
  // Per page: the budget it chose, how its budgeted tiles played, its longest task, and audio
  // concealment on the tracks that carried a speaker (≥ 40 packets/s: the loudest, forwarded).
  /** Per page: the tiles it played throughout the measured time. */
  const budgetedOf = pages.map((_, p) => budgetBefore[p]!.playing.filter((n) => budgetAfter[p]!.playing.includes(n)));
  const pageResults = pages.map((_, p) => {
    const budgeted = budgetedOf[p]!;
    const fpsOf = (n: string) => ((pagesAfter[p]![n]?.frames ?? 0) - (pagesBefore[p]![n]?.frames ?? 0)) / elapsed;
    const budgetedFps = budgeted.map(fpsOf).sort((a, b) => a - b);
    const callbacksOf = (n: string) => ((pagesAfter[p]![n]?.callbacks ?? 0) - (pagesBefore[p]![n]?.callbacks ?? 0)) / elapsed;
    const budgetedCallbacks = budgeted.map(callbacksOf).sort((a, b) => a - b);
    let samples = 0;
    let concealed = 0;
    let speakerTracks = 0;
    const videoIn = { packets: 0, frames: 0 };
    const audioTracks: { packets: number; samples: number; concealed: number }[] = [];
    for (const [track, a] of Object.entries(audioAfter[p]!)) {
      const b = audioBefore[p]![track] ?? { samples: 0, concealed: 0, packets: 0 };
      if (track === 'video') {
        videoIn.packets = (a.packets - b.packets) / elapsed;
        videoIn.frames = (a.samples - b.samples) / elapsed;
        continue;
      }
      audioTracks.push({ packets: (a.packets - b.packets) / elapsed, samples: a.samples - b.samples, concealed: a.concealed - b.concealed });
    }
    // The speakers' tracks: the busiest ones, as many as there are speakers, that carried audio
    // most of the time (a forwarded speaker sends 50 packets/s when its sender keeps pace).
    audioTracks.sort((x, y) => y.packets - x.packets);
    for (const t of audioTracks.slice(0, Number(values.speakers))) {
      if (t.packets < 25) continue;
      speakerTracks++;
      samples += t.samples;
      concealed += t.concealed;
    }
    return {
      page: `Page ${p + 1}`,
      budgetLine: budgetAfter[p]!.line,
      budgetAtStart: budgetBefore[p]!.playing.length,
      budgetAtEnd: budgetAfter[p]!.playing.length,
      budgetReason: budgetAfter[p]!.reason,
      budgetedTiles: budgeted.length,
      budgetedFpsMedian: Number((budgetedFps[budgetedFps.length >> 1] ?? 0).toFixed(1)),
      budgetedFpsMin: Number((budgetedFps[0] ?? 0).toFixed(1)),
      /** The same tiles' requestVideoFrameCallback rate: at most the page's main-thread frame rate. */
      budgetedCallbacksPerSecondMedian: Number((budgetedCallbacks[budgetedCallbacks.length >> 1] ?? 0).toFixed(1)),
      longestTaskMs: Math.round(longestTask[p]!),
      /** Animation frames of 150 ms or more while measured, the longest first (what ran in them). */
      longFrames: longFrames[p]!.sort((a, b) => b.ms - a.ms).slice(0, 8),
      longFramesOver200: longFrames[p]!.filter((f) => f.ms > 200).length,
      speakerAudioTracks: speakerTracks,
      audioPacketsPerSecondByTrack: audioTracks.map((t) => Math.round(t.packets)),
      videoReceived: { packetsPerSecond: Math.round(videoIn.packets), framesDecodedPerSecond: Math.round(videoIn.frames) },
      concealedPercent: samples > 0 ? Number(((100 * concealed) / samples).toFixed(2)) : undefined,
    };
  });

  const streams: StreamResult[] = [];
  for (const [i, after] of botStats) {
    const before = botsBefore.get(i);
    for (const s of after.received) {
      if (s.kind !== 'video') continue;
      const b = before?.received.find((x) => x.peerId === s.peerId && x.kind === 'video');
      const expected = s.packetsExpected - (b?.packetsExpected ?? 0);
      streams.push({
        subscriber: `Bot ${i}`,
        sender: names.get(s.peerId) ?? 'a page',
        fps: (s.authenticatedFrames - (b?.authenticatedFrames ?? 0)) / elapsed,
        loss: expected > 0 ? 1 - (s.packets - (b?.packets ?? 0)) / expected : undefined,
        freezes: s.freezes - (b?.freezes ?? 0),
        freezeMs: s.freezeMs - (b?.freezeMs ?? 0),
        width: s.width,
      });
    }
  }
  pages.forEach((_, p) => {
    for (const [sender, m] of Object.entries(pagesAfter[p]!)) {
      const b = pagesBefore[p]![sender];
      streams.push({
        subscriber: `Page ${p + 1}`,
        sender,
        fps: (m.frames - (b?.frames ?? 0)) / elapsed,
        loss: undefined,
        freezes: m.freezes - (b?.freezes ?? 0),
        freezeMs: m.freezeMs - (b?.freezeMs ?? 0),
        width: m.width,
      });
    }
  });

  const fps = streams.map((s) => s.fps).sort((a, b) => a - b);
  const q = (p: number) => fps[Math.min(fps.length - 1, Math.floor(p * fps.length))] ?? 0;
  const losses = streams.map((s) => s.loss).filter((l): l is number => l !== undefined);
  const perCore = cores1.map((c, i) => (c.busy - cores0[i]!.busy) / Math.max(1, c.total - cores0[i]!.total));
  const subscribers = [...new Set(streams.map((s) => s.subscriber))].map((who) => {
    const mine = streams.filter((s) => s.subscriber === who);
    return {
      subscriber: who,
      streams: mine.length,
      ...fpsMinAndMedian(mine),
      loss: mine.some((s) => s.loss !== undefined) ? mine.reduce((a, s) => a + (s.loss ?? 0), 0) / mine.length : undefined,
      freezes: mine.reduce((a, s) => a + s.freezes, 0),
      widths: [...new Set(mine.map((s) => s.width))].sort((a, b) => a - b),
    };
  });
  // What the bots sent while measured: a bot short of CPU sends fewer frames than its camera
  // would (30 video, 50 audio a second), and a page can play no more than it is sent.
  const botsSent = [...botStats].map(([i, after]) => {
    const b = botsBefore.get(i)?.sent;
    return {
      bot: `Bot ${i}`,
      videoFps: (after.sent.videoFrames - (b?.videoFrames ?? 0)) / elapsed,
      audioFps: (after.sent.audioFrames - (b?.audioFrames ?? 0)) / elapsed,
      keyFrameRequests: after.sent.keyFrameRequests - (b?.keyFrameRequests ?? 0),
      layers: after.sent.layers.join(','),
    };
  });
  const medianOf = (xs: number[]) => Number(([...xs].sort((a, b) => a - b)[xs.length >> 1] ?? 0).toFixed(1));
  const budgetedBots = new Set(budgetedOf.flat());
  const sent = {
    videoFpsMedian: medianOf(botsSent.map((s) => s.videoFps)),
    /** The bots some page played throughout: what the pages' budgeted tiles were sent. */
    budgetedVideoFps: botsSent.filter((s) => budgetedBots.has(s.bot)).map((s) => ({ bot: s.bot, fps: Number(s.videoFps.toFixed(1)), layers: s.layers })),
    audioFpsMedian: medianOf(botsSent.map((s) => s.audioFps)),
    audioFpsMin: Number(Math.min(...botsSent.map((s) => s.audioFps)).toFixed(1)),
    keyFrameRequests: botsSent.reduce((a, s) => a + s.keyFrameRequests, 0),
  };
  // What the bots get of each page's own camera: whether the page's encoder kept its frame rate.
  const pagesAtBots = Object.fromEntries(
    pages.map((_, p) => {
      const atBots = streams.filter((s) => s.sender === `Page ${p + 1}` && s.subscriber.startsWith('Bot'));
      return [`Page ${p + 1}`, { bots: atBots.length, ...fpsMinAndMedian(atBots) }];
    }),
  );
  const result = {
    at: new Date().toISOString(),
    botsInCall: inCallBots,
    config: { bots: BOTS, pages: PAGES, botsWatch: values['bots-watch'], botsNice: Number(values['bots-nice']), speakersNice: values['speakers-nice'] === undefined ? undefined : Number(values['speakers-nice']), serverNice: Number(values['server-nice']), seconds: SECONDS, warmup: WARMUP, layers: values.layers, speakers: Number(values.speakers), botProcesses: BOT_PROCS, mediaWorkers: MEDIA_WORKERS },
    machine: {
      cores: perCore.length,
      model: cpus()[0]?.model,
      busyPerCore: perCore.map((x) => Number(x.toFixed(3))),
      stealPerCore: cores1.map((c, i) => Number(((c.steal - cores0[i]!.steal) / Math.max(1, c.total - cores0[i]!.total)).toFixed(3))),
    },
    server: {
      /** The server process and its media workers together. */
      processes: pids1.length,
      cpuCores: Number((cpu / elapsed).toFixed(3)),
      cpuPercentOfOneCore: Number(((100 * cpu) / elapsed).toFixed(1)),
      /** The server process first, then each media worker. */
      cpuCoresPerProcess: cpuByPid.map((c) => Number((c / elapsed).toFixed(3))),
      threads: serverThreads,
      sfu,
      rssMb: { mean: Number((rss.reduce((a, b) => a + b, 0) / rss.length).toFixed(1)), max: Number(Math.max(...rss).toFixed(1)) },
    },
    bots: { cpuCoresPerProcess: botCpu.map((c) => Number((c / elapsed).toFixed(3))), sent },
    chromiumCoresByProcessKind: chromiumCores,
    streams: {
      count: streams.length,
      fps: { min: q(0), p5: q(0.05), median: q(0.5), max: q(1) },
      below20fps: streams.filter((s) => s.fps < 20).length,
      lossMean: losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : undefined,
      lossMax: losses.length ? Math.max(...losses) : undefined,
      freezes: streams.reduce((a, s) => a + s.freezes, 0),
      freezeSeconds: Number((streams.reduce((a, s) => a + s.freezeMs, 0) / 1000).toFixed(1)),
    },
    subscribers,
    pages: pageResults,
    /** Frames/s the bots received of each page's camera (median and lowest over the bots). */
    pagesAtBots,
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results', values.out!), `${JSON.stringify(result, null, 2)}\n`);

  const f1 = (x: number) => x.toFixed(1);
  log('');
  log(`${everyone} participants (${BOTS} bots, ${PAGES} pages), ${f1(elapsed)} s measured after ${WARMUP} s warm-up`);
  const split = pids1.length > 1 ? ` = ${result.server.cpuCoresPerProcess.map((c) => `${f1(c * 100)} %`).join(' + ')} (server + workers)` : '';
  log(`server: ${f1(result.server.cpuPercentOfOneCore)} % of one core${split} (${serverThreads} threads), RSS mean ${f1(result.server.rssMb.mean)} MB, max ${f1(result.server.rssMb.max)} MB`);
  log(`SFU: ${Object.entries(sfu).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  log(`bots: ${result.bots.cpuCoresPerProcess.map((c) => `${f1(c * 100)} %`).join(' + ')} of one core; machine cores busy: ${perCore.map((c) => `${f1(c * 100)} %`).join(', ')} (stolen by the host: ${result.machine.stealPerCore.map((c) => `${f1(c * 100)} %`).join(', ')})`);
  log(`bots sent: video median ${f1(sent.videoFpsMedian)} frames/s (budgeted tiles' bots: ${sent.budgetedVideoFps.map((b) => `${b.bot} ${f1(b.fps)} [${b.layers}]`).join(', ') || 'none'}); audio median ${f1(sent.audioFpsMedian)}, lowest ${f1(sent.audioFpsMin)} frames/s; ${sent.keyFrameRequests} key frame requests`);
  if (PAGES > 0) log(`Chromium (${PAGES} pages): ${Object.entries(chromiumCores).map(([k, c]) => `${k} ${f1(c * 100)} %`).join(', ')} of one core`);
  log(`video streams: ${streams.length}; frames/s min ${f1(q(0))}, p5 ${f1(q(0.05))}, median ${f1(q(0.5))}; below 20 fps: ${result.streams.below20fps}`);
  log(`loss: mean ${((result.streams.lossMean ?? 0) * 100).toFixed(2)} %, max ${((result.streams.lossMax ?? 0) * 100).toFixed(2)} %; freezes (> 500 ms): ${result.streams.freezes} (${result.streams.freezeSeconds} s in all)`);
  for (const s of subscribers) {
    log(`  ${s.subscriber.padEnd(7)} ${String(s.streams).padStart(2)} streams  fps min ${f1(s.fpsMin).padStart(4)} median ${f1(s.fpsMedian).padStart(4)}  freezes ${s.freezes}  widths ${s.widths.join('/')}`);
  }
  for (const p of pageResults) {
    log(`  ${p.page}: "${p.budgetLine}"${p.budgetReason ? ` (${p.budgetReason})` : ''} — budgeted tiles (${p.budgetedTiles}) median ${f1(p.budgetedFpsMedian)} fps presented (min ${f1(p.budgetedFpsMin)}; frame callbacks ${f1(p.budgetedCallbacksPerSecondMedian)}/s); longest main-thread task ${p.longestTaskMs} ms; speaker audio concealed ${p.concealedPercent ?? '?'} % over ${p.speakerAudioTracks} track(s); video received ${p.videoReceived.packetsPerSecond} packets/s, ${p.videoReceived.framesDecodedPerSecond} frames decoded/s`);
    for (const f of p.longFrames.slice(0, 4)) log(`    long frame at ${(f.at / 1000).toFixed(1)} s: ${f.ms} ms (style+layout ${f.styleAndLayoutMs}, render ${f.renderMs}); ${f.scripts.map((x) => `${x.invoker} ${x.fn}@${x.src} ${x.ms} ms`).join(', ') || 'no script'}`);
  }
  for (const [page, r] of Object.entries(pagesAtBots)) log(`  ${page}'s camera at ${r.bots} bots: median ${f1(r.fpsMedian)} fps, lowest ${f1(r.fpsMin)}`);
  log(`written to bench/results/${values.out}`);

  await browser?.close();
  stopping = true;
  for (const c of children.slice(1)) c.kill('SIGTERM');
  await sleep(3000);
  server.proc.kill('SIGINT');
  server.proc.kill('SIGINT'); // a second signal ends the calls at once
  await sleep(1000);
  rmSync(server.dataDir, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).message}\n`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(1);
  },
);
