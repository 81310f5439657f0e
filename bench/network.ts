/**
 * Calls across emulated networks (the lab: test/support/netlab.ts), linkcall against a direct
 * call, same run, side by side. Each scenario runs a linkcall call (host and guest pages join by
 * link through the real server, via the UI) and then a direct call (the same two pages'
 * namespaces connected peer to peer, VP8), both with the synthetic camera that measures
 * glass-to-glass delay. Per direction: received frame rate and resolution, freezes, glass-to-
 * glass delay median / p95, audio concealment, video loss; for the bandwidth drop, the same per
 * phase and the time back to ≥ 15 fps.
 *
 * Scenarios (every rate-capped scenario also has 20 ms each way on both people's links):
 *   clean        20 ms each way on both links
 *   lossy        40 ms each way, 3 % random loss each way, both links
 *   bufferbloat  guest's uplink 600 kbit/s behind a 1 s queue
 *   tight        guest's downlink 400 kbit/s, 200 ms queue
 *   drop         guest's downlink 4 → 0.3 → 4 Mbit/s (200 ms queue), 20 s each
 *   three        a three-person call (host, guest, guest2; linkcall only: a direct call between
 *                three would be a mesh), the guest's downlink 400 kbit/s, 200 ms queue: what
 *                each person gets of each other one
 * The server's own link is clean.
 *
 *   udp-blocked  joining when the guest's link drops all UDP (20 ms each way on both links):
 *                Approve → the guest's first frame of the host, over direct UDP (guest's UDP
 *                open), through TURN over TCP, and through TURN over TLS on 443 (coturn in a
 *                namespace of its own; the page also gets TURN over UDP and falls back by itself).
 *                --runs N per path (default 5). Written into network.json as `udpBlocked`, the
 *                other scenarios' results kept.
 *
 * Usage: npx tsx bench/network.ts [--scenario NAME] [--seconds N (default 30; drop: per phase, default 20)]
 *        [--warmup N (default 8 s)] [--system linkcall|direct] [--repeat N (default 1): each scenario
 *        N times, linkcall and direct in turn, then the median of each cell over the N]
 * Writes bench/results/network.json (network-<scenario>.json for one scenario).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { directCall, frameRateSeries, linkcallCall, linkcallGroupCall, percentile, perStream, quality, Recorder, secondsUntil, sender, type LabCall, type Person, type Quality, type Sample } from '../test/support/lab-call.js';
import type { OutboundStats } from '../test/support/clock-camera.js';
import { labUnavailable, NetLab, type Impairment, type LabServer } from '../test/support/netlab.js';
import { startLabCoturn } from '../test/support/lab-coturn.js';
import { mediaPaths } from '../test/support/peer-connections.js';
import { existsSync, readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const option = (flag: string) => {
  const at = args.indexOf(flag);
  return at >= 0 ? args[at + 1] : undefined;
};
const repeat = Math.max(1, Number(option('--repeat') ?? 1));
const only = option('--scenario');
const seconds = Number(option('--seconds') ?? 0) || undefined;
const warmupMs = Number(option('--warmup') ?? 8) * 1000;
const systems = (option('--system') ? [option('--system')] : ['linkcall', 'direct']) as ('linkcall' | 'direct')[];

interface Phase {
  name: string;
  ms: number;
  /** Applied at the phase's start. */
  set?: (lab: NetLab) => Promise<void>;
}
interface Scenario {
  name: string;
  describe: string;
  links: (lab: NetLab) => Promise<void>;
  phases: Phase[];
}

const bothPeople = async (lab: NetLab, impairment: Impairment) => {
  for (const p of ['host', 'guest']) await lab.impair(p, 'both', impairment);
};
const measureMs = (seconds ?? 30) * 1000;
const phaseMs = (seconds ?? 20) * 1000;

const SCENARIOS: Scenario[] = [
  { name: 'clean', describe: '20 ms each way on both links', links: (lab) => bothPeople(lab, { delayMs: 20 }), phases: [{ name: 'all', ms: measureMs }] },
  { name: 'lossy', describe: '40 ms each way, 3 % loss both ways, both links', links: (lab) => bothPeople(lab, { delayMs: 40, lossPercent: 3 }), phases: [{ name: 'all', ms: measureMs }] },
  {
    name: 'bufferbloat',
    describe: "guest's uplink 600 kbit/s behind a 1 s queue",
    links: async (lab) => {
      await bothPeople(lab, { delayMs: 20 });
      await lab.impair('guest', 'up', { rateKbps: 600, queueMs: 1000 });
    },
    phases: [{ name: 'all', ms: measureMs }],
  },
  {
    name: 'tight',
    describe: "guest's downlink 400 kbit/s, 200 ms queue",
    links: async (lab) => {
      await bothPeople(lab, { delayMs: 20 });
      await lab.impair('guest', 'down', { rateKbps: 400, queueMs: 200 });
    },
    phases: [{ name: 'all', ms: measureMs }],
  },
  {
    name: 'three',
    describe: "three people, the guest's downlink 400 kbit/s, 200 ms queue",
    links: async (lab) => {
      for (const p of ['host', 'guest', 'guest2']) await lab.impair(p, 'both', { delayMs: 20 });
      await lab.impair('guest', 'down', { rateKbps: 400, queueMs: 200 });
    },
    phases: [{ name: 'all', ms: measureMs }],
  },
  {
    name: 'drop',
    describe: "guest's downlink 4 → 0.3 → 4 Mbit/s, 200 ms queue, 20 s each",
    links: async (lab) => {
      await bothPeople(lab, { delayMs: 20 });
      await lab.impair('guest', 'down', { rateKbps: 4000, queueMs: 200 });
    },
    phases: [
      { name: 'high', ms: phaseMs },
      { name: 'low', ms: phaseMs, set: (lab) => lab.impair('guest', 'down', { rateKbps: 300 }) },
      { name: 'back', ms: phaseMs, set: (lab) => lab.impair('guest', 'down', { rateKbps: 4000 }) },
    ],
  },
];

if (only === 'udp-blocked') {
  await joinWithUdpBlocked(Number(option('--runs') ?? 5));
  process.exit(0);
}

/** The udp-blocked scenario: Approve → first frame per path, merged into network.json. */
async function joinWithUdpBlocked(runs: number): Promise<void> {
  const reason = labUnavailable();
  if (reason) {
    console.error(`bench/network cannot run: ${reason}`);
    process.exit(1);
  }
  const loadBefore = loadavg();
  const lab = await NetLab.create(['server', 'turn', 'host', 'guest']);
  const onSignal = () => {
    lab.closeNow();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const paths: Record<string, unknown> = {};
  try {
    const coturn = await startLabCoturn(lab, 'turn');
    const PATHS = [
      { name: 'direct-udp', urls: [coturn.urls.udp, coturn.urls.tcp, coturn.urls.tls], blockUdp: false },
      { name: 'turn-tcp', urls: [coturn.urls.udp, coturn.urls.tcp], blockUdp: true },
      { name: 'turn-tls', urls: [coturn.urls.udp, coturn.urls.tls], blockUdp: true },
    ];
    for (const path of PATHS) {
      await lab.clear();
      await bothPeople(lab, { delayMs: 20 });
      if (path.blockUdp) await lab.impair('guest', 'both', { blockUdp: true });
      const server = await lab.startServer('server', { TURN_URLS: path.urls.join(','), TURN_SECRET: coturn.secret });
      const firstFrames: number[] = [];
      const selected = new Set<string>();
      const errors: string[] = [];
      for (let i = 0; i < runs; i++) {
        let call: LabCall | undefined;
        try {
          call = await linkcallCall(lab, server, 60_000, { chromiumArgs: [coturn.chromiumTrust] });
          if (call.approveToFirstFrameMs !== undefined) firstFrames.push(call.approveToFirstFrameMs);
          for (const pair of (await mediaPaths(call.pages.guest)).selected) selected.add(pair.local === 'relay' ? `relay/${pair.relayProtocol}` : pair.local);
          console.log(`${path.name} run ${i + 1}/${runs}: Approve → first frame ${call.approveToFirstFrameMs?.toFixed(0)} ms (load ${loadavg()[0]!.toFixed(1)})`);
        } catch (err) {
          errors.push(String((err as Error).message ?? err).split('\n')[0]!.replace(/#k=[^\s"']*/g, '#…'));
          console.log(`${path.name} run ${i + 1}/${runs}: failed: ${errors.at(-1)}`);
        } finally {
          await call?.close();
        }
      }
      await server.close();
      const p = (q: number) => Math.round(percentile(firstFrames, q));
      paths[path.name] = {
        turnUrls: path.urls.map((u) => u.replace(/^(turns?):[^:]+/, '$1:<turn>')),
        guestUdpBlocked: path.blockUdp,
        guestSelectedPairs: [...selected],
        approveToFirstFrameMs: { p50: p(50), p95: p(95), min: Math.round(Math.min(...firstFrames)), max: Math.round(Math.max(...firstFrames)), runs: firstFrames.length },
        ...(errors.length ? { errors } : {}),
      };
    }
    await coturn.close();
  } finally {
    await lab.close();
  }
  const file = new URL('./results/network.json', import.meta.url);
  const existing = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  existing.udpBlocked = {
    describe: "Approve (host's click) → the guest's page presents the host's first frame; 20 ms each way on both people's links, server link clean; guest's link drops all UDP for the TURN paths",
    paths,
    loadAverage: { before: loadBefore, after: loadavg() },
    browser: 'chromium (Debian), headless, one per namespace',
    date: new Date().toISOString(),
  };
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(file, `${JSON.stringify(existing, null, 2)}\n`);
  console.log(JSON.stringify(paths, null, 2));
  console.log(`written ${file.pathname} (udpBlocked; other results kept)`);
}

const chosen = only ? SCENARIOS.filter((s) => s.name === only) : SCENARIOS;
if (chosen.length === 0) throw new Error(`no scenario ${only}; there are ${SCENARIOS.map((s) => s.name).join(', ')}`);
const reason = labUnavailable();
if (reason) {
  console.error(`bench/network cannot run: ${reason}`);
  process.exit(1);
}

const DIRECTIONS: { name: string; receiver: Person }[] = [
  { name: 'host→guest', receiver: 'guest' },
  { name: 'guest→host', receiver: 'host' },
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  scenario: string;
  system: 'linkcall' | 'direct';
  /** Call set up (pages launched → both see the other's video), seconds. */
  setupSeconds: number;
  phases: { name: string; directions: Record<string, Quality & { senderResolution: string; senderLimitation: string; senderLayers: string[] }> }[];
  /** Bandwidth drop only: seconds from the drop until the guest's video was at ≥ 15 fps for 3 s (counted on into the return); after the return, until 15 fps and until 480 lines. */
  recovery?: { to15fpsAfterDropS: number; to15fpsAfterReturnS: number; toFullResolutionAfterReturnS: number };
  /** The emulator's counters over the measurement, per person's link and direction. */
  links: Record<string, { up: { lost: number; queueDrops: number; out: number }; down: { lost: number; queueDrops: number; out: number } }>;
  /** Three-person call only: per receiver, each stream it got (one per other person). */
  streams?: Record<string, ReturnType<typeof perStream>>;
  /** Three people: what each one's largest outgoing video was at the window's end, and what limited it. */
  senders?: Record<string, ReturnType<typeof sender>>;
  /** Per-second frame rate and height each person got, for the drop's curve. */
  series?: Record<Person, [number, number, number][]>;
  error?: string;
}

/** The three-person call: linkcall only; what each person got of each other one. */
async function runThree(lab: NetLab, server: LabServer, scenario: Scenario): Promise<Run> {
  await lab.clear();
  await scenario.links(lab);
  const t0 = Date.now();
  let call: Awaited<ReturnType<typeof linkcallGroupCall>> | undefined;
  try {
    call = await linkcallGroupCall(lab, server, ['guest', 'guest2']);
    const setupSeconds = (Date.now() - t0) / 1000;
    const recorder = new Recorder(call);
    recorder.start();
    await sleep(warmupMs);
    const from = Date.now();
    await sleep(scenario.phases[0]!.ms);
    const to = Date.now();
    await recorder.stop();
    const streams = Object.fromEntries(Object.keys(call.pages).map((p) => [p, perStream(recorder.samples, p, from, to)]));
    const senders = Object.fromEntries(Object.keys(call.pages).map((p) => [p, sender(recorder.samples, p as Person, to)]));
    return { scenario: scenario.name, system: 'linkcall', setupSeconds, phases: [], links: {}, streams, senders };
  } catch (err) {
    return { scenario: scenario.name, system: 'linkcall', setupSeconds: (Date.now() - t0) / 1000, phases: [], links: {}, error: redacted(String((err as Error).message ?? err).split('\n')[0]!) };
  } finally {
    await call?.close();
  }
}

async function runOne(lab: NetLab, server: LabServer, scenario: Scenario, system: 'linkcall' | 'direct'): Promise<Run> {
  if (scenario.name === 'three') return runThree(lab, server, scenario);
  await lab.clear();
  await scenario.links(lab);
  const t0 = Date.now();
  let call: LabCall | undefined;
  try {
    call = system === 'linkcall' ? await linkcallCall(lab, server) : await directCall(lab, server.url);
    const setupSeconds = (Date.now() - t0) / 1000;
    const recorder = new Recorder(call);
    recorder.start();
    await sleep(warmupMs);
    const before = await lab.stats();
    const bounds: { name: string; from: number; to: number }[] = [];
    for (const phase of scenario.phases) {
      await phase.set?.(lab);
      const from = Date.now();
      await sleep(phase.ms);
      bounds.push({ name: phase.name, from, to: Date.now() });
    }
    await recorder.stop();
    const after = await lab.stats();
    const samples = recorder.samples;
    const other = (p: Person): Person => (p === 'host' ? 'guest' : 'host');
    const phases = bounds.map(({ name, from, to }) => ({
      name,
      directions: Object.fromEntries(
        DIRECTIONS.map(({ name: d, receiver }) => {
          const s = sender(samples, other(receiver), to);
          return [d, { ...quality(samples, receiver, from, to), senderResolution: s.resolution, senderLimitation: s.limitation, senderLayers: sentLayers(samples, other(receiver), from, to) }];
        }),
      ),
    }));
    const links = Object.fromEntries(
      (['host', 'guest'] as const).map((p) => [
        p,
        Object.fromEntries(
          (['up', 'down'] as const).map((d) => [d, { out: after[p]![d].out - before[p]![d].out, lost: after[p]![d].lost - before[p]![d].lost, queueDrops: after[p]![d].queueDrops - before[p]![d].queueDrops }]),
        ),
      ]),
    ) as Run['links'];
    const run: Run = { scenario: scenario.name, system, setupSeconds, phases, links };
    if (scenario.name === 'drop') {
      const series = frameRateSeries(samples, 'guest');
      const [, low, back] = bounds;
      run.recovery = {
        // Counted on past the return of the bandwidth: a system that never recovers while it is low shows when it did.
        to15fpsAfterDropS: secondsUntil(series, low!.from, back!.to, (fps) => fps >= 15),
        to15fpsAfterReturnS: secondsUntil(series, back!.from, back!.to, (fps) => fps >= 15),
        toFullResolutionAfterReturnS: secondsUntil(series, back!.from, back!.to, (fps, h) => h >= 480 && fps >= 15),
      };
      run.series = {
        guest: series.map(([t, fps, h]) => [Math.round((t - bounds[0]!.from) / 100) / 10, Math.round(fps * 10) / 10, h]),
        host: frameRateSeries(samples, 'host').map(([t, fps, h]) => [Math.round((t - bounds[0]!.from) / 100) / 10, Math.round(fps * 10) / 10, h]),
      };
    }
    return run;
  } catch (err) {
    return { scenario: scenario.name, system, setupSeconds: (Date.now() - t0) / 1000, phases: [], links: {}, error: redacted(String((err as Error).message ?? err).split('\n')[0]!) };
  } finally {
    await call?.close();
  }
}

/** What each of a person's video encodings sent over the window: "640x480 412 kbit/s" (the last size seen). */
function sentLayers(samples: Sample[], person: Person, from: number, to: number): string[] {
  const mine = samples.filter((x) => x.person === person && x.t >= from && x.t <= to);
  const first = mine[0];
  const last = mine.at(-1);
  if (!first || !last || last.t <= first.t) return [];
  const outs = (s: Sample) => s.stats.stats.filter((x): x is OutboundStats => x.type === 'out');
  return outs(last).map((o) => {
    const before = outs(first).find((x) => x.id === o.id);
    const kbps = before ? ((o.bytes - before.bytes) * 8) / (last.t - first.t) : NaN;
    return `${o.width}x${o.height} ${f0(kbps)} kbit/s`;
  });
}

/** A browser error can quote the call link: its fragment (link secret, host key hash) never reaches the output. */
const redacted = (message: string) => message.replace(/#k=[^\s"']*/g, '#…');

const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
function row(run: Run, phase: Run['phases'][number], direction: string): string {
  const q = phase.directions[direction]!;
  return [
    run.scenario + (phase.name === 'all' ? '' : `/${phase.name}`),
    direction,
    run.system,
    f1(q.fps),
    q.resolution,
    `${q.freezeCount} / ${f1(q.freezeSeconds)} s`,
    `${f0(q.delayMedianMs)} / ${f0(q.delayP95Ms)} ms`,
    `${f1(q.audioConcealedPercent)} %`,
    `${f1(q.videoLossPercent)} %`,
    f0(q.videoKbps),
  ].join(' | ');
}

const loadBefore = loadavg();
const lab = await NetLab.create(['server', 'host', 'guest', ...(chosen.some((s) => s.name === 'three') ? ['guest2'] : [])]);
const onSignal = () => {
  lab.closeNow();
  process.exit(130);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
const runs: Run[] = [];
try {
  const server = await lab.startServer('server');
  for (const scenario of chosen) {
    for (let round = 0; round < repeat; round++) for (const system of scenario.name === 'three' ? systems.filter((s) => s === 'linkcall') : systems) {
      process.stdout.write(`${scenario.name} (${scenario.describe}), ${system}${repeat > 1 ? ` ${round + 1}/${repeat}` : ''}… `);
      const run = await runOne(lab, server, scenario, system);
      runs.push(run);
      console.log(run.error ? `failed: ${run.error}` : `done (call up in ${run.setupSeconds.toFixed(1)} s, load ${loadavg()[0]!.toFixed(1)})`);
    }
  }
  await server.close();
} finally {
  await lab.close();
}

console.log('\nscenario | direction | system | fps | resolution | freezes (count / time) | glass-to-glass median / p95 | audio concealed | video lost | video kbit/s');
for (const run of runs) {
  if (run.error) {
    console.log(`${run.scenario} | - | ${run.system} | failed: ${run.error}`);
    continue;
  }
  for (const phase of run.phases) for (const { name } of DIRECTIONS) console.log(row(run, phase, name));
  for (const [receiver, streams] of Object.entries(run.streams ?? {})) {
    console.log(`${run.scenario} | to ${receiver} | ${run.system} | ${streams.map((x) => `${x.from ? `from ${x.from}: ` : ""}${f1(x.fps)} fps ${x.resolution}, ${f1(x.freezeSeconds)} s frozen, ${f0(x.kbps)} kbit/s`).join('; ')}`);
    if (run.senders?.[receiver]) console.log(`${run.scenario} | ${receiver} sends | ${run.system} | ${run.senders[receiver]!.resolution}, limited by ${run.senders[receiver]!.limitation || 'nothing'}`);
  }
  if (run.recovery) {
    const r = run.recovery;
    console.log(`${run.scenario} | host→guest | ${run.system} | ≥ 15 fps ${f1(r.to15fpsAfterDropS)} s after the drop; after the return: ≥ 15 fps in ${f1(r.to15fpsAfterReturnS)} s, 480 lines in ${f1(r.toFullResolutionAfterReturnS)} s`);
  }
}

// Repeated: the median of each cell over the runs of a scenario, system, phase and direction.
const medians: Run[] = [];
if (repeat > 1) {
  console.log(`\nmedians of ${repeat} runs`);
  const median = (xs: number[]) => {
    const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
    return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  for (const scenario of chosen) {
    for (const system of systems) {
      const mine = runs.filter((r) => r.scenario === scenario.name && r.system === system && !r.error && r.phases.length > 0);
      if (mine.length === 0) continue;
      const phases = mine[0]!.phases.map((phase, i) => ({
        ...phase,
        directions: Object.fromEntries(Object.keys(phase.directions).map((d) => {
          const cells = mine.map((r) => r.phases[i]!.directions[d]!);
          const m = (k: keyof (typeof cells)[number]) => median(cells.map((c) => c[k] as number));
          const resolutions = cells.map((c) => c.resolution);
          const resolution = resolutions.sort((a, b) => resolutions.filter((x) => x === b).length - resolutions.filter((x) => x === a).length)[0]!;
          return [d, { ...cells[0]!, fps: m('fps'), resolution, freezeCount: m('freezeCount'), freezeSeconds: m('freezeSeconds'), delayMedianMs: m('delayMedianMs'), delayP95Ms: m('delayP95Ms'), audioConcealedPercent: m('audioConcealedPercent'), videoLossPercent: m('videoLossPercent'), videoKbps: m('videoKbps') }];
        })),
      }));
      const run: Run = { scenario: scenario.name, system, setupSeconds: median(mine.map((r) => r.setupSeconds)), phases, links: {} };
      medians.push(run);
      for (const phase of phases) for (const { name } of DIRECTIONS) console.log(row(run, phase, name));
    }
  }
}

const result = {
  scenarios: Object.fromEntries(chosen.map((s) => [s.name, s.describe])),
  note: "Rate-capped scenarios also have 20 ms each way on both people's links; the server's link is clean. Measured after a warm-up, per direction, from the receiver's getStats and the synthetic camera's read-back.",
  warmupSeconds: warmupMs / 1000,
  runs,
  ...(repeat > 1 ? { repeat, medians } : {}),
  loadAverage: { before: loadBefore, after: loadavg() },
  browser: 'chromium (Debian), headless, one per namespace',
  date: new Date().toISOString(),
};
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(`./results/${only ? `network-${only}` : 'network'}.json`, import.meta.url);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
console.log(`\nload average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; written ${file.pathname}`);
