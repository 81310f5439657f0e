/**
 * Two people in a call across the network lab, and what each of them sees of the other.
 *
 * `linkcallCall`: host and guest pages in their own namespaces join by link through the real
 * server, via the product's UI. `directCall`: the same two namespaces, the same synthetic
 * camera, connected peer to peer (one RTCPeerConnection each, VP8, offer and answer carried
 * by the test) — the anchor a call through the SFU is compared with. Both record every page's
 * WebRTC stats once a second (`Recorder`); `quality()` turns a window of those into what a
 * person notices, per direction.
 */
import type { Browser, Page } from 'playwright-core';
import { cameraClockAsHardware, newPerson, waitForPlayingVideo } from './browser.js';
import { CLOCK_CAMERA, LAB_STATS, type InboundStats, type LabStats, type OutboundStats } from './clock-camera.js';
import { guestKnocks, hostEnters, signUpAndCreateLink } from './flow.js';
import type { LabServer, NetLab } from './netlab.js';
import { recordPeerConnections } from './peer-connections.js';

export type Person = 'host' | 'guest';
export const PEOPLE: Person[] = ['host', 'guest'];

export interface LabCall {
  system: 'linkcall' | 'direct';
  pages: Record<Person, Page>;
  /** linkcall only: the host's Approve click → the guest's page presents the host's first video frame, ms. */
  approveToFirstFrameMs?: number;
  close(): Promise<void>;
}

const REMOTE_VIDEO = 'video[aria-label^="Video of "]';

/**
 * Page time (ms since the epoch, one clock for every page on this machine) of the last click on
 * an Approve button, and of the first frame of another person's video presented for compositing
 * (requestVideoFrameCallback), as bench/join.ts counts it. Plain JavaScript: runs before the app.
 */
const FIRST_FRAME = `
  const now = () => performance.timeOrigin + performance.now();
  document.addEventListener('click', (e) => {
    const b = e.target && e.target.closest && e.target.closest('button');
    if (b && (b.getAttribute('aria-label') || b.textContent || '').startsWith('Approve')) window.__approvedAt = now();
  }, true);
  const watched = new WeakSet();
  new MutationObserver(() => {
    for (const v of document.querySelectorAll(${JSON.stringify(REMOTE_VIDEO)})) {
      if (watched.has(v)) continue;
      watched.add(v);
      v.requestVideoFrameCallback((_, meta) => { window.__firstFrameAt ??= performance.timeOrigin + meta.presentationTime; });
    }
  }).observe(document, { subtree: true, childList: true });
`;

async function browsers(lab: NetLab, origin: string, chromiumArgs: string[] = []): Promise<Record<Person, Browser>> {
  const [host, guest] = await Promise.all(PEOPLE.map((p) => lab.launchChromium(p, origin, chromiumArgs)));
  return { host: host!, guest: guest! };
}

let accounts = 0;

export interface LabCallOptions {
  /** Runs once the guest has knocked, just before the host approves (e.g. to note the time). */
  beforeApprove?: (pages: Record<Person, Page>) => Promise<void>;
  /** More Chromium flags for both browsers (e.g. trusting the lab TURN server's certificate). */
  chromiumArgs?: string[];
}

/** Host and guest (lab hosts 'host' and 'guest') in a linkcall call through `server`; resolves once each sees the other's video playing. */
export async function linkcallCall(lab: NetLab, server: LabServer, timeoutMs = 60_000, options: LabCallOptions = {}): Promise<LabCall> {
  const b = await browsers(lab, server.url, options.chromiumArgs);
  const close = async () => void (await Promise.all(PEOPLE.map((p) => b[p].close().catch(() => {}))));
  let hostPage: Page | undefined;
  let guestPage: Page | undefined;
  try {
    const host = await newPerson(b.host, server.url);
    const guest = await newPerson(b.guest, server.url);
    hostPage = host.page;
    guestPage = guest.page;
    await host.context.addInitScript({ content: CLOCK_CAMERA });
    await guest.context.addInitScript({ content: CLOCK_CAMERA });
    await recordPeerConnections(host.context);
    await recordPeerConnections(guest.context);
    await host.context.addInitScript({ content: FIRST_FRAME });
    await guest.context.addInitScript({ content: FIRST_FRAME });
    host.page.setDefaultTimeout(timeoutMs);
    guest.page.setDefaultTimeout(timeoutMs);
    const link = await signUpAndCreateLink(host.page, `labhost${process.pid}x${++accounts}`, 'Lab');
    await hostEnters(host.page, link);
    await guestKnocks(guest.page, link, 'Guest');
    await options.beforeApprove?.({ host: host.page, guest: guest.page });
    await host.page.getByRole('button', { name: 'Approve Guest' }).click();
    await Promise.all([waitForPlayingVideo(host.page, REMOTE_VIDEO, timeoutMs), waitForPlayingVideo(guest.page, REMOTE_VIDEO, timeoutMs)]);
    const approvedAt = (await host.page.evaluate('window.__approvedAt')) as number | undefined;
    const firstFrameAt = (await guest.page.evaluate('window.__firstFrameAt')) as number | undefined;
    const approveToFirstFrameMs = approvedAt && firstFrameAt ? firstFrameAt - approvedAt : undefined;
    return { system: 'linkcall', pages: { host: host.page, guest: guest.page }, approveToFirstFrameMs, close };
  } catch (err) {
    // Say what each page's connections were doing, not only that a wait ran out.
    if (err instanceof Error && hostPage && guestPage) err.message += `\nhost: ${await mediaState(hostPage)}\nguest: ${await mediaState(guestPage)}`;
    await close();
    throw err;
  }
}

/** A page's connections (state, transceivers, packets and frames per stream) and its videos, in one line. */
async function mediaState(page: Page): Promise<string> {
  return page
    .evaluate(async () => {
      const pcs = ((window as unknown as { __pcs?: RTCPeerConnection[] }).__pcs ?? []).map(async (pc) => {
        const streams: string[] = [];
        (await pc.getStats()).forEach((s: any) => {
          if (s.type === 'inbound-rtp') streams.push(`in ${s.kind} ${s.packetsReceived}p ${s.framesDecoded ?? '-'}f pli ${s.pliCount ?? '-'} nack ${s.nackCount ?? '-'}`);
          if (s.type === 'outbound-rtp') streams.push(`out ${s.kind}${s.rid ? ` ${s.rid}` : ''} ${s.packetsSent}p ${s.framesEncoded ?? '-'}f`);
        });
        const transceivers = pc.getTransceivers().map((t) => `${t.mid}:${t.currentDirection ?? t.direction}:${t.receiver.track.readyState}${t.receiver.track.muted ? '/muted' : ''}`);
        return `pc ${pc.connectionState}/${pc.signalingState} [${transceivers.join(' ')}] {${streams.join('; ')}}`;
      });
      const videos = [...document.querySelectorAll('video')].map(
        (v) => `${v.getAttribute('aria-label')}: ${((v.srcObject as MediaStream | null)?.getTracks() ?? []).map((t) => `${t.kind}/${t.readyState}${t.muted ? '/muted' : ''}`).join(',') || 'no tracks'}`,
      );
      const status = document.querySelector('[role=status], [role=alert]')?.textContent ?? '';
      return `${(await Promise.all(pcs)).join(' | ')} || ${videos.join(' | ')} || status: ${status.slice(0, 200)}`;
    })
    .catch((e: Error) => `unreadable (${e.message})`);
}

/**
 * A group call through `server`: lab host 'host' creates the link and enters, then each of
 * `guests` (lab host names, shown by that name capitalised) knocks and is let in; resolves once
 * every page plays everyone else's video. Pages by lab host name.
 *
 * The pages use Chromium's fake camera (paced as hardware: cameraClockAsHardware), not the clock
 * camera, and read no delay: that camera draws on the page's main thread and reading others'
 * frames back is a synchronous copy there. With three browsers on two cores those main threads
 * stalled for up to 2.4 s, and a person's camera then gave 1-5 frames a second (2026-12-07).
 */
export async function linkcallGroupCall(lab: NetLab, server: LabServer, guests: string[], timeoutMs = 90_000): Promise<{ pages: Record<string, Page>; close(): Promise<void> }> {
  const names = ['host', ...guests];
  const launched = await Promise.all(names.map((n) => lab.launchChromium(n, server.url)));
  const close = async () => void (await Promise.all(launched.map((b) => b.close().catch(() => {}))));
  try {
    const pages: Record<string, Page> = {};
    for (const [i, n] of names.entries()) {
      const person = await newPerson(launched[i]!, server.url);
      await recordPeerConnections(person.context);
      person.page.setDefaultTimeout(timeoutMs);
      pages[n] = person.page;
    }
    const link = await signUpAndCreateLink(pages.host!, `labhost${process.pid}x${++accounts}`, 'Lab');
    await hostEnters(pages.host!, link);
    for (const g of guests) {
      const display = g[0]!.toUpperCase() + g.slice(1);
      await guestKnocks(pages[g]!, link, display);
      await pages.host!.getByRole('button', { name: `Approve ${display}` }).click();
    }
    await Promise.all(
      names.map(async (n) => {
        const page = pages[n]!;
        await page.waitForFunction(
          (want) => [...document.querySelectorAll<HTMLVideoElement>('video[aria-label^="Video of "]')].filter((v) => v.readyState >= 2 && v.videoWidth > 0).length >= want,
          names.length - 1,
          { timeout: timeoutMs },
        );
      }),
    );
    cameraClockAsHardware();
    return { pages, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The page side of a direct call: camera and microphone on one sendrecv connection, VP8 only,
 * remote media in a <video>. The offerer adds its tracks; the answerer puts its own on the
 * transceivers the offer made (`ANSWER`).
 */
const DIRECT_SETUP = (offerer: boolean) => `(async () => {
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.__direct = pc;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true },
    video: { width: { ideal: 640 }, height: { ideal: 480 } },
  });
  window.__stream = stream;
  if (${offerer}) for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendrecv', streams: [stream] });
  const codecs = RTCRtpReceiver.getCapabilities('video').codecs;
  const vp8 = codecs.filter((c) => c.mimeType === 'video/VP8');
  const rtx = codecs.filter((c) => c.mimeType === 'video/rtx');
  for (const t of pc.getTransceivers()) if (t.sender.track && t.sender.track.kind === 'video') t.setCodecPreferences([...vp8, ...rtx]);
  const video = document.createElement('video');
  video.autoplay = true; video.playsInline = true;
  video.setAttribute('aria-label', 'Video of the other person');
  document.body.append(video);
  const remote = new MediaStream();
  pc.ontrack = (e) => { remote.addTrack(e.track); video.srcObject = remote; video.play().catch(() => {}); };
})()`;

const ANSWER = (offer: unknown) => `(async () => {
  const pc = window.__direct;
  await pc.setRemoteDescription(${JSON.stringify(offer)});
  for (const t of pc.getTransceivers()) {
    const track = window.__stream.getTracks().find((x) => x.kind === t.receiver.track.kind);
    await t.sender.replaceTrack(track);
    t.sender.setStreams(window.__stream);
    t.direction = 'sendrecv';
  }
  await pc.setLocalDescription();
})()`;

/** Local description once ICE gathering is complete (no trickling: the test carries it). */
const GATHERED = `new Promise((resolve) => {
  const pc = window.__direct;
  const done = () => resolve({ type: pc.localDescription.type, sdp: pc.localDescription.sdp });
  if (pc.iceGatheringState === 'complete') return done();
  pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && done());
})`;

/** Host and guest connected peer to peer through the same lab links, no server in the media path. */
export async function directCall(lab: NetLab, origin: string, timeoutMs = 60_000): Promise<LabCall> {
  const b = await browsers(lab, origin);
  const close = async () => void (await Promise.all(PEOPLE.map((p) => b[p].close().catch(() => {}))));
  try {
    const pages = {} as Record<Person, Page>;
    for (const p of PEOPLE) {
      const { page } = await newPerson(b[p], origin);
      await page.addInitScript({ content: CLOCK_CAMERA });
      // A blank page at the lab origin (treated as secure) without asking the server for it.
      await page.route('**/direct-call', (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>Direct call</title><body></body>' }));
      await page.goto('/direct-call');
      await page.evaluate(DIRECT_SETUP(p === 'host'));
      pages[p] = page;
    }
    await pages.host.evaluate('window.__direct.setLocalDescription()');
    const offer = await pages.host.evaluate(GATHERED);
    await pages.guest.evaluate(ANSWER(offer));
    const answer = await pages.guest.evaluate(GATHERED);
    await pages.host.evaluate(`window.__direct.setRemoteDescription(${JSON.stringify(answer)})`);
    await Promise.all(PEOPLE.map((p) => waitForPlayingVideo(pages[p], REMOTE_VIDEO, timeoutMs)));
    return { system: 'direct', pages, close };
  } catch (err) {
    await close();
    throw err;
  }
}

export interface Sample {
  /** Epoch ms when the stats were read. */
  t: number;
  /** Person, or in a group call the lab host name. */
  person: string;
  stats: LabStats;
}

/** Reads every page's stats and presented frames once a second until stopped. */
export class Recorder {
  readonly samples: Sample[] = [];
  #timer?: NodeJS.Timeout;
  #running?: Promise<void>;

  constructor(private readonly call: { pages: Record<string, Page> }) {}

  start(): void {
    const tick = async () => {
      await Promise.all(
        Object.keys(this.call.pages).map(async (person) => {
          const stats = (await this.call.pages[person]!.evaluate(LAB_STATS).catch(() => undefined)) as LabStats | undefined;
          if (stats) this.samples.push({ t: Date.now(), person, stats });
        }),
      );
    };
    void (this.#running = tick());
    this.#timer = setInterval(() => void (this.#running = tick()), 1000);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
}

export interface Quality {
  /** Frames decoded per second of the other person's video. */
  fps: number;
  /** The resolution most frames came in at, e.g. "640x480". */
  resolution: string;
  freezeCount: number;
  freezeSeconds: number;
  /** Glass-to-glass delay over the window's frames, ms (NaN when none could be read). */
  delayMedianMs: number;
  delayP95Ms: number;
  /** Frames whose sent time was read back (out of those presented). */
  framesTimed: number;
  /** Concealed audio samples as a percentage of received samples. */
  audioConcealedPercent: number;
  videoLossPercent: number;
  /** The other person's video arriving, kbit/s. */
  videoKbps: number;
  /** The video jitter buffer's mean delay, ms. */
  jitterBufferMs: number;
  nacks: number;
  plis: number;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

type Inbound = InboundStats;
const inbound = (s: Sample, kind: 'audio' | 'video') => s.stats.stats.filter((x): x is Inbound => x.type === 'in' && x.kind === kind);
const outbound = (s: Sample) => s.stats.stats.filter((x): x is OutboundStats => x.type === 'out');

/** Sum over a sample's inbound streams of `kind` of end − start (streams new since `start` count from 0). */
function delta(start: Sample | undefined, end: Sample, kind: 'audio' | 'video', field: keyof Inbound): number {
  const before = new Map(start ? inbound(start, kind).map((x) => [x.id, x]) : []);
  return inbound(end, kind).reduce((sum, x) => sum + ((x[field] as number) - ((before.get(x.id)?.[field] as number | undefined) ?? 0)), 0);
}

/** What `receiver` saw of the other person between `from` and `to` (epoch ms). */
export function quality(samples: Sample[], receiver: Person, from: number, to: number): Quality {
  const mine = samples.filter((s) => s.person === receiver);
  const inWindow = mine.filter((s) => s.t >= from && s.t <= to);
  const start = [...mine].reverse().find((s) => s.t <= from) ?? inWindow[0];
  const end = inWindow.at(-1);
  const empty: Quality = { fps: 0, resolution: '-', freezeCount: 0, freezeSeconds: 0, delayMedianMs: NaN, delayP95Ms: NaN, framesTimed: 0, audioConcealedPercent: NaN, videoLossPercent: NaN, videoKbps: 0, jitterBufferMs: NaN, nacks: 0, plis: 0 };
  if (!start || !end || end.t <= start.t) return empty;
  const seconds = (end.t - start.t) / 1000;
  const frames = delta(start, end, 'video', 'framesDecoded');
  // Resolution, weighted by frames decoded per second at it.
  const byResolution = new Map<string, number>();
  const series = mine.filter((s) => s.t >= start.t && s.t <= end.t);
  for (let i = 1; i < series.length; i++) {
    const streams = inbound(series[i]!, 'video');
    const prev = new Map(inbound(series[i - 1]!, 'video').map((x) => [x.id, x.framesDecoded]));
    for (const x of streams) {
      const n = x.framesDecoded - (prev.get(x.id) ?? 0);
      if (n > 0 && x.width) byResolution.set(`${x.width}x${x.height}`, (byResolution.get(`${x.width}x${x.height}`) ?? 0) + n);
    }
  }
  const delays = series.slice(1).flatMap((s) => s.stats.g2g.map(([sent, shown]) => shown - sent));
  const lost = delta(start, end, 'video', 'packetsLost');
  const received = delta(start, end, 'video', 'packetsReceived');
  const samplesIn = delta(start, end, 'audio', 'samples');
  const emitted = delta(start, end, 'video', 'jitterBufferEmitted');
  return {
    fps: frames / seconds,
    resolution: [...byResolution.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '-',
    freezeCount: delta(start, end, 'video', 'freezeCount'),
    freezeSeconds: delta(start, end, 'video', 'freezeSeconds'),
    delayMedianMs: percentile(delays, 50),
    delayP95Ms: percentile(delays, 95),
    framesTimed: delays.length,
    audioConcealedPercent: samplesIn > 0 ? (100 * delta(start, end, 'audio', 'concealed')) / samplesIn : NaN,
    // packetsLost is cumulative and falls when late or repaired packets arrive after all: a window can show fewer than none.
    videoLossPercent: lost + received > 0 ? Math.max(0, (100 * lost) / (lost + received)) : NaN,
    videoKbps: (delta(start, end, 'video', 'bytes') * 8) / seconds / 1000,
    jitterBufferMs: emitted > 0 ? (1000 * delta(start, end, 'video', 'jitterBufferDelay')) / emitted : NaN,
    nacks: delta(start, end, 'video', 'nacks'),
    plis: delta(start, end, 'video', 'plis'),
  };
}

/**
 * Each video stream `receiver` got between `from` and `to` (epoch ms), one entry per inbound
 * stream (in a group call, one per other person): frames per second, the resolution most frames
 * came in at, time frozen, kbit/s.
 */
export function perStream(samples: Sample[], receiver: string, from: number, to: number): { from: string; fps: number; resolution: string; freezeSeconds: number; kbps: number }[] {
  const mine = samples.filter((s) => s.person === receiver && s.t >= from && s.t <= to);
  const first = mine[0];
  const last = mine.at(-1);
  if (!first || !last || last.t <= first.t) return [];
  const seconds = (last.t - first.t) / 1000;
  return inbound(last, 'video').map((x) => {
    const before = inbound(first, 'video').find((y) => y.id === x.id);
    const byResolution = new Map<string, number>();
    for (let i = 1; i < mine.length; i++) {
      const now = inbound(mine[i]!, 'video').find((y) => y.id === x.id);
      const prev = inbound(mine[i - 1]!, 'video').find((y) => y.id === x.id);
      const n = (now?.framesDecoded ?? 0) - (prev?.framesDecoded ?? 0);
      if (now && n > 0 && now.width) byResolution.set(`${now.width}x${now.height}`, (byResolution.get(`${now.width}x${now.height}`) ?? 0) + n);
    }
    return {
      from: x.from,
      fps: (x.framesDecoded - (before?.framesDecoded ?? 0)) / seconds,
      resolution: [...byResolution.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '-',
      freezeSeconds: x.freezeSeconds - (before?.freezeSeconds ?? 0),
      kbps: ((x.bytes - (before?.bytes ?? 0)) * 8) / seconds / 1000,
    };
  });
}

/**
 * The largest picture `sender` sent between `from` and `to` (epoch ms): per second the largest
 * layer whose bytes grew, then the size most seconds had ("-" if none). An encoder short of CPU
 * sends smaller layers than its camera's size; no receiver can get more.
 */
export function largestSent(samples: Sample[], sender: string, from: number, to: number): string {
  const mine = samples.filter((s) => s.person === sender && s.t >= from && s.t <= to);
  const seconds = new Map<string, number>();
  for (let i = 1; i < mine.length; i++) {
    const before = new Map(outbound(mine[i - 1]!).map((x) => [x.id, x.bytes]));
    const sending = outbound(mine[i]!).filter((x) => x.width > 0 && x.bytes > (before.get(x.id) ?? 0));
    const top = sending.sort((a, b) => b.width * b.height - a.width * a.height)[0];
    if (top) seconds.set(`${top.width}x${top.height}`, (seconds.get(`${top.width}x${top.height}`) ?? 0) + 1);
  }
  return [...seconds].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '-';
}

/** Per-second frame rate and height `receiver` got, as [epoch ms, fps, height]. */
export function frameRateSeries(samples: Sample[], receiver: Person): [number, number, number][] {
  const mine = samples.filter((s) => s.person === receiver);
  const out: [number, number, number][] = [];
  for (let i = 1; i < mine.length; i++) {
    const frames = delta(mine[i - 1], mine[i]!, 'video', 'framesDecoded');
    const top = inbound(mine[i]!, 'video').sort((a, b) => b.framesDecoded - a.framesDecoded)[0];
    out.push([mine[i]!.t, (frames * 1000) / (mine[i]!.t - mine[i - 1]!.t), top?.height ?? 0]);
  }
  return out;
}

/** Seconds from `from` until `ok` held for three samples in a row (NaN if never before `to`). */
export function secondsUntil(series: [number, number, number][], from: number, to: number, ok: (fps: number, height: number) => boolean): number {
  const after = series.filter(([t]) => t > from && t <= to);
  for (let i = 0; i + 2 < after.length; i++) {
    if (after.slice(i, i + 3).every(([, fps, h]) => ok(fps, h))) return Math.max(0, (after[i]![0] - 1000 - from) / 1000);
  }
  return NaN;
}

/** What the sending side's encoder reported last in the window (resolution and what limits it). */
export function sender(samples: Sample[], person: Person, at: number): { resolution: string; limitation: string } {
  const s = [...samples].reverse().find((x) => x.person === person && x.t <= at);
  const out = (s ? outbound(s) : []).sort((a, b) => b.bytes - a.bytes)[0];
  return { resolution: out ? `${out.width}x${out.height}` : '-', limitation: out?.limitation ?? '-' };
}
