/** Headless Debian Chromium with a fake camera and microphone, one context per person. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before } from 'node:test';
import { startServer, type TestServer, type TestServerOptions } from './server.js';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Headless Debian Chromium on this closed network, with a fake camera and microphone. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  // This machine has no GPU, and Chromium's GPU process stands in for one in software. Composited
  // in software instead (what Chrome does where it cannot use the GPU), the group test's pages
  // with one core kept busy captured 27-30 frames/s and the bots got 25-31 of them, where with the
  // stand-in GPU they captured 23-26 and the bots got 19-22 (four runs each, side by side; a later
  // run of the whole suite captured 23 with it too).
  '--disable-gpu-compositing',
];

/**
 * Makes Chromium's fake camera keep time the way a real camera does, for tests that measure frame
 * rates on a busy machine. Returns how many of the browsers' cameras it changed.
 *
 * A real camera is a clock in hardware whose driver queues the frames it captures, so a capture
 * thread that wakes late still gets every frame. Chromium's fake camera is a timer on the main thread
 * of the browser's video capture service, which skips a frame whenever that thread wakes more than a
 * frame late (FakeVideoCaptureDevice::OnNextFrameDue). With one of this machine's two cores busy, the
 * group test's pages captured 23-26 frames/s of 30 that way, and the bots got 23-26; with this, they
 * captured 29-30 and the bots got 28 (side by side). This gives only that thread (~1 % of a core)
 * real-time priority, standing for the camera's hardware: the rest of the capture service, the
 * encoder, the pages, the compositor and the IPC between them keep the priority they had. Needs
 * root (CAP_SYS_NICE), as the network lab does.
 */
export function cameraClockAsHardware(): number {
  let changed = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    if (!cmdline.includes('--utility-sub-type=video_capture.mojom.VideoCaptureService')) continue;
    // The process's main thread only (its thread id is the process id): round-robin, lowest real-time priority.
    execFileSync('chrt', ['--rr', '--pid', '1', pid]);
    changed++;
  }
  return changed;
}

export async function launchChromium(): Promise<{ browser: Browser; close(): Promise<void> }> {
  // Playwright gives every launch a fresh, empty profile directory of its own.
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: CHROMIUM_ARGS,
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

export async function newPerson(
  browser: Browser,
  baseURL: string,
  options: { locale?: string; viewport?: { width: number; height: number } } = {},
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ baseURL, permissions: ['camera', 'microphone'], ...options });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseURL });
  const page = await context.newPage();
  return { context, page };
}

/**
 * Wait until a <video> shows moving pictures: frames decoded and time advancing between two
 * polls. The predicate is synchronous on purpose: waitForFunction takes any truthy return as
 * success, and the Promise an async predicate returns is truthy at once.
 */
export async function waitForPlayingVideo(page: Page, selector: string, timeout = 20_000): Promise<void> {
  await page.waitForFunction(
    (sel) => {
      const v = document.querySelector<HTMLVideoElement & { __lastTime?: number }>(sel);
      if (!v || v.videoWidth === 0 || v.paused) return false;
      const before = v.__lastTime;
      v.__lastTime = v.currentTime;
      return before !== undefined && v.currentTime > before;
    },
    selector,
    { timeout, polling: 300 },
  ).catch(async (error: Error) => {
    // Say what the video was doing, not only that the wait ran out.
    const state = await page
      .evaluate((sel) => {
        const v = document.querySelector<HTMLVideoElement>(sel);
        if (!v) return 'no such video';
        const track = (v.srcObject as MediaStream | null)?.getVideoTracks()[0];
        return `${v.videoWidth}×${v.videoHeight}, ${v.paused ? 'paused' : 'playing'}, readyState ${v.readyState}, currentTime ${v.currentTime.toFixed(2)}, track ${track ? `${track.readyState}${track.muted ? ' muted' : ''}` : 'none'}`;
      }, selector)
      .catch(() => 'unreadable');
    throw new Error(`${error.message} waiting for ${selector} to play: ${state}`);
  });
}

/** Frames per second a <video> presents, measured over `ms`, with its resolution. */
export async function measureVideo(page: Page, selector: string, ms = 3000): Promise<{ fps: number; width: number; height: number }> {
  return page.evaluate(
    async ({ sel, ms }) => {
      const v = document.querySelector<HTMLVideoElement>(sel)!;
      const f0 = v.getVideoPlaybackQuality().totalVideoFrames;
      await new Promise((r) => setTimeout(r, ms));
      const f1 = v.getVideoPlaybackQuality().totalVideoFrames;
      return { fps: ((f1 - f0) * 1000) / ms, width: v.videoWidth, height: v.videoHeight };
    },
    { sel: selector, ms },
  );
}

/** Wait until the <video>'s stream has a live audio track receiving packets (not muted by the network). */
export async function waitForLiveAudio(page: Page, selector: string, timeout = 10_000): Promise<boolean> {
  return page
    .waitForFunction(
      (sel) => {
        const v = document.querySelector<HTMLVideoElement>(sel);
        const track = (v?.srcObject as MediaStream | null)?.getAudioTracks()[0];
        return !!track && track.readyState === 'live' && !track.muted;
      },
      selector,
      { timeout, polling: 200 },
    )
    .then(
      () => true,
      () => false,
    );
}

/**
 * A real server and one Chromium for a whole describe block: started before its tests,
 * closed after them. Read `server` and `browser` inside the tests.
 */
export function serverAndChromium(options?: TestServerOptions): { readonly server: TestServer; readonly browser: Browser } {
  let server: TestServer | undefined;
  let chromium: Awaited<ReturnType<typeof launchChromium>> | undefined;
  before(async () => {
    server = await startServer(options);
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await server?.close();
  });
  return {
    get server() {
      return server!;
    },
    get browser() {
      return chromium!.browser;
    },
  };
}
