/**
 * Accessibility: axe-core finds no serious or critical violations on the home,
 * link list, join and call pages (light and dark), and a guest can do the
 * whole flow with Tab, Enter and Space alone — in Chromium.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { newPerson, waitForPlayingVideo, serverAndChromium } from '../support/browser.js';
import { guestKnocks, hostEnters, signUpAndCreateLink, text } from '../support/flow.js';
import { seriousViolations } from '../support/axe.js';
import { focusedName, tabTo } from '../support/ui.js';

describe('accessibility in Chromium', { timeout: 240_000 }, () => {
  const env = serverAndChromium();

  it('home, link list, join and call pages have no serious or critical axe violations, in light and dark', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const guest = await newPerson(env.browser, env.server.url);
    const late = await newPerson(env.browser, env.server.url);
    const found: string[] = [];
    const check = async (page: Page, what: string) => {
      for (const scheme of ['light', 'dark'] as const) {
        await page.emulateMedia({ colorScheme: scheme });
        for (const v of await seriousViolations(page)) found.push(`${what} (${scheme}): ${v}`);
      }
    };

    await host.page.goto('/');
    await host.page.getByRole('button', { name: 'Sign in' }).waitFor();
    await check(host.page, 'home');

    const link = await signUpAndCreateLink(host.page, 'axe_host', 'Checked call');
    await host.page.getByRole('img', { name: 'QR code' }).waitFor();
    await check(host.page, 'link list');

    await guest.page.goto(link);
    await guest.page.getByRole('textbox', { name: 'Name' }).waitFor();
    await guest.page.locator('meter').waitFor();
    await check(guest.page, 'join');

    await hostEnters(host.page, link);
    await guestKnocks(guest.page, link, 'Axel');
    await host.page.getByRole('button', { name: 'Approve Axel' }).click();
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Axel"]');
    await guestKnocks(late.page, link, 'Lina');
    await host.page.getByRole('button', { name: 'Approve Lina' }).waitFor();
    await check(host.page, 'call with a knock');
    await check(guest.page, 'call as a guest');
    // Chat open with messages both ways, a raised hand in the host's list, the call locked.
    await guest.page.getByRole('button', { name: 'Chat', exact: true }).click();
    await guest.page.getByRole('textbox', { name: 'Message' }).fill('Can you hear me?');
    await guest.page.getByRole('button', { name: 'Send' }).click();
    await host.page.getByRole('button', { name: /^Chat/ }).click();
    await host.page.getByRole('region', { name: 'Chat' }).getByText('Can you hear me?').waitFor();
    await guest.page.getByRole('button', { name: 'Raise hand' }).click();
    await host.page.getByRole('button', { name: 'Lower hand for Axel' }).waitFor();
    await host.page.getByRole('button', { name: 'Lock call' }).click();
    await host.page.getByText('This call is locked').waitFor();
    await check(host.page, 'call with chat, a raised hand and the lock');
    await check(guest.page, 'chat as a guest');
    await guest.page.getByRole('button', { name: 'Keyboard shortcuts' }).click();
    await guest.page.getByRole('dialog').waitFor();
    await check(guest.page, 'shortcuts dialog');

    assert.deepEqual(found, []);
    for (const p of [host, guest, late]) await p.context.close();
  });

  it('a guest joins, mutes and leaves with the keyboard alone; knocks and joins are announced', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const guest = await newPerson(env.browser, env.server.url);
    const link = await signUpAndCreateLink(host.page, 'kb_host', 'Keys only');
    await hostEnters(host.page, link);

    const page = guest.page;
    await page.goto(link);
    await page.getByRole('textbox', { name: 'Name' }).waitFor();
    // Focus order: from the top of the page, Tab reaches the Name field, then Continue.
    await tabTo(page, 'Name');
    await page.keyboard.type('Kim');
    await tabTo(page, 'Continue', 3);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Join' }).waitFor();
    await page.waitForFunction(() => !document.querySelector<HTMLButtonElement>('button:not([class])')?.disabled);
    await tabTo(page, 'Join');
    await page.keyboard.press('Space');
    await text(page, 'Waiting for kb_host to let you in');

    // The host hears about the knock in a live region, and answers by keyboard too.
    await host.page.locator('[aria-live="polite"]', { hasText: 'Kim wants to join.' }).waitFor();
    await tabTo(host.page, 'Approve Kim');
    await host.page.keyboard.press('Enter');
    await host.page.locator('[aria-live="polite"]', { hasText: 'Kim joined.' }).waitFor();

    await page.getByRole('button', { name: 'Leave' }).waitFor({ timeout: 30_000 });
    await tabTo(page, 'Mute');
    await page.keyboard.press('Space');
    await page.getByRole('button', { name: 'Unmute' }).waitFor();
    assert.equal(await focusedName(page), 'Unmute', 'focus stays on the toggled button');
    // Chat with the keyboard alone: open the panel, type, Enter sends; the host hears it announced.
    await tabTo(page, 'Chat');
    await page.keyboard.press('Enter');
    await tabTo(page, 'Message', 60);
    await page.keyboard.type('Typed without a mouse');
    await page.keyboard.press('Enter');
    await host.page.getByRole('button', { name: /^Chat/ }).getByLabel('1 unread').waitFor();
    await tabTo(host.page, /^Chat/);
    await host.page.keyboard.press('Enter');
    await host.page.getByRole('region', { name: 'Chat' }).locator('[aria-live="polite"]', { hasText: 'Typed without a mouse' }).waitFor();
    // A raised hand, by keyboard, is announced on the host's page.
    await tabTo(page, 'Raise hand');
    await page.keyboard.press('Enter');
    await host.page.locator('[aria-live="polite"]', { hasText: 'Kim raised a hand.' }).waitFor();
    await tabTo(page, 'Leave');
    await page.keyboard.press('Enter');
    await text(page, 'You left the call.');
    await host.context.close();
    await guest.context.close();
  });
});
