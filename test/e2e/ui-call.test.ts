/** In the call: screen sharing, Admit all, knocks in the tab title, shortcuts, the grid — in Chromium. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium, newPerson, waitForPlayingVideo } from '../support/browser.js';
import { guestKnocks, hostEnters, signUpAndCreateLink, text } from '../support/flow.js';
import { startServer, type TestServer } from '../support/server.js';

const RECORD_PEER_CONNECTIONS = `
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(config) {
      super(config);
      window.__pcs.push(this);
    }
  };
`;

/** Audio packets the page received from `name` (their tile's audio track) over `ms`. */
async function audioPacketsFrom(page: import('playwright-core').Page, name: string, ms: number): Promise<number> {
  const count = () =>
    page.evaluate(async (who) => {
      // The sound itself, not the tile: on a busy machine the video budget may pause the tile.
      const id = document.querySelector(`figure[aria-label="${who}"]`)?.getAttribute('data-participant');
      const audio = id ? document.querySelector<HTMLAudioElement>(`audio[data-participant-audio="${CSS.escape(id)}"]`) : null;
      const trackId = (audio?.srcObject as MediaStream | null)?.getAudioTracks()[0]?.id;
      let packets = 0;
      for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
        if (pc.connectionState === 'closed') continue;
        (await pc.getStats()).forEach((r: { type: string; kind?: string; trackIdentifier?: string; packetsReceived?: number }) => {
          if (r.type === 'inbound-rtp' && r.kind === 'audio' && r.trackIdentifier === trackId) packets += r.packetsReceived ?? 0;
        });
      }
      return packets;
    }, name);
  const before = await count();
  await page.waitForTimeout(ms);
  return (await count()) - before;
}

describe('the call page in Chromium', { timeout: 240_000 }, () => {
  let server: TestServer;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let browser: Browser;

  /** Viewport reports the pages sent (what the SFU uses to pick a simulcast layer per tile). */
  const viewports: { participantId: string; width: number; height: number }[][] = [];

  before(async () => {
    server = await startServer({
      tap: (e) => {
        if (e.kind !== 'ws-in') return;
        const m = JSON.parse(e.data.toString()) as { type?: string; tiles?: (typeof viewports)[number] };
        if (m.type === 'viewport' && m.tiles) viewports.push(m.tiles);
      },
    });
    chromium = await launchChromium();
    browser = chromium.browser;
  });
  after(async () => {
    await chromium?.close();
    await server?.close();
  });

  it('chat, a raised hand, a reaction and the lock: each reaches the other side as a person would expect', async (t) => {
    const host = await newPerson(browser, server.url);
    // Every RTCPeerConnection the page makes, so the test can read what it receives.
    await host.context.addInitScript(RECORD_PEER_CONNECTIONS);
    const guest = await newPerson(browser, server.url);
    t.after(() => Promise.all([host.context.close(), guest.context.close()]).then(() => {}));
    const link = await signUpAndCreateLink(host.page, 'chat_host', 'Chatty');
    await hostEnters(host.page, link);
    await guestKnocks(guest.page, link, 'Tess');
    await host.page.getByRole('button', { name: 'Approve Tess' }).click();
    await waitForPlayingVideo(guest.page, 'video[aria-label="Video of chat_host"]', 40_000);

    await host.page.getByRole('button', { name: 'Chat', exact: true }).click();
    await host.page.getByRole('textbox', { name: 'Message' }).fill('See <b>https://example.com</b> at 3');
    await host.page.getByRole('button', { name: 'Send' }).click();
    await guest.page.getByRole('button', { name: /^Chat/ }).getByLabel('1 unread').waitFor();
    await guest.page.getByRole('button', { name: /^Chat/ }).click();
    const panel = guest.page.getByRole('region', { name: 'Chat' });
    await panel.getByText('chat_host', { exact: true }).waitFor();
    await panel.getByText('See <b>https://example.com</b> at 3').waitFor();
    assert.equal(await panel.locator('a, b').count(), 0, 'markup and links stay text');
    await host.page.getByRole('region', { name: 'Chat' }).getByText('You', { exact: true }).waitFor();

    // A raised hand shows on the guest's tile and in the host's list, which can lower it; a reaction shows over the tile.
    await guest.page.getByRole('button', { name: 'Raise hand' }).click();
    await host.page.getByRole('img', { name: "Tess's hand is raised" }).waitFor();
    await guest.page.getByRole('button', { name: 'React 👏' }).click();
    await host.page.getByRole('img', { name: 'Tess reacted 👏' }).waitFor();
    await host.page.getByRole('button', { name: 'Lower hand for Tess' }).click();
    await guest.page.getByRole('button', { name: 'Raise hand' }).waitFor();
    await host.page.getByRole('img', { name: "Tess's hand is raised" }).waitFor({ state: 'detached' });

    // Locked, the call turns new guests away with a sentence.
    await host.page.getByRole('button', { name: 'Lock call' }).click();
    await guest.page.getByText('This call is locked: nobody new can ask to join.').waitFor();
    const late = await newPerson(browser, server.url);
    t.after(() => late.context.close());
    await guestKnocks(late.page, link, 'Uma');
    await text(late.page, 'This call is locked: the host is not letting anyone else in right now.');
    await host.page.getByRole('button', { name: 'Unlock call' }).click();

    // The host makes Tess a co-host; she lets the next guest in while the host is there.
    await host.page.getByRole('button', { name: 'Make co-host Tess' }).click();
    const next = await newPerson(browser, server.url);
    t.after(() => next.context.close());
    await guestKnocks(next.page, link, 'Vera');
    // A note to the waiting guest, sealed so the server cannot read it.
    await host.page.locator('summary', { hasText: 'Message' }).click();
    await host.page.getByRole('textbox', { name: 'Message to Vera' }).fill('One moment, please');
    await host.page.getByRole('textbox', { name: 'Message to Vera' }).press('Enter');
    await next.page.getByText('One moment, please').waitFor();
    await guest.page.getByRole('button', { name: 'Approve Vera' }).click();
    await waitForPlayingVideo(next.page, 'video[aria-label="Video of chat_host"]', 40_000);
    await host.page.getByText('(3 people)').waitFor();

    // The host mutes Tess: her page says who did, and the host can only ask her to unmute.
    assert.ok((await audioPacketsFrom(host.page, 'Tess', 1500)) > 20, 'the host hears Tess before the mute');
    await host.page.getByRole('button', { name: 'Mute Tess' }).click();
    await guest.page.getByText('chat_host muted you.').waitFor();
    assert.equal(await audioPacketsFrom(host.page, 'Tess', 1500), 0, 'nothing of Tess’s microphone reaches the host while she is muted');
    await guest.page.getByRole('button', { name: 'Unmute', exact: true }).first().waitFor();
    await host.page.getByRole('button', { name: 'Ask Tess to unmute' }).click();
    await guest.page.getByText('chat_host asks you to unmute.').waitFor();
    await guest.page.getByRole('alert').getByRole('button', { name: 'Unmute' }).click();
    await host.page.getByRole('button', { name: 'Mute Tess' }).waitFor();

    // A flood of chat from Tess is refused with a sentence on her page; the call keeps playing.
    await guest.page.getByRole('textbox', { name: 'Message' }).fill('flood');
    await guest.page.evaluate(() => {
      const send = [...document.querySelectorAll('button')].find((b) => b.textContent === 'Send')!;
      for (let i = 0; i < 14; i++) send.click();
    });
    await guest.page.getByText('You are sending messages very fast.').waitFor();
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Tess"]', 10_000);
    await waitForPlayingVideo(guest.page, 'video[aria-label="Video of chat_host"]', 10_000);

    // Picture in picture: the other person's video in its own window (Chromium).
    // Picture in picture shows the active speaker (the tile marked speaking), else the first other person.
    // Both fake microphones beep, so the speaker can change between reading it and the click: every
    // tile marked speaking from just before the click until the window opens counts.
    // (A string: tsx would wrap named functions in a helper the page does not have.)
    await guest.page.evaluate(`(() => {
      const seen = new Set();
      const note = () => {
        const tiles = [...document.querySelectorAll('figure[data-participant]')].filter((f) => !f.querySelector('video[aria-label="Your video"]'));
        const label = (tiles.find((f) => f.classList.contains('speaking')) ?? tiles[0])?.querySelector('video')?.getAttribute('aria-label');
        if (label) seen.add(label);
      };
      note();
      const observer = new MutationObserver(note);
      observer.observe(document.body, { subtree: true, attributes: true, attributeFilter: ['class'], childList: true });
      window.__pipCandidates = seen;
      window.__pipStop = () => observer.disconnect();
    })()`);
    await guest.page.getByRole('button', { name: 'Picture in picture' }).click();
    await guest.page.waitForFunction(() => document.pictureInPictureElement?.getAttribute('aria-label')?.startsWith('Video of '), undefined, { timeout: 10_000 });
    const { shown, candidates } = await guest.page.evaluate(() => {
      const w = window as unknown as { __pipCandidates: Set<string>; __pipStop: () => void };
      w.__pipStop();
      return { shown: document.pictureInPictureElement?.getAttribute('aria-label') ?? '', candidates: [...w.__pipCandidates] };
    });
    assert.ok(candidates.includes(shown), `picture in picture shows ${shown}; the speaker's tile (or the first other person's) was ${candidates.join(' or ')}`);
  });

  it('a shared screen plays large on the other side, with the sharer’s camera still there; stopping removes it', async (t) => {
    const host = await newPerson(browser, server.url);
    const guest = await newPerson(browser, server.url);
    t.after(() => Promise.all([host.context.close(), guest.context.close()]).then(() => {}));
    const link = await signUpAndCreateLink(host.page, 'screen_host', 'Slides');
    await hostEnters(host.page, link);
    await guestKnocks(guest.page, link, 'Sam');
    await host.page.getByRole('button', { name: 'Approve Sam' }).click();
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Sam"]');

    // --use-fake-ui-for-media-stream picks a screen for getDisplayMedia without a dialog.
    await guest.page.getByRole('button', { name: 'Share screen' }).click();
    await waitForPlayingVideo(host.page, 'video[aria-label="Screen shared by Sam"]', 30_000);
    // Shown large: the screen's tile is wider than the sharer's camera (which stays, small, in its corner).
    await host.page.waitForFunction(() => {
      const screen = document.querySelector<HTMLVideoElement>('video[aria-label="Screen shared by Sam"]');
      const camera = document.querySelector<HTMLVideoElement>('video[aria-label="Video of Sam"]');
      if (!screen || !camera || screen.videoWidth === 0) return false;
      return screen.getBoundingClientRect().width > 1.5 * camera.getBoundingClientRect().width;
    }, null, { timeout: 30_000 }).catch(async (err) => {
      const state = await host.page.evaluate(() =>
        [...document.querySelectorAll('video')].map((v) => `${v.getAttribute('aria-label')} ${v.videoWidth}x${v.videoHeight} shown ${Math.round(v.getBoundingClientRect().width)}`),
      );
      throw new Error(`screen not shown large: ${state.join('; ')}`, { cause: err });
    });
    // The camera keeps playing beside it (the publisher was replaced, the E2EE counter was not reset).
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Sam"]');

    // By keyboard: a page busy capturing and encoding a screen may not paint often enough for a mouse click's checks.
    await guest.page.getByRole('button', { name: 'Stop sharing' }).focus();
    await guest.page.keyboard.press('Enter');
    await host.page.locator('video[aria-label="Screen shared by Sam"]').waitFor({ state: 'detached', timeout: 20_000 });
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Sam"]');
  });

  it('a knock changes the tab title and shows a badge; Admit all lets every waiting guest in', async () => {
    const host = await newPerson(browser, server.url);
    const link = await signUpAndCreateLink(host.page, 'lobby_host', 'Open house');
    await hostEnters(host.page, link);
    const titleBefore = await host.page.title();

    const names = ['Ann', 'Ben', 'Cy'];
    const guests = [];
    for (const name of names) {
      const g = await newPerson(browser, server.url);
      await guestKnocks(g.page, link, name);
      guests.push(g);
    }
    await host.page.waitForFunction(() => document.title.startsWith('(3)'));
    assert.notEqual(await host.page.title(), titleBefore);
    assert.match(await host.page.title(), /Someone wants to join/);
    await host.page.getByRole('img', { name: '3 waiting' }).or(host.page.getByLabel('3 waiting')).first().waitFor();
    await text(host.page, /waiting \d+ s/);

    await host.page.getByRole('button', { name: /^Admit all/ }).click();
    for (const [i, g] of guests.entries()) {
      await g.page.getByRole('button', { name: 'Leave' }).waitFor({ timeout: 30_000 });
      await waitForPlayingVideo(host.page, `video[aria-label="Video of ${names[i]}"]`);
    }
    await host.page.waitForFunction(() => !document.title.startsWith('('));
    await text(host.page, '4 in call');

    // Keyboard shortcut: Ctrl+D mutes, and the others see it.
    await guests[0]!.page.keyboard.press('Control+d');
    await guests[0]!.page.getByRole('button', { name: 'Unmute' }).waitFor();
    await host.page.getByRole('img', { name: 'Ann is muted' }).waitFor();
    await guests[0]!.page.getByRole('button', { name: 'Keyboard shortcuts' }).click();
    await guests[0]!.page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
    await guests[0]!.page.keyboard.press('Escape');
    await guests[0]!.page.getByRole('dialog').waitFor({ state: 'detached' });

    // Pin: one person large.
    await host.page.getByRole('button', { name: 'Pin Ben' }).click();
    const sizes = await host.page.evaluate(() =>
      [...document.querySelectorAll<HTMLVideoElement>('video[aria-label^="Video of"]')].map((v) => [v.getAttribute('aria-label'), v.getBoundingClientRect().width] as const),
    );
    const ben = sizes.find(([l]) => l === 'Video of Ben')![1];
    for (const [label, width] of sizes) if (label !== 'Video of Ben') assert.ok(ben > width * 1.5, `${label} smaller than pinned Ben`);
    for (const g of [host, ...guests]) await g.context.close();
  });

  it('on a phone-sized screen the grid fits everyone without sideways scrolling', async () => {
    // Only this call's reports: earlier tests' pages reported wide tiles of other people.
    const firstReport = viewports.length;
    const host = await newPerson(browser, server.url);
    const link = await signUpAndCreateLink(host.page, 'phone_host', 'Small screen');
    const guest = await browser.newContext({ baseURL: server.url, permissions: ['camera', 'microphone'], viewport: { width: 360, height: 740 } });
    const gp = await guest.newPage();
    await hostEnters(host.page, link);
    await guestKnocks(gp, link, 'Pia');
    await host.page.getByRole('button', { name: 'Approve Pia' }).click();
    await waitForPlayingVideo(gp, 'video[aria-label="Video of phone_host"]');
    const overflow = await gp.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.equal(overflow, 0, 'no horizontal scrolling');
    for (const label of ['Video of phone_host', 'Your video']) {
      const box = await gp.locator(`video[aria-label="${label}"]`).boundingBox();
      assert.ok(box && box.width >= 150 && box.x >= 0 && box.x + box.width <= 360, `${label} fits: ${JSON.stringify(box)}`);
    }
    // Each tile reported its drawn size, so the SFU can send a layer that fits.
    const shown = await gp.locator('video[aria-label="Video of phone_host"]').boundingBox();
    await gp.waitForTimeout(800);
    // The host's page reports its own (wider) tile of Pia too: the phone's latest report is the one naming someone else.
    const single = viewports.slice(firstReport).filter((v) => v.length === 1).map((v) => v[0]!);
    const piaOnTheHostsPage = single.find((t) => t.width > 360)?.participantId;
    const last = single.filter((t) => t.participantId !== piaOnTheHostsPage).at(-1);
    assert.ok(last && Math.abs(last.width - Math.round(shown!.width)) <= 2, `viewport ${JSON.stringify(last)} matches the tile ${shown!.width}px`);
    await host.context.close();
    await guest.close();
  });
});
