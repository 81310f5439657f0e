/** Sharing a link: Copy, QR code, rename, last used, expiry, and links with the wrong shape — in Chromium. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newPerson, serverAndChromium } from '../support/browser.js';
import { guestKnocks, signUpAndCreateLink, text } from '../support/flow.js';
import { decodeQr } from '../support/ui.js';

describe('sharing a link in Chromium', { timeout: 180_000 }, () => {
  const env = serverAndChromium();

  it('Copy puts the link on the clipboard and says Copied; the QR code decodes to the same link', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const link = await signUpAndCreateLink(host.page, 'qr_host', 'Phone call');
    await host.page.getByRole('button', { name: 'Copy', exact: true }).click();
    await text(host.page, 'Copied');
    assert.equal(await host.page.evaluate(() => navigator.clipboard.readText()), link);

    const qr = host.page.getByRole('img', { name: 'QR code' });
    const decoded = await decodeQr(host.page, await qr.screenshot());
    assert.equal(decoded, link);

    // Each link in the list has its own Copy and QR code.
    await host.page.getByRole('button', { name: 'QR code Phone call' }).click();
    const rowQr = host.page.getByRole('listitem').getByRole('img', { name: 'QR code' });
    assert.equal(await decodeQr(host.page, await rowQr.screenshot()), link);
    await host.context.close();
  });

  it('a renamed link shows its new name, verified, to guests; the list says when it was last used', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const link = await signUpAndCreateLink(host.page, 'rename_host', 'Old name');
    await host.page.getByText('Not used yet').waitFor();
    await host.page.getByRole('button', { name: 'Rename Old name' }).click();
    await host.page.getByRole('textbox', { name: 'New name for Old name' }).fill('Book club');
    await host.page.getByRole('button', { name: 'Save' }).click();
    await host.page.locator('.link-name', { hasText: 'Book club' }).waitFor();

    const guest = await newPerson(env.browser, env.server.url);
    await guestKnocks(guest.page, link, 'Gia');
    await guest.page.getByText('Waiting for rename_host to let you in').waitFor();
    await guest.page.getByRole('button', { name: 'Cancel' }).click();

    const check = await newPerson(env.browser, env.server.url);
    await check.page.goto(link);
    await check.page.getByRole('heading', { name: 'Book club' }).waitFor();
    await check.page.getByText('✓ verified').waitFor();

    await host.page.reload();
    await host.page.getByText(/Last used (just now|now|\d+ seconds? ago)/).waitFor();
    for (const p of [host, guest, check]) await p.context.close();
  });

  it('an expired link and a link of the wrong shape each say so in a sentence', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const link = await signUpAndCreateLink(host.page, 'expiry_host', 'Soon gone');
    // A link that expires in a moment, made the way the page makes links.
    const id = await host.page.evaluate(async () => {
      const res = await fetch('/api/links', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Brief', expiresAt: Date.now() + 1500 }) });
      return ((await res.json()) as { id: string }).id;
    });
    await host.page.waitForTimeout(2000);
    const guest = await newPerson(env.browser, env.server.url);
    const response = await guest.page.goto(`/join/${id}#k=${'A'.repeat(43)}`);
    assert.equal(response?.status(), 410);
    await text(guest.page, 'This call link has expired. Ask the host for a new one.');

    // The host's own list shows which links expired.
    await host.page.reload();
    await host.page.getByText('Expired').waitFor();

    // Cut short: the secret is missing its end.
    await guest.page.goto(link.slice(0, -5));
    await text(guest.page, 'Fake links can look like real ones');
    await guest.page.goto('/join/not-a-real-link#k=abc');
    await text(guest.page, 'Fake links can look like real ones');
    // The page shows where you really are.
    await guest.page.getByText(new URL(env.server.url).host).first().waitFor();
    await host.context.close();
    await guest.context.close();
  });
});
