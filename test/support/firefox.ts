/** Headless Firefox ESR (puppeteer-core over WebDriver BiDi) with a fake camera and microphone. */
import puppeteer, { type Browser, type BrowserContext, type ElementHandle, type Page } from 'puppeteer-core';

export const FIREFOX_PATH = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';

export async function launchFirefox(): Promise<Browser> {
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX_PATH,
    headless: true,
    // Firefox starts slowly on a busy 2-core machine.
    timeout: 90_000,
    protocolTimeout: 120_000,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      // Loopback ICE in tests: allow 127.0.0.1 candidates and show real addresses.
      'media.peerconnection.ice.loopback': true,
      'media.peerconnection.ice.obfuscate_host_addresses': false,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
    },
  });
}

/**
 * One person in Firefox: a browser context of their own (separate cookies and
 * IndexedDB — checked to work over WebDriver BiDi, where it is a user context)
 * with one page.
 */
export async function newFirefoxPerson(browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  // Playwright's default (puppeteer's is 800×600), so both browsers lay the call
  // out alike: the tiles of a three-person call all on screen.
  await page.setViewport({ width: 1280, height: 720 });
  page.setDefaultTimeout(30_000);
  return { context, page };
}

/** Find controls by role and accessible name, as the acceptance tests do. */
export const byRole = (role: string, name: string) => `::-p-aria([name="${name}"][role="${role}"])`;

/**
 * The input element whose accessible name is `name`, whatever its role: a
 * password input has no ARIA role (HTML-AAM), so `byRole('textbox', 'Password')`
 * finds nothing in Firefox; this finds it by its label, as Playwright's getByLabel does.
 */
export async function inputByName(page: Page, name: string, timeout = 30_000): Promise<ElementHandle<HTMLInputElement>> {
  const deadline = Date.now() + timeout;
  for (;;) {
    for (const handle of await page.$$(`::-p-aria([name="${name}"])`)) {
      if (await handle.evaluate((el) => el instanceof HTMLInputElement)) return handle as ElementHandle<HTMLInputElement>;
      await handle.dispose();
    }
    if (Date.now() > deadline) throw new Error(`no input named ${JSON.stringify(name)} within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function waitForText(page: Page, text: string, timeout = 15_000): Promise<void> {
  await page.waitForFunction((t) => document.body.innerText.includes(t), { timeout, polling: 200 }, text);
}
