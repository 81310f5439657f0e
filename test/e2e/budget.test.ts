// The video budget (issue "A 33-person call that stays smooth"): a page that cannot keep up
// plays fewer remote videos — the least important ones fall back to the person's initial and
// name, and the SFU stops sending them — and brings them back once it can. Slow decoding is
// simulated by throttling the page's CPU through the DevTools protocol.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Bot } from '../../src/bot/bot.js';
import { loadFixtures } from '../../src/bot/fixtures.js';
import type { CallMedia } from '../../src/server/sfu/call-media.js';
import { shutdownMediaEngine } from '../../src/server/media/router.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH, waitForPlayingVideo } from '../support/browser.js';
import { guestKnocks, hostEnters, signUpAndCreateLink } from '../support/flow.js';
import { startServer, type TestServer } from '../support/server.js';
import { sleep } from '../support/wait.js';

const BOTS = 5;

/** How many remote videos the SFU forwards now to each subscriber that is no bot (a page), by participant id. */
function forwardedToPages(server: TestServer, bots: readonly Bot[]): Map<string, number> {
  const router = [...server.app.rooms.values()].map((r) => (r.media as CallMedia).router).find((r) => r && !r.closed)!;
  const botIds = new Set(bots.map((b) => b.call.you?.id));
  const pages = [...router.subscribeTransports].filter((t) => !botIds.has(t.peerId) && !t.closed);
  return new Map(pages.map((t) => [t.peerId, [...t.consumers.values()].filter((c) => c.kind === 'video' && c.layers.current >= 0).length]));
}

/** How many remote videos the SFU forwards to the host's page now (the first page). */
function forwardedToHost(server: TestServer, bots: readonly Bot[]): number {
  return [...forwardedToPages(server, bots).values()][0]!;
}

/** The page's "Showing video for N of M" line, as numbers. */
async function showing(page: Page): Promise<{ shown: number; of: number }> {
  const line = await page.getByRole('status').filter({ hasText: /^Showing video for/ }).first().innerText({ timeout: 30_000 });
  const [, shown, of] = /Showing video for (\d+) of (\d+)/.exec(line)!;
  return { shown: Number(shown), of: Number(of) };
}

/** Remote tiles whose <video> plays a stream now, by name. */
async function playingTiles(page: Page): Promise<string[]> {
  return page.locator('video[aria-label^="Video of "]').evaluateAll((vs) =>
    (vs as HTMLVideoElement[]).filter((v) => v.srcObject).map((v) => v.getAttribute('aria-label')!.slice('Video of '.length)).sort(),
  );
}

describe('the video budget', { timeout: 300_000 }, () => {
  let browser: Browser;
  let server: TestServer;
  const bots: Bot[] = [];

  before(async () => {
    loadFixtures();
    server = await startServer();
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
    await Promise.all(bots.map((b) => b.leave(2000)));
    await Promise.race([server?.close(), sleep(10_000)]);
    shutdownMediaEngine();
  });

  it('a page too slow for its videos pauses the least important ones (the SFU stops sending them) and brings them back when it recovers', async () => {
    const context = await browser.newContext({ baseURL: server.url, permissions: ['camera', 'microphone'], viewport: { width: 1000, height: 700 } });
    const host = await context.newPage();
    const link = await signUpAndCreateLink(host, 'grace', 'Budget');
    await hostEnters(host, link);
    const names = Array.from({ length: BOTS }, (_, i) => `Bot ${i + 1}`);
    for (const name of names) {
      bots.push(await Bot.join({ link, name, bindAddress: '127.0.0.1', layers: ['q', 'h'], watch: () => false }));
      for (let attempt = 0; attempt < 5 && bots.at(-1)!.call.phase.kind !== 'in-call'; attempt++) {
        await host.getByRole('button', { name: `Approve ${name}` }).click({ timeout: 30_000 }).catch(() => {});
        await bots.at(-1)!.inCall(5_000).catch(() => {});
      }
    }
    await Promise.all(bots.map((b) => b.inCall(30_000)));
    for (const name of names) await waitForPlayingVideo(host, `video[aria-label="Video of ${name}"]`, 60_000);
    assert.deepEqual(await showing(host), { shown: BOTS, of: BOTS }, 'a 2-core page starts with nine: all five play');
    assert.equal(forwardedToHost(server, bots), BOTS);

    // Bot 5 is pinned: it keeps its video whatever happens.
    await host.getByRole('button', { name: 'Pin Bot 5' }).click();
    // A slow device: the CPU throttled, and the main thread busy most of each second (as a page
    // starved by its decoders is), so the throttle does not depend on how much work the page has.
    const cdp = await context.newCDPSession(host);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 20 });
    await host.evaluate(() => {
      (globalThis as { busy?: ReturnType<typeof setInterval> }).busy = setInterval(() => {
        const end = performance.now() + 120;
        while (performance.now() < end);
      }, 250);
    });
    let low = { shown: BOTS, of: BOTS };
    const until = Date.now() + 90_000;
    while (Date.now() < until && low.shown > 2) {
      await sleep(2000);
      low = await showing(host).catch(() => low);
    }
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
    await host.evaluate(() => clearInterval((globalThis as { busy?: ReturnType<typeof setInterval> }).busy));
    assert.ok(low.shown < BOTS, `the slowed page plays fewer videos (${low.shown} of ${low.of})`);
    const playing = await playingTiles(host);
    assert.ok(playing.includes('Bot 5'), `the pinned person keeps playing: ${playing.join(', ')}`);
    // The SFU forwards only what plays (the tiles' sizes reach it debounced, and settle).
    const sfuUntil = Date.now() + 15_000;
    let forwarded = forwardedToHost(server, bots);
    while (Date.now() < sfuUntil && forwarded > (await playingTiles(host)).length) {
      await sleep(500);
      forwarded = forwardedToHost(server, bots);
    }
    assert.ok(forwarded < BOTS, `the SFU stopped sending paused videos: it forwards ${forwarded} of ${BOTS}`);

    // Recovered: videos come back, one at a time, until all play again.
    await host.waitForFunction(
      (n) => [...document.querySelectorAll('[role="status"]')].some((e) => e.textContent?.startsWith(`Showing video for ${n} of ${n}`)),
      BOTS,
      { timeout: 120_000, polling: 1000 },
    );
    for (const name of names) await waitForPlayingVideo(host, `video[aria-label="Video of ${name}"]`, 30_000);
    const back = Date.now() + 15_000;
    while (Date.now() < back && forwardedToHost(server, bots) < BOTS) await sleep(500);
    assert.equal(forwardedToHost(server, bots), BOTS, 'the SFU sends them all again');
  });

  it('the person can ask for fewer videos and more again', async () => {
    const host = browser.contexts()[0]!.pages()[0]!;
    await host.getByRole('button', { name: 'Show fewer' }).click();
    const fewer = await showing(host);
    assert.ok(fewer.shown < BOTS, `Show fewer: ${fewer.shown} of ${fewer.of}`);
    await host.getByRole('button', { name: 'Show more' }).click();
    await host.getByRole('button', { name: 'Show more' }).click().catch(() => {});
    assert.equal((await showing(host)).shown, BOTS);
  });

  it('on a phone, the videos past its budget are not sent once it shows its budget', async () => {
    const host = browser.contexts()[0]!.pages()[0]!;
    const link = new URL(host.url());
    const hostId = [...forwardedToPages(server, bots).keys()][0]!;
    const context = await browser.newContext({ baseURL: server.url, permissions: ['camera', 'microphone'], viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
    const phone = await context.newPage();
    await guestKnocks(phone, `${link.pathname}${link.hash}`, 'Pat');
    await host.getByRole('button', { name: 'Approve Pat' }).click({ timeout: 30_000 });
    // Four videos on a phone-sized screen; the host and five bots are six.
    await phone.getByRole('status').filter({ hasText: /^Showing video for 4 of 6/ }).first().waitFor({ timeout: 60_000 });
    // Until the phone's first viewport names the paused tiles (a second or so after it joins), the
    // SFU sends it everyone's smallest layer, as to any page that has not said what it shows yet
    // (docs/MEDIA.md); from then on, only the videos it plays. (Its budget may grow meanwhile, when
    // the machine leaves it room: the SFU then follows, within a sample.)
    const toPhone = () => [...forwardedToPages(server, bots)].find(([id]) => id !== hostId)?.[1] ?? 0;
    const seen: { playing: number; sent: number }[] = [];
    const sample = async () => seen.push({ playing: (await playingTiles(phone)).length, sent: toPhone() });
    for (const until = Date.now() + 20_000; Date.now() < until && !(seen.length && seen.at(-1)!.sent === seen.at(-1)!.playing); await sleep(500)) await sample();
    for (let i = 0; i < 6; i++, await sleep(500)) await sample();
    const said = seen.map((x) => `${x.sent}/${x.playing}`).join(' ');
    const last = seen.slice(-7);
    assert.ok(
      last.every((x, i) => x.sent <= Math.max(x.playing, (last[i - 1] ?? x).playing)),
      `the SFU sends the phone only the videos it plays, not the paused (every 0.5 s, sent/playing: ${said})`,
    );
    assert.ok(last.some((x) => x.sent === x.playing && x.playing >= 4), `and it sends those it plays (${said})`);
    await context.close();
  });
});
