/**
 * TURN: browsers that may only use relayed paths (iceTransportPolicy 'relay') still
 * get a call with video both ways, through a real coturn, with the short-lived
 * credentials linkcall hands out; coturn refuses credentials once they expired.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { turnCredentials } from '../../src/server/http/ice.js';
import { launchChromium, newPerson, waitForPlayingVideo } from '../support/browser.js';
import { startCoturn, type TestCoturn } from '../support/coturn.js';
import { guestKnocks, hostEnters, signUpAndCreateLink, text } from '../support/flow.js';
import { mediaPaths, recordPeerConnections } from '../support/peer-connections.js';
import { createLink, signUp, startServer, type TestServer } from '../support/server.js';
import { turnAllocate } from '../support/turn-client.js';

describe('TURN with coturn', { timeout: 180_000 }, () => {
  let coturn: TestCoturn;
  let server: TestServer;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let browser: Browser;

  before(async () => {
    coturn = await startCoturn();
    server = await startServer({
      env: { TURN_URLS: coturn.url, TURN_SECRET: coturn.secret, TURN_CREDENTIAL_TTL: '600', ICE_TRANSPORT_POLICY: 'relay' },
    });
    chromium = await launchChromium();
    browser = chromium.browser;
  });
  after(async () => {
    await chromium?.close();
    await server?.close();
    await coturn?.close();
  });

  it('relay-only browsers see each other through coturn, with credentials from linkcall', async () => {
    const host = await newPerson(browser, server.url);
    const guest = await newPerson(browser, server.url);
    for (const p of [host, guest]) await recordPeerConnections(p.context);
    const link = await signUpAndCreateLink(host.page, 'tina', 'Relayed');
    await hostEnters(host.page, link);
    await guestKnocks(guest.page, link, 'Uma');
    await text(guest.page, 'Waiting for tina to let you in…');
    await host.page.getByRole('button', { name: 'Approve Uma' }).click();
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Uma"]', 30_000);
    await waitForPlayingVideo(guest.page, 'video[aria-label="Video of tina"]', 30_000);

    for (const [who, page] of [['host', host.page], ['guest', guest.page]] as const) {
      // Both connections up (a connection may still be settling right after the first frames).
      let paths = await mediaPaths(page);
      for (let tries = 0; tries < 30 && paths.selected.length < 2; tries++) {
        await page.waitForTimeout(500);
        paths = await mediaPaths(page);
      }
      assert.equal(paths.policy, 'relay', `${who}'s connections are relay-only`);
      assert.equal(paths.iceServers, 1, `${who} got the TURN server from linkcall`);
      assert.equal(paths.selected.length, 2, `${who}'s publishing and receiving connections are up`);
      for (const pair of paths.selected) assert.equal(pair.local, 'relay', `${who}'s media goes through coturn`);
    }
    await host.context.close();
    await guest.context.close();
  });

  it('the credentials from /api/links/:id/ice work at coturn; expired or forged ones are refused', async () => {
    const res = await fetch(`${server.url}/api/links/${await someLinkId(server)}/ice`);
    const ice = (await res.json()) as { iceServers: { urls: string[]; username: string; credential: string }[]; iceTransportPolicy: string };
    assert.equal(ice.iceTransportPolicy, 'relay');
    const [turn] = ice.iceServers;
    assert.deepEqual(turn!.urls, [coturn.url]);
    const granted = await turnAllocate(coturn.host, coturn.port, turn!.username, turn!.credential);
    assert.equal(granted.ok, true, 'fresh credentials get a relay');

    const expired = turnCredentials(coturn.secret, 60, Date.now() - 3600_000);
    assert.deepEqual(await turnAllocate(coturn.host, coturn.port, expired.username, expired.credential), { ok: false, error: 401 });
    const forged = turnCredentials('not-the-shared-secret', 600);
    assert.deepEqual(await turnAllocate(coturn.host, coturn.port, forged.username, forged.credential), { ok: false, error: 401 });
  });
});

async function someLinkId(server: TestServer): Promise<string> {
  const cookie = await signUp(server, 'vera');
  return (await createLink(server, cookie)).id;
}
