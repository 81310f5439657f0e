/**
 * "Check my connection" on loopback: with UDP open it reports the direct path and its verdict,
 * its camera preview plays, the page has no serious axe violations; with the camera and
 * microphone blocked it says so. The UDP-blocked case runs in the network lab
 * (test/network/check.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { seriousViolations } from '../support/axe.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH, launchChromium, newPerson, waitForPlayingVideo } from '../support/browser.js';
import { text } from '../support/flow.js';
import { startServer, type TestServer } from '../support/server.js';

describe('Check my connection', { timeout: 120_000 }, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.close();
  });

  it('with UDP open it reports the direct path and says calls will work well; axe clean', async () => {
    const chromiumBrowser = await launchChromium();
    try {
      const { page } = await newPerson(chromiumBrowser.browser, server.url);
      await page.goto('/');
      await page.getByRole('link', { name: 'Check my connection' }).click();
      await page.getByRole('heading', { name: 'Check my connection', level: 1 }).waitFor();
      await text(page, 'Your network lets calls through directly. Calls will work well.');
      await text(page, /^Directly over UDP: works, \d+ ms round trip$/);
      await waitForPlayingVideo(page, 'video[aria-label="Your camera"]');
      await text(page, 'Your camera and microphone work.');
      await page.getByRole('button', { name: 'Play a test sound' }).click();
      await text(page, /Did you hear a short tone\?/);
      assert.deepEqual(await seriousViolations(page), []);
    } finally {
      await chromiumBrowser.close();
    }
  });

  it('with the camera and microphone blocked it says so', async () => {
    // Without the fake permission UI, the context's permissions decide, as a person's choices would.
    const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS.filter((a) => a !== '--use-fake-ui-for-media-stream') });
    try {
      const context = await browser.newContext({ baseURL: server.url, permissions: [] });
      const page = await context.newPage();
      await page.goto('/check');
      await text(page, 'Your browser did not let linkcall use the camera and microphone. Allow them in the address bar, then check again.');
      await text(page, 'Your network lets calls through directly. Calls will work well.');
      assert.deepEqual(await seriousViolations(page), []);
    } finally {
      await browser.close();
    }
  });
});
