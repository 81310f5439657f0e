/**
 * A guest's connection drops mid-call (its WebSocket is cut and stays down for
 * a few seconds; then also its media paths die, as when the network changes):
 * it comes back by itself as the same participant, without knocking again,
 * the host sees "Reconnecting…" on its tile meanwhile, and video plays again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Page, WebSocketRoute } from 'playwright-core';
import { newPerson, waitForPlayingVideo, serverAndChromium } from '../support/browser.js';
import { guestKnocks, hostEnters, signUpAndCreateLink, text } from '../support/flow.js';

/** The guest's network, as far as signaling goes: the test can cut it and keep it down. */
async function controllableNetwork(page: Page) {
  let down = false;
  let current: { page: WebSocketRoute; server: WebSocketRoute } | undefined;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    // While the network is down, every new connection fails at once.
    if (down) return void ws.close({ code: 4999, reason: 'network down' });
    current = { page: ws, server: ws.connectToServer() };
  });
  return {
    /** Cut the connection (neither side gets a clean close) and keep new ones from getting through. */
    async cut() {
      down = true;
      await current?.server.close({ code: 4999, reason: 'network down' });
      await current?.page.close({ code: 4999, reason: 'network down' });
    },
    restore() {
      down = false;
    },
  };
}

describe('a dropped connection in Chromium', { timeout: 180_000 }, () => {
  const env = serverAndChromium();

  it('the guest comes back as the same participant, shown as reconnecting, with video playing again', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const guest = await newPerson(env.browser, env.server.url);
    const network = await controllableNetwork(guest.page);
    const link = await signUpAndCreateLink(host.page, 'ana', 'Train call');
    await hostEnters(host.page, link);
    await guestKnocks(guest.page, link, 'Bob');
    await host.page.getByRole('button', { name: 'Approve Bob' }).click();
    const bobVideo = 'video[aria-label="Video of Bob"]';
    const anaVideo = 'video[aria-label="Video of ana"]';
    await waitForPlayingVideo(host.page, bobVideo);
    await waitForPlayingVideo(guest.page, anaVideo);
    const bobTile = host.page.locator('figure.tile', { has: host.page.locator(bobVideo) });
    const bobId = await bobTile.getAttribute('data-participant');
    assert.ok(bobId);

    // 1. Signaling drops for three seconds; media keeps flowing meanwhile.
    await network.cut();
    await text(guest.page, 'Connection lost. Reconnecting…', 10_000);
    await bobTile.getByText('Reconnecting…').waitFor({ timeout: 10_000 });
    await guest.page.waitForTimeout(3000);
    network.restore();
    await guest.page.getByText('Connection lost. Reconnecting…').waitFor({ state: 'detached', timeout: 15_000 });
    await bobTile.getByText('Reconnecting…').waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(await bobTile.getAttribute('data-participant'), bobId, 'same participant, not a rejoin');
    await waitForPlayingVideo(host.page, bobVideo);
    await waitForPlayingVideo(guest.page, anaVideo);

    // Still the same call for Bob: his controls act as him (mute shows on the host's side).
    await guest.page.getByRole('button', { name: 'Mute' }).click();
    await host.page.getByRole('img', { name: 'Bob is muted' }).waitFor();
    await guest.page.getByRole('button', { name: 'Unmute' }).click();

    // 2. The network changes: signaling drops and Bob's old media paths die with it
    //    (the server's transports for him are gone). His page rebuilds its media connections.
    await network.cut();
    await bobTile.getByText('Reconnecting…').waitFor({ timeout: 10_000 });
    const linkId = new URL(link).pathname.split('/').pop()!;
    env.server.app.rooms.get(linkId)!.media.drop(bobId);
    network.restore();
    await guest.page.getByText('Connection lost. Reconnecting…').waitFor({ state: 'detached', timeout: 15_000 });
    await waitForPlayingVideo(host.page, bobVideo, 30_000);
    await waitForPlayingVideo(guest.page, anaVideo, 30_000);
    assert.equal(await bobTile.getAttribute('data-participant'), bobId);
    assert.equal(await host.page.getByRole('button', { name: 'Approve Bob' }).count(), 0, 'Bob never knocked again');

    await host.context.close();
    await guest.context.close();
  });
});
