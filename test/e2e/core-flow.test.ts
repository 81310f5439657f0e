import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { waitForLiveAudio, measureVideo, newPerson, waitForPlayingVideo, serverAndChromium } from '../support/browser.js';
import { guestKnocks, hostEnters, signUpAndCreateLink, text } from '../support/flow.js';


describe('the core flow in Chromium', { timeout: 180_000 }, () => {
  const env = serverAndChromium();

  it('host creates a link, guest knocks, host approves, both see and hear each other at full resolution', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const guest = await newPerson(env.browser, env.server.url);
    const link = await signUpAndCreateLink(host.page, 'ana', 'Sunday call');
    assert.match(link, new RegExp(`^${env.server.url}/join/[A-Za-z0-9_-]{22}#k=`));
    await host.page.getByRole('button', { name: 'Copy', exact: true }).click();
    await text(host.page, 'Copied');
    assert.equal(await host.page.evaluate(() => navigator.clipboard.readText()), link);

    await hostEnters(host.page, link);
    await guestKnocks(guest.page, link, 'Bob');
    await text(guest.page, 'Waiting for ana to let you in…');
    await host.page.getByRole('button', { name: 'Approve Bob' }).click();

    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Bob"]');
    await waitForPlayingVideo(guest.page, 'video[aria-label="Video of ana"]');
    assert.ok(await waitForLiveAudio(host.page, 'video[aria-label="Video of Bob"]'), 'host hears Bob');
    assert.ok(await waitForLiveAudio(guest.page, 'video[aria-label="Video of ana"]'), 'Bob hears the host');

    // Bandwidth estimation works: after 10 s the video is not a low-resolution trickle.
    await guest.page.waitForTimeout(10_000);
    const received = await measureVideo(guest.page, 'video[aria-label="Video of ana"]');
    const sent = await measureVideo(host.page, 'video[aria-label="Video of Bob"]');
    for (const m of [received, sent]) {
      assert.deepEqual([m.width, m.height], [640, 480], `resolution ${m.width}x${m.height}`);
      assert.ok(m.fps >= 15, `fps ${m.fps}`);
    }

    // Mute and camera off show on the other side.
    await guest.page.getByRole('button', { name: 'Mute' }).click();
    await host.page.getByRole('img', { name: 'Bob is muted' }).waitFor();

    // Leave.
    await guest.page.getByRole('button', { name: 'Leave' }).click();
    await text(guest.page, 'You left the call.');
    await host.page.locator('video[aria-label="Video of Bob"]').waitFor({ state: 'detached' });
    await host.context.close();
    await guest.context.close();
  });

  it('a declined guest, a removed guest and an ended call each get a plain sentence', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const link = await signUpAndCreateLink(host.page, 'carla', 'Team');
    await hostEnters(host.page, link);

    const eve = await newPerson(env.browser, env.server.url);
    await guestKnocks(eve.page, link, 'Eve');
    await host.page.getByRole('button', { name: 'Approve Eve' }).waitFor();
    await host.page.getByRole('button', { name: 'Decline Eve' }).click();
    await text(eve.page, 'The host declined your request to join.');

    const dan = await newPerson(env.browser, env.server.url);
    await guestKnocks(dan.page, link, 'Dan');
    await host.page.getByRole('button', { name: 'Approve Dan' }).click();
    await host.page.getByRole('button', { name: 'Remove Dan' }).click();
    await text(dan.page, 'The host removed you from the call.');

    const fay = await newPerson(env.browser, env.server.url);
    await guestKnocks(fay.page, link, 'Fay');
    await host.page.getByRole('button', { name: 'Approve Fay' }).click();
    await waitForPlayingVideo(fay.page, 'video[aria-label="Video of carla"]');
    await host.page.getByRole('button', { name: 'End call' }).click();
    await text(fay.page, 'The host ended the call.');
    for (const p of [host, eve, dan, fay]) await p.context.close();
  });

  it('a guest waits, told so, while the host has not arrived', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const link = await signUpAndCreateLink(host.page, 'gus', 'Later');
    const guest = await newPerson(env.browser, env.server.url);
    await guestKnocks(guest.page, link, 'Hana');
    await text(guest.page, "gus hasn't joined yet");
    await hostEnters(host.page, link);
    await host.page.getByRole('button', { name: 'Approve Hana' }).click();
    await waitForPlayingVideo(guest.page, 'video[aria-label="Video of gus"]');
    await host.context.close();
    await guest.context.close();
  });

  it('a deleted link and an unknown link each say so', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const link = await signUpAndCreateLink(host.page, 'ivan', 'Old call');
    await host.page.getByRole('button', { name: 'Delete link' }).click();
    await text(host.page, 'No links yet');
    const guest = await newPerson(env.browser, env.server.url);
    const response = await guest.page.goto(link);
    assert.equal(response?.status(), 410);
    await text(guest.page, 'This call link was deleted by its host.');
    const unknown = await guest.page.goto('/join/AAAAAAAAAAAAAAAAAAAAAA');
    assert.equal(unknown?.status(), 404);
    await text(guest.page, 'This call link does not exist.');
    await host.context.close();
    await guest.context.close();
  });
});
