/**
 * Before and during a call: choosing a camera changes the preview and what
 * others receive; blocked camera or microphone still lets people join
 * (audio-only or listening only) — in Chromium with fake devices.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { newPerson, waitForLiveAudio, waitForPlayingVideo } from '../support/browser.js';
import { guestKnocks, hostEnters, signUpAndCreateLink, text } from '../support/flow.js';
import { startServer, type TestServer } from '../support/server.js';
import { launchChromiumWith } from '../support/ui.js';

/** The fake camera's device id shown by a <video>'s stream. */
const cameraOf = (page: Page, selector: string) =>
  page.evaluate((sel) => {
    const v = document.querySelector<HTMLVideoElement>(sel);
    return (v?.srcObject as MediaStream | null)?.getVideoTracks()[0]?.getSettings().deviceId;
  }, selector);

describe('devices in Chromium', { timeout: 240_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  /** Every browser launched, closed at the end even when a test failed midway (else the run hangs). */
  const browsers: Browser[] = [];
  const launch = async (...args: Parameters<typeof launchChromiumWith>) => {
    const b = await launchChromiumWith(...args);
    browsers.push(b);
    return b;
  };

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await Promise.all(browsers.map((b) => b.close().catch(() => undefined)));
    await server?.close();
  });

  it('choosing the other camera changes the preview, and mid-call switching keeps the video flowing', async () => {
    // Three fake cameras. Chromium's fake_device_1 is a depth camera (16-bit grey): it previews, but
    // no video encoder takes its frames, so it would send nothing; fake_device_2 is an ordinary one.
    browser = await launch({ replace: ['--use-fake-device-for-media-stream=device-count=3'] });
    const host = await newPerson(browser, server.url);
    const guest = await newPerson(browser, server.url);
    const link = await signUpAndCreateLink(host.page, 'dev_host', 'Devices');
    await hostEnters(host.page, link);

    await guest.page.goto(link);
    // The pickers fold into "Devices" on the join page, so Name and Continue fit a phone's first screen.
    const devices = guest.page.getByRole('button', { name: 'Devices' });
    assert.equal(await devices.getAttribute('aria-expanded'), 'false');
    await devices.click();
    const camera = guest.page.getByRole('combobox', { name: 'Camera' });
    await camera.waitFor();
    const options = await camera.locator('option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
    assert.equal(options.length, 3, 'three cameras to choose from');
    const before = await cameraOf(guest.page, 'video[aria-label="Your camera preview"]');
    const other = options[2]!;
    assert.notEqual(other, before);
    await camera.selectOption(other);
    await guest.page.waitForFunction(
      (id) => (document.querySelector<HTMLVideoElement>('video[aria-label="Your camera preview"]')?.srcObject as MediaStream | null)?.getVideoTracks()[0]?.getSettings().deviceId === id,
      other,
    );
    await waitForPlayingVideo(guest.page, 'video[aria-label="Your camera preview"]');
    assert.ok(await guest.page.getByRole('combobox', { name: 'Microphone' }).isVisible());
    assert.ok(await guest.page.locator('meter').isVisible(), 'a microphone level meter');
    // Remembered: opened again, the page starts with the camera chosen last time, the pickers still unfolded.
    await guest.page.reload();
    await guest.page.getByRole('combobox', { name: 'Camera' }).waitFor();
    await guest.page.waitForFunction(
      (id) => (document.querySelector<HTMLVideoElement>('video[aria-label="Your camera preview"]')?.srcObject as MediaStream | null)?.getVideoTracks()[0]?.getSettings().deviceId === id,
      other,
    );

    await guest.page.getByRole('textbox', { name: 'Name' }).fill('Dora');
    await guest.page.getByRole('button', { name: 'Continue' }).click();
    await guest.page.getByRole('button', { name: 'Join' }).click();
    await host.page.getByRole('button', { name: 'Approve Dora' }).click();
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Dora"]');
    // The host may see Dora before her page has drawn the call (it first answers for what it receives).
    await guest.page.locator('video[aria-label="Your video"]').waitFor();
    assert.equal(await cameraOf(guest.page, 'video[aria-label="Your video"]'), other, 'the chosen camera is the one sent');

    // Mid-call: back to the first camera, through the Devices dialog; the sender's track is replaced.
    await guest.page.getByRole('button', { name: 'Devices' }).click();
    await guest.page.getByRole('dialog').getByRole('combobox', { name: 'Camera' }).selectOption(before!);
    await guest.page.waitForFunction(async (id) => {
      const v = document.querySelector<HTMLVideoElement>('video[aria-label="Your video"]');
      return (v?.srcObject as MediaStream | null)?.getVideoTracks()[0]?.getSettings().deviceId === id;
    }, before);
    await guest.page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
    // The host keeps seeing moving video, with no new connection set up.
    await host.page.waitForTimeout(1500);
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Dora"]');
    await host.context.close();
    await guest.context.close();
    await browser.close();
  });

  it('with camera and microphone blocked a guest joins listening only; with only the camera blocked, audio-only', async () => {
    // Without the fake permission UI, the context's permissions decide, as a person's choices would.
    browser = await launch({ remove: ['--use-fake-ui-for-media-stream'] });
    // (newPerson's per-origin clipboard grant would replace the camera grant here.)
    const hostContext = await browser.newContext({ baseURL: server.url, permissions: ['camera', 'microphone'] });
    const host = { context: hostContext, page: await hostContext.newPage() };
    const link = await signUpAndCreateLink(host.page, 'deny_host', 'Blocked');
    await hostEnters(host.page, link);

    const listener = await browser.newContext({ baseURL: server.url, permissions: [] });
    const lp = await listener.newPage();
    await lp.goto(link);
    await text(lp, 'Camera and microphone access was blocked. You can still join and listen.');
    await lp.getByRole('textbox', { name: 'Name' }).fill('Lee');
    await lp.getByRole('button', { name: 'Continue' }).click();
    await text(lp, 'listening only');
    await lp.getByRole('button', { name: 'Join' }).click();
    await host.page.getByRole('button', { name: 'Approve Lee' }).click();
    await waitForPlayingVideo(lp, 'video[aria-label="Video of deny_host"]');
    assert.ok(await waitForLiveAudio(lp, 'video[aria-label="Video of deny_host"]'), 'Lee hears the host');
    await host.page.getByRole('img', { name: 'Lee is muted' }).waitFor();

    const talker = await browser.newContext({ baseURL: server.url, permissions: ['microphone'] });
    const tp = await talker.newPage();
    await tp.goto(link);
    await text(tp, 'Access to your camera was blocked. Others will hear you but not see you.');
    await tp.getByRole('textbox', { name: 'Name' }).fill('Ada');
    await tp.getByRole('button', { name: 'Continue' }).click();
    await tp.getByRole('button', { name: 'Join' }).click();
    await host.page.getByRole('button', { name: 'Approve Ada' }).click();
    await waitForPlayingVideo(tp, 'video[aria-label="Video of deny_host"]');
    assert.ok(await waitForLiveAudio(host.page, 'video[aria-label="Video of Ada"]'), 'the host hears Ada');
    await listener.close();
    await talker.close();
    await host.context.close();
  });
});
