/**
 * Join latency in Chromium on loopback, over N guests joining one host's call:
 *  - knock:      guest clicks Join → the host's page shows "Approve {name}"
 *  - firstFrame: host clicks Approve → the guest's page presents the host's first video frame
 *  - hostSeesGuest: host clicks Approve → the host's page presents the guest's first video frame
 * The host clicks Approve a person's reaction time after the knock shows (1 s by default: reading
 * a name and deciding takes at least that); `--reaction-ms 0` approves the instant it shows.
 * `--busy-cores N` keeps N cores busy with spinning processes meanwhile (a machine doing
 * something else too).
 * Prints p50/p95 and writes bench/results/join.json (join-instant.json with `--reaction-ms 0`,
 * join-busy-N.json with `--busy-cores N`).
 * Usage: npx tsx bench/join.ts [runs] [--reaction-ms N] [--busy-cores N]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { Page } from 'playwright-core';
import { launchChromium, newPerson } from '../test/support/browser.js';
import type { CallMedia } from '../src/server/sfu/call-media.js';
import { startServer } from '../test/support/server.js';

const args = process.argv.slice(2);
/** The value after `--flag`, and the index it is at (so it is not taken for the runs). */
function option(flag: string): [number | undefined, number] {
  const at = args.indexOf(flag);
  return at >= 0 ? [Number(args[at + 1]), at + 1] : [undefined, -1];
}
const [reaction, reactionValueAt] = option('--reaction-ms');
const [busy, busyValueAt] = option('--busy-cores');
const reactionMs = reaction ?? 1000;
const busyCores = busy ?? 0;
const runs = Number(args.find((a, i) => /^\d+$/.test(a) && i !== reactionValueAt && i !== busyValueAt) ?? 20);
const spinners = Array.from({ length: busyCores }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
// Killed when this process exits, also after a failed run: a spinner left behind would keep a
// core busy for good. Unreferenced: they must not keep this process alive.
for (const spinner of spinners) spinner.unref();
process.on('exit', () => spinners.forEach((s) => s.kill()));

/**
 * Records, in page time since epoch, button clicks, when knocks appear and when
 * remote video first has a frame. Plain JavaScript text: a transpiled function
 * would carry helper calls the page does not have.
 */
const INSTRUMENT = `
  const now = () => performance.timeOrigin + performance.now();
  window.__clicks = {};
  document.addEventListener('click', (e) => {
    const b = e.target && e.target.closest && e.target.closest('button');
    if (b) window.__clicks[b.getAttribute('aria-label') || b.textContent || ''] = now();
  }, true);
  new MutationObserver(() => {
    for (const b of document.querySelectorAll('button[aria-label^="Approve "]')) {
      const key = '__knock:' + b.getAttribute('aria-label');
      if (!window[key]) window[key] = now();
    }
  }).observe(document, { subtree: true, childList: true });
  // The first frame counts once it is presented for compositing (requestVideoFrameCallback's
  // presentation time): decoded and on its way to the screen, not merely sized. When the video
  // first knows its size ('loadedmetadata' / 'resize') is kept too. No polling: it would load the
  // page being measured.
  const sized = (v) => {
    const key = '__sized:' + v.getAttribute('aria-label');
    if (v.videoWidth > 0 && !window[key]) window[key] = now();
  };
  const presented = (v) => (_, meta) => {
    const key = '__frame:' + v.getAttribute('aria-label');
    if (!window[key]) window[key] = performance.timeOrigin + meta.presentationTime;
  };
  const watched = new WeakSet();
  new MutationObserver(() => {
    for (const v of document.querySelectorAll('video[aria-label^="Video of "]')) {
      if (watched.has(v)) continue;
      watched.add(v);
      v.addEventListener('loadedmetadata', () => sized(v));
      v.addEventListener('resize', () => sized(v));
      v.requestVideoFrameCallback(presented(v));
      sized(v);
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-label'] });
  // Signaling message types in and out and each media connection's states, in order (no
  // contents), for a run that hangs.
  window.__signals = [];
  const NativePc = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends NativePc {
    constructor(config) {
      super(config);
      const n = (window.__pcCount = (window.__pcCount || 0) + 1);
      const note = (what) => window.__signals.push('pc' + n + ':' + what);
      this.addEventListener('connectionstatechange', () => note(this.connectionState));
      this.addEventListener('icegatheringstatechange', () => note('gather-' + this.iceGatheringState));
    }
  };
  // When each signaling message type was first sent and last received (the knock's legs).
  window.__sent = {};
  window.__received = {};
  window.__log = [];
  const NativeSocket = window.WebSocket;
  window.WebSocket = class extends NativeSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.addEventListener('message', (e) => {
        try {
          const type = JSON.parse(e.data).type;
          window.__signals.push('<' + type);
          window.__received[type] = now();
          window.__log.push(['<' + type, now()]);
        } catch {}
      });
    }
    send(data) {
      try {
        const type = JSON.parse(data).type;
        window.__signals.push('>' + type);
        window.__sent[type] = window.__sent[type] || now();
        window.__log.push(['>' + type, now()]);
      } catch {}
      return super.send(data);
    }
  };
`;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

// The guests stand for different people, who would knock from different addresses: at ~2 s a
// run, one loopback address would pass the knock limits (20 a minute per address) by run 21.
const server = await startServer({ rateLimits: { knocksPerAddressPerMinute: 10_000, knocksPerLinkPerMinute: 10_000 } });
const chromium = await launchChromium();
const host = await newPerson(chromium.browser, server.url);
await host.context.addInitScript({ content: INSTRUMENT });
const page: Page = host.page;
await page.goto('/');
await page.getByRole('textbox', { name: 'Username' }).fill('host');
await page.getByLabel('Password').fill('correct horse battery');
await page.getByRole('button', { name: 'Sign up' }).click();
await page.getByRole('button', { name: 'Create Link' }).click();
const link = await page.getByRole('textbox', { name: 'Call link' }).inputValue();
await page.goto(link);
await page.getByRole('button', { name: 'Join' }).click();
await page.getByRole('button', { name: 'End call' }).waitFor();

/** What the SFU holds for the call: each track's layers and each subscriber's consumers (ids, numbers only). */
function sfuState(): string {
  const router = [...server.app.rooms.values()].map((r) => (r.media as CallMedia).router).find((r) => r && !r.closed);
  if (!router) return 'no call at the SFU';
  const short = (id: string) => id.slice(0, 6);
  const producers = [...router.producers.values()].map((p) => {
    const st = p.stats();
    return `${short(p.peerId)} ${p.kind} ${st.packets} pkts, layers ${st.layers.map((l) => `${l.width}x${l.height}${l.active ? '' : ' (idle)'}`).join('/')}`;
  });
  const subscribers = [...router.subscribeTransports].map((t) =>
    `${short(t.peerId)} (${JSON.stringify(t.negotiation)}) gets ${[...t.consumers.values()].map((c) => `${short(c.producer.peerId)} ${c.kind}${c.ready ? '' : ' (not ready)'} layer ${c.layers.current}→${c.layers.target}`).join(', ') || 'nothing'}`,
  );
  return `producers: ${producers.join('; ')} | subscribers: ${subscribers.join('; ')}`;
}

/** A run that hangs says where, what the page shows, and what the SFU holds. */
const stuck = (what: string, on: Page = page) => async (err: Error) => {
  const shown = await on.locator('main').innerText().catch(() => '?');
  const signals = await on.evaluate(() => (window as unknown as { __signals: string[] }).__signals.filter((t) => !/ping|pong/.test(t)).join(' ')).catch(() => '?');
  throw new Error(`${what} within 20 s; the page shows: ${shown.replace(/\s+/g, ' ').slice(0, 300)} (${err.message.split('\n')[0]}); its signaling: ${signals}; SFU: ${sfuState()}`);
};
const knock: number[] = [];
/** The knock's legs: Join click → join sent (guest page), → knock received (server), → Approve shown (host page). */
const knockLegs: [number, number, number][] = [];
const firstFrame: number[] = [];
/** Approve click → the guest's video of the host first knows its size (a frame is presented a little after it). */
const firstSized: number[] = [];
const hostSeesGuest: number[] = [];
/**
 * Approve's legs: click → Add commit sent (host page), → Welcome received (server and loopback),
 * → the guest answers for everyone's media (its page joins the MLS group and keys its frames),
 * → the first frame is presented (media: key frame, decode).
 */
const approveLegs: [number, number, number, number][] = [];
type Log = [string, number][];
/** Of the guest page's leg: joining the MLS group from the Welcome and deriving the frame key. */
const welcomeMs: number[] = [];
const firstAfter = (log: Log, what: string, t: number) => log.find(([w, at]) => w === what && at >= t)?.[1] ?? NaN;
for (let i = 0; i < runs; i++) {
  const name = `Guest ${i}`;
  const guest = await newPerson(chromium.browser, server.url);
  await guest.context.addInitScript({ content: INSTRUMENT });
  await guest.page.goto(link);
  await guest.page.getByRole('textbox', { name: 'Name' }).fill(name);
  await guest.page.getByRole('button', { name: 'Continue' }).click();
  await guest.page.getByRole('button', { name: 'Join' }).click();
  // Waits on the instrumented mark, not a role query: polling the accessibility tree every frame
  // would load the host's page just when it draws the knock.
  await page.waitForFunction((k) => (window as unknown as Record<string, number>)[k], `__knock:Approve ${name}`, { timeout: 20_000, polling: 20 }).catch(stuck(`the host never saw ${name}'s knock`));
  const approve = page.getByRole('button', { name: `Approve ${name}` });
  if (reactionMs > 0) await new Promise((resolve) => setTimeout(resolve, reactionMs));
  await approve.click();
  const frameOf = (who: string) => `__frame:Video of ${who}`;
  await guest.page.waitForFunction((k) => (window as unknown as Record<string, number>)[k], frameOf('host'), { timeout: 20_000, polling: 20 }).catch(stuck(`${name} never saw the host's video`, guest.page));
  await page.waitForFunction((k) => (window as unknown as Record<string, number>)[k], frameOf(name), { timeout: 20_000, polling: 20 }).catch(stuck(`the host never saw ${name}'s video`));
  const joinClick = await guest.page.evaluate(() => (window as unknown as { __clicks: Record<string, number> }).__clicks['Join']!);
  const knockSeen = await page.evaluate((n) => (window as unknown as Record<string, number>)[`__knock:Approve ${n}`]!, name);
  const approveClick = await page.evaluate((n) => (window as unknown as { __clicks: Record<string, number> }).__clicks[`Approve ${n}`]!, name);
  const frame = await guest.page.evaluate((k) => (window as unknown as Record<string, number>)[k]!, frameOf('host'));
  const hostFrame = await page.evaluate((k) => (window as unknown as Record<string, number>)[k]!, frameOf(name));
  const sized = await guest.page.evaluate((k) => (window as unknown as Record<string, number>)[k]!, '__sized:Video of host');
  knock.push(knockSeen - joinClick);
  const joinSent = await guest.page.evaluate(() => (window as unknown as { __sent: Record<string, number> }).__sent['join']!);
  const knockReceived = await page.evaluate(() => (window as unknown as { __received: Record<string, number> }).__received['knock']!);
  knockLegs.push([joinSent - joinClick, knockReceived - joinSent, knockSeen - knockReceived]);
  const hostLog = await page.evaluate(() => (window as unknown as { __log: Log }).__log);
  const guestLog = await guest.page.evaluate(() => (window as unknown as { __log: Log }).__log);
  const approveSent = firstAfter(hostLog, '>approve', approveClick);
  const welcomed = firstAfter(guestLog, '<joined', approveClick);
  const answered = firstAfter(guestLog, '>subscribeAnswer', welcomed);
  approveLegs.push([approveSent - approveClick, welcomed - approveSent, answered - welcomed, frame - answered]);
  const welcome = await guest.page.evaluate(() => {
    const e = performance.getEntriesByName('linkcall:welcome').at(-1);
    return e ? { start: performance.timeOrigin + e.startTime, duration: e.duration } : undefined;
  });
  welcomeMs.push(welcome?.duration ?? NaN);
  if (process.env.BENCH_DEBUG) console.log(`  joined→welcome start ${(welcome!.start - welcomed).toFixed(1)}, welcome ${welcome!.duration.toFixed(1)}, welcome end→answer ${(answered - welcome!.start - welcome!.duration).toFixed(1)}`);
  firstFrame.push(frame - approveClick);
  firstSized.push(sized - approveClick);
  hostSeesGuest.push(hostFrame - approveClick);
  await guest.page.getByRole('button', { name: 'Leave' }).click();
  await guest.context.close();
  process.stdout.write(
    `run ${i + 1}/${runs}: knock ${(knockSeen - joinClick).toFixed(1)} ms (${knockLegs.at(-1)!.map((l) => l.toFixed(1)).join(' + ')}), first frame ${(frame - approveClick).toFixed(1)} ms (${approveLegs.at(-1)!.map((l) => l.toFixed(1)).join(' + ')}), host sees guest ${(hostFrame - approveClick).toFixed(1)} ms\n`,
  );
}

const result = {
  runs,
  knockMs: { p50: percentile(knock, 50), p95: percentile(knock, 95), goalP95: 50 },
  /** The knock's legs, p50 / p95 each: the guest's page, the server (and loopback), the host's page. */
  knockLegsMs: Object.fromEntries(['guestPage', 'server', 'hostPage'].map((leg, i) => [leg, { p50: percentile(knockLegs.map((l) => l[i]!), 50), p95: percentile(knockLegs.map((l) => l[i]!), 95) }])),
  firstFrameMs: { p50: percentile(firstFrame, 50), p95: percentile(firstFrame, 95), goalP95: 200 },
  firstFrameSizedMs: { p50: percentile(firstSized, 50), p95: percentile(firstSized, 95) },
  /** Approve's legs, p50 / p95 each: host page (Add commit made and sent), server, guest page (Welcome → keys → media answer), media. */
  welcomeMs: { p50: percentile(welcomeMs, 50), p95: percentile(welcomeMs, 95) },
  approveLegsMs: Object.fromEntries(['hostPage', 'server', 'guestPage', 'media'].map((leg, i) => [leg, { p50: percentile(approveLegs.map((l) => l[i]!), 50), p95: percentile(approveLegs.map((l) => l[i]!), 95) }])),
  /** The other direction (no goal of its own): the guest starts sending once it has answered for what it receives. */
  hostSeesGuestMs: { p50: percentile(hostSeesGuest, 50), p95: percentile(hostSeesGuest, 95) },
  /** How long after the knock showed the host clicked Approve. */
  reactionMs,
  /** Cores kept busy by spinning processes during the runs. */
  busyCores,
  loadAverage: loadavg(),
  browser: 'chromium (Debian), headless, loopback',
  date: new Date().toISOString(),
};
console.log(`knock → host sees it:        p50 ${result.knockMs.p50.toFixed(1)} ms, p95 ${result.knockMs.p95.toFixed(1)} ms (goal p95 ≤ 50 ms)`);
console.log(`  legs (p50 / p95): ${Object.entries(result.knockLegsMs).map(([leg, v]) => `${leg} ${v.p50.toFixed(1)} / ${v.p95.toFixed(1)} ms`).join(', ')}`);
console.log(`  legs (p50 / p95): ${Object.entries(result.approveLegsMs).map(([leg, v]) => `${leg} ${v.p50.toFixed(1)} / ${v.p95.toFixed(1)} ms`).join(', ')}`);
console.log(`  of the guest page's leg, joining the MLS group from the Welcome: p50 ${result.welcomeMs.p50.toFixed(1)} ms, p95 ${result.welcomeMs.p95.toFixed(1)} ms`);
console.log(`approve → host sees the guest: p50 ${result.hostSeesGuestMs.p50.toFixed(1)} ms, p95 ${result.hostSeesGuestMs.p95.toFixed(1)} ms`);
console.log(`approve → first remote frame: p50 ${result.firstFrameMs.p50.toFixed(1)} ms, p95 ${result.firstFrameMs.p95.toFixed(1)} ms (goal p95 ≤ 200 ms; sized p50 ${result.firstFrameSizedMs.p50.toFixed(1)}, p95 ${result.firstFrameSizedMs.p95.toFixed(1)} ms)`);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = `join${reactionMs === 0 ? '-instant' : ''}${busyCores > 0 ? `-busy-${busyCores}` : ''}.json`;
writeFileSync(new URL(`./results/${file}`, import.meta.url), JSON.stringify(result, null, 2) + '\n');
await chromium.close();
await server.close();
