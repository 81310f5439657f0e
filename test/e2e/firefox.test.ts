/**
 * Firefox as a first-class browser: calls between Firefox (puppeteer-core over
 * WebDriver BiDi) and Chromium (playwright-core), both ways, and a three-person
 * call with a key rotation when someone leaves. Every check is on what a person
 * would see: moving pictures decoded through the end-to-end encryption, and
 * the same safety code on every screen.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser as FirefoxBrowser, Page as FirefoxPage } from 'puppeteer-core';
import type { Browser as ChromiumBrowser, Page as ChromiumPage } from 'playwright-core';
import { launchChromium, newPerson } from '../support/browser.js';
import { byRole, inputByName, launchFirefox, newFirefoxPerson, waitForText } from '../support/firefox.js';
import { startServer, type TestServer } from '../support/server.js';

const PASSWORD = 'correct horse battery';
/** Generous: another suite may be driving browsers on these two cores at the same time. */
const MEDIA_TIMEOUT = 40_000;

/** One person, whichever browser they use: the few things the scenarios do with a page. */
interface Person {
  readonly browser: 'chromium' | 'firefox';
  goto(url: string): Promise<void>;
  fill(role: 'textbox', name: string, value: string): Promise<void>;
  click(role: 'button', name: string): Promise<void>;
  inputValue(role: 'textbox', name: string): Promise<string>;
  waitForText(text: string, timeout?: number): Promise<void>;
  evaluate<A, R>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>;
  /** Resolves once `fn(arg)` is truthy in the page (polled). */
  waitFor<A>(fn: (arg: A) => unknown, arg: A, timeout?: number): Promise<void>;
  screenshot(path: string): Promise<void>;
  /** Uncaught errors the page threw (for failure messages). */
  readonly errors: string[];
  close(): Promise<void>;
}

function chromiumPerson(page: ChromiumPage, close: () => Promise<void>): Person {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  return {
    browser: 'chromium',
    errors,
    async goto(url) {
      await page.goto(url);
    },
    async screenshot(path) {
      await page.screenshot({ path: path as `${string}.png` });
    },
    async fill(role, name, value) {
      // The password input has no ARIA role of its own; find it by its label.
      const field = name === 'Password' ? page.getByLabel(name, { exact: true }) : page.getByRole(role, { name, exact: true });
      await field.fill(value);
    },
    async click(role, name) {
      await page.getByRole(role, { name, exact: true }).click({ timeout: 30_000 });
    },
    async inputValue(role, name) {
      return page.getByRole(role, { name, exact: true }).inputValue();
    },
    async waitForText(text, timeout = 20_000) {
      await page.getByText(text).first().waitFor({ timeout });
    },
    async evaluate(fn, arg) {
      return page.evaluate(fn as never, arg) as never;
    },
    async waitFor(fn, arg, timeout = MEDIA_TIMEOUT) {
      await page.waitForFunction(fn as never, arg, { timeout, polling: 250 });
    },
    close,
  };
}

function firefoxPerson(page: FirefoxPage, close: () => Promise<void>): Person {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  return {
    browser: 'firefox',
    errors,
    async goto(url) {
      await page.goto(url);
    },
    async screenshot(path) {
      await page.screenshot({ path: path as `${string}.png` });
    },
    async fill(role, name, value) {
      if (name === 'Password') {
        // A password input has no "textbox" role; find it by its accessible name.
        const field = await inputByName(page, name);
        await field.type(value);
        return;
      }
      await page.locator(byRole(role, name)).fill(value);
    },
    async click(role, name) {
      await page.locator(byRole(role, name)).setTimeout(30_000).click();
    },
    async inputValue(role, name) {
      const field = await page.waitForSelector(byRole(role, name));
      return field!.evaluate((el) => (el as HTMLInputElement).value);
    },
    async waitForText(text, timeout = 20_000) {
      await waitForText(page, text, timeout);
    },
    async evaluate(fn, arg) {
      return page.evaluate(fn as never, arg) as never;
    },
    async waitFor(fn, arg, timeout = MEDIA_TIMEOUT) {
      await page.waitForFunction(fn as never, { timeout, polling: 250 }, arg);
    },
    close,
  };
}

/**
 * Test-only instrumentation, run before the app's scripts (a string, so that
 * tsx adds no helpers the page lacks):
 * - `__pcs`: every RTCPeerConnection, so failure messages can show RTP counters;
 * - `__videoState(selector)`: what a <video> shows: size, clock, frames decoded
 *   by the RTP receiver feeding it, and a fingerprint of its current picture.
 * Frame counters of the element itself are useless in Firefox:
 * getVideoPlaybackQuality() counts nothing for MediaStream sources,
 * mozPaintedFrames stayed 0 and requestVideoFrameCallback stopped firing for
 * remote videos that visibly played. So "moving" = decoded frames and a picture that changes.
 */
const PAGE_INSTRUMENTATION = `(() => {
  const Original = window.RTCPeerConnection;
  const pcs = (window.__pcs = []);
  if (Original) {
    window.RTCPeerConnection = new Proxy(Original, {
      construct(target, args, newTarget) {
        const pc = Reflect.construct(target, args, newTarget);
        pcs.push(pc);
        return pc;
      },
    });
  }
  let canvas;
  window.__videoState = async (selector) => {
    const video = document.querySelector(selector);
    if (!video) return undefined;
    const stream = video.srcObject;
    const track = stream && stream.getVideoTracks()[0];
    let decoded;
    const receiver = pcs.flatMap((pc) => (pc.signalingState === 'closed' ? [] : pc.getReceivers())).find((r) => track && r.track === track);
    if (receiver) {
      (await receiver.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp') decoded = s.framesDecoded;
      });
    }
    let picture = 0;
    if (video.videoWidth > 0) {
      canvas = canvas || Object.assign(document.createElement('canvas'), { width: 32, height: 24 });
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(video, 0, 0, 32, 24);
      const data = ctx.getImageData(0, 0, 32, 24).data;
      picture = 2166136261;
      for (let i = 0; i < data.length; i++) picture = Math.imul(picture ^ data[i], 16777619) >>> 0;
    }
    return {
      width: video.videoWidth,
      height: video.videoHeight,
      paused: video.paused,
      time: video.currentTime,
      decoded,
      picture,
      tracks: stream ? stream.getTracks().map((t) => t.kind + ':' + t.readyState + (t.muted ? ':muted' : '')).join(',') : 'no stream',
    };
  };
})();`;

interface VideoState {
  width: number;
  height: number;
  paused: boolean;
  time: number;
  /** Frames decoded by the RTP receiver feeding this <video> (undefined: none found). */
  decoded: number | undefined;
  /** Fingerprint of the picture shown now. */
  picture: number;
  tracks: string;
}
type Instrumented = Window & { __videoState(selector: string): Promise<VideoState | undefined> };

// ------------------------------------------------------------------ in-page probes (self-contained: they run in the browser)

function sampleVideo(selector: string): Promise<VideoState | undefined> {
  return (window as unknown as Instrumented).__videoState(selector);
}

/** Whether the <video> moved from `a` to `b`: it has a picture, its clock and decoded frames advanced, and the picture changed. */
function moved(a: VideoState | undefined, b: VideoState | undefined): boolean {
  return !!a && !!b && b.width > 0 && !b.paused && b.time > a.time && (b.decoded ?? 0) > (a.decoded ?? 0) && b.picture !== a.picture;
}

/** Video RTP counters of every RTCPeerConnection of the page (recorded by PAGE_INSTRUMENTATION), for failure messages. */
async function rtpStats(): Promise<unknown> {
  const pcs = (window as unknown as { __pcs?: RTCPeerConnection[] }).__pcs ?? [];
  const out: unknown[] = [];
  out.push({ alerts: [...document.querySelectorAll('[role="alert"]')].map((e) => e.textContent).join(' | ') });
  for (const pc of pcs) {
    out.push({
      pc: `${pc.signalingState}/${pc.iceConnectionState}/${pc.connectionState}`,
      mids: pc.getTransceivers().map((t) => `${t.mid}:${t.direction}:${t.currentDirection}`).join(','),
    });
    const report = await pc.getStats();
    report.forEach((s: Record<string, unknown>) => {
      if (s.kind !== 'video' || (s.type !== 'inbound-rtp' && s.type !== 'outbound-rtp')) return;
      const keys = ['type', 'ssrc', 'packetsReceived', 'packetsLost', 'framesReceived', 'framesDecoded', 'keyFramesDecoded', 'framesDropped', 'pliCount', 'firCount', 'nackCount', 'framesEncoded', 'keyFramesEncoded', 'packetsSent', 'frameWidth'];
      out.push(Object.fromEntries(keys.filter((k) => k in s).map((k) => [k, s[k]])));
    });
  }
  return out;
}

/** The safety code on screen, once there is one. */
function safetyCodeOnScreen(): string | undefined {
  const text = document.querySelector('output[aria-label="Safety code"]')?.textContent?.trim();
  return text && /^[0-9 ]+$/.test(text) ? text : undefined;
}

// ------------------------------------------------------------------ steps of the flow

const videoOf = (name: string) => `video[aria-label="Video of ${name}"]`;

async function signUpAndCreateLink(p: Person, base: string, username: string): Promise<string> {
  await p.goto(`${base}/`);
  await p.fill('textbox', 'Username', username);
  await p.fill('textbox', 'Password', PASSWORD);
  await p.click('button', 'Sign up');
  await p.click('button', 'Create Link');
  const link = await p.inputValue('textbox', 'Call link');
  assert.match(link, new RegExp(`^${base}/join/[A-Za-z0-9_-]{22}#k=[A-Za-z0-9_-]{43}&h=[A-Za-z0-9_-]{43}$`));
  return link;
}

async function hostEnters(p: Person, link: string): Promise<void> {
  await p.goto(link);
  await p.click('button', 'Join');
  await p.waitFor(() => !!document.querySelector('output[aria-label="Safety code"]'), null, 20_000);
}

async function guestKnocks(p: Person, link: string, name: string, hostName: string): Promise<void> {
  await p.goto(link);
  await p.fill('textbox', 'Name', name);
  await p.click('button', 'Continue');
  await p.click('button', 'Join');
  await p.waitForText(`Waiting for ${hostName} to let you in`);
}

/** Resolves once the <video> shows moving pictures (two samples half a second apart differ as `moved` requires). */
async function waitForPlaying(p: Person, selector: string, timeout = MEDIA_TIMEOUT): Promise<void> {
  const deadline = Date.now() + timeout;
  let last: VideoState | undefined;
  for (;;) {
    const a = await p.evaluate(sampleVideo, selector);
    await new Promise((r) => setTimeout(r, 500));
    last = await p.evaluate(sampleVideo, selector);
    if (moved(a, last)) return;
    if (Date.now() > deadline) throw new Error(`${selector} not playing within ${timeout} ms; last: ${JSON.stringify(last)}`);
  }
}

/** With E2E_SCREENSHOT_DIR set, a failing check leaves a screenshot of the page there. */
async function screenshotOnFailure(p: Person, label: string): Promise<void> {
  const dir = process.env.E2E_SCREENSHOT_DIR;
  if (dir) await p.screenshot(`${dir}/${label}.png`).catch(() => {});
}

/** Every pair sees the other's video moving; on failure, says which pairs do not and what their pages know. */
async function allSeeEachOther(people: { person: Person; name: string }[]): Promise<void> {
  const pairs = people.flatMap((viewer) => people.filter((o) => o !== viewer).map((other) => ({ viewer, other })));
  const results = await Promise.allSettled(pairs.map(({ viewer, other }) => waitForPlaying(viewer.person, videoOf(other.name))));
  const failures: string[] = [];
  for (const [i, r] of results.entries()) {
    if (r.status === 'fulfilled') continue;
    const { viewer, other } = pairs[i]!;
    const video = await viewer.person.evaluate(sampleVideo, videoOf(other.name)).catch(() => undefined);
    const rtp = await viewer.person.evaluate(rtpStats, undefined).catch((e: Error) => e.message);
    await screenshotOnFailure(viewer.person, `${viewer.name}-sees-${other.name}`);
    failures.push(
      `${viewer.name} (${viewer.person.browser}) does not see ${other.name} playing: ${String(r.reason)}; video: ${JSON.stringify(video)}; rtp: ${JSON.stringify(rtp)}; page errors: ${viewer.person.errors.join(' | ') || 'none'}`,
    );
  }
  assert.equal(failures.length, 0, failures.join('\n'));
}

/**
 * Waits until every page shows the same safety code (other than `previous`,
 * when given), and returns it. Codes differ for a moment whenever the key
 * changes, as the new key reaches one page after another.
 */
async function commonSafetyCode(people: Person[], { previous, timeoutMs = 20_000 }: { previous?: string; timeoutMs?: number } = {}): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let codes: (string | undefined)[] = [];
  while (Date.now() < deadline) {
    codes = await Promise.all(people.map((p) => p.evaluate(safetyCodeOnScreen, undefined)));
    if (codes[0] && codes[0] !== previous && codes.every((c) => c === codes[0])) return codes[0];
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`no common safety code${previous ? ` other than ${previous}` : ''} within ${timeoutMs} ms: ${JSON.stringify(codes)}`);
}

/** Samples a video once a second for `ms` and fails unless it moved (see `moved`) in every one of those seconds. */
async function keepsPlaying(p: Person, selector: string, ms: number): Promise<void> {
  const samples: (VideoState | undefined)[] = [];
  for (let t = 0; t <= ms; t += 1000) {
    const s = await p.evaluate(sampleVideo, selector);
    assert.ok(s, `${selector} is gone`);
    samples.push(s);
    if (t < ms) await new Promise((r) => setTimeout(r, 1000));
  }
  for (let i = 1; i < samples.length; i++) {
    const [a, b] = [samples[i - 1]!, samples[i]!];
    if (!moved(a, b)) await screenshotOnFailure(p, `stalled-${selector.replace(/\W+/g, '-')}`);
    assert.ok(moved(a, b), `${selector} stalled between seconds ${i - 1} and ${i}: ${JSON.stringify(samples)}`);
  }
}

function noPageErrors(people: Person[]): void {
  for (const p of people) assert.deepEqual(p.errors, [], `uncaught errors in a ${p.browser} page`);
}

// ------------------------------------------------------------------ the scenarios

describe('Firefox with Chromium', { timeout: 240_000 }, () => {
  let server: TestServer;
  let firefox: FirefoxBrowser;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let chromiumBrowser: ChromiumBrowser;
  const open: Person[] = [];

  async function inFirefox(): Promise<Person> {
    const { context, page } = await newFirefoxPerson(firefox);
    await page.evaluateOnNewDocument(PAGE_INSTRUMENTATION);
    const person = firefoxPerson(page, () => context.close());
    open.push(person);
    return person;
  }
  async function inChromium(): Promise<Person> {
    const { context, page } = await newPerson(chromiumBrowser, server.url);
    await context.addInitScript(PAGE_INSTRUMENTATION);
    const person = chromiumPerson(page, () => context.close());
    open.push(person);
    return person;
  }
  async function closeAll(): Promise<void> {
    await Promise.allSettled(open.splice(0).map((p) => p.close()));
  }

  before(async () => {
    server = await startServer();
    [firefox, chromium] = await Promise.all([launchFirefox(), launchChromium()]);
    chromiumBrowser = chromium.browser;
  });
  after(async () => {
    await closeAll();
    await Promise.allSettled([firefox?.close(), chromium?.close()]);
    await server?.close();
  });

  for (const [hostBrowser, guestBrowser, hostName, guestName] of [
    ['Chromium', 'Firefox', 'ana', 'Bob'],
    ['Firefox', 'Chromium', 'fiona', 'Carl'],
  ] as const) {
    it(`host in ${hostBrowser}, guest in ${guestBrowser}: they see each other and their safety codes match`, async () => {
      const open = (b: typeof hostBrowser) => (b === 'Chromium' ? inChromium() : inFirefox());
      const host = await open(hostBrowser);
      const guest = await open(guestBrowser);
      const link = await signUpAndCreateLink(host, server.url, hostName);
      await hostEnters(host, link);
      await guestKnocks(guest, link, guestName, hostName);
      await host.click('button', `Approve ${guestName}`);
      await allSeeEachOther([
        { person: host, name: hostName },
        { person: guest, name: guestName },
      ]);
      await commonSafetyCode([host, guest]);
      // Chat and a reaction, end-to-end encrypted, across the two browsers.
      await guest.click('button', 'Chat');
      await host.click('button', 'Chat');
      await host.fill('textbox', 'Message', `Hello from ${hostBrowser}`);
      await host.click('button', 'Send');
      await guest.waitForText(`Hello from ${hostBrowser}`);
      await guest.click('button', 'React 👍');
      await host.waitFor((label) => document.querySelector(`[aria-label="${label}"]`) !== null, `${guestName} reacted 👍`);
      noPageErrors([host, guest]);
      await closeAll();
    });
  }

  it('three people see each other; after one leaves, the key rotates and the other two still see each other', async () => {
    const host = await inFirefox();
    const guest = await inChromium();
    const third = await inFirefox();
    const link = await signUpAndCreateLink(host, server.url, 'gwen');
    await hostEnters(host, link);
    await guestKnocks(guest, link, 'Hugo', 'gwen');
    await host.click('button', 'Approve Hugo');
    await guestKnocks(third, link, 'Iris', 'gwen');
    await host.click('button', 'Approve Iris');
    const everyone = [
      { person: host, name: 'gwen' },
      { person: guest, name: 'Hugo' },
      { person: third, name: 'Iris' },
    ];
    await allSeeEachOther(everyone);
    const before = await commonSafetyCode([host, guest, third]);

    await third.click('button', 'Leave');
    await third.waitForText('You left the call.');
    await host.waitFor((sel) => !document.querySelector(sel), videoOf('Iris'), 20_000);
    await guest.waitFor((sel) => !document.querySelector(sel), videoOf('Iris'), 20_000);
    // Iris's tile can go before the new key arrives: wait for a new common code (the rotation).
    const afterLeave = await commonSafetyCode([host, guest], { previous: before });

    // Receivers keep the old epoch ~5 s: pictures still moving 8 s on prove the new key carries them.
    await Promise.all([keepsPlaying(host, videoOf('Hugo'), 8000), keepsPlaying(guest, videoOf('gwen'), 8000)]);
    assert.equal(await commonSafetyCode([host, guest], { timeoutMs: 2000 }), afterLeave, 'no further key change');
    noPageErrors([host, guest, third]);
    await closeAll();
  });
});
