/**
 * `npm run screenshots`: the join and call pages at phone (360×740) and desktop
 * (1440×900) sizes, light and dark, into docs/screenshots/. Builds the app
 * first; runs a real server and headless Chromium with fake cameras.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { launchChromium, waitForPlayingVideo } from '../test/support/browser.js';
import { guestKnocks, hostEnters, signUpAndCreateLink } from '../test/support/flow.js';
import { startServer } from '../test/support/server.js';

const root = new URL('..', import.meta.url).pathname;
const out = new URL('../docs/screenshots/', import.meta.url).pathname;
const SIZES = [
  { name: '360x740', width: 360, height: 740 },
  { name: '1440x900', width: 1440, height: 900 },
] as const;
const SCHEMES = ['light', 'dark'] as const;

execFileSync(process.execPath, [`${root}node_modules/vite/bin/vite.js`, 'build', '--logLevel', 'warn'], { cwd: root, stdio: 'inherit' });
mkdirSync(out, { recursive: true });

const server = await startServer();
const chromium = await launchChromium();
try {
  const person = async () => {
    const context = await chromium.browser.newContext({ baseURL: server.url, permissions: ['camera', 'microphone'] });
    return { context, page: await context.newPage() };
  };
  const host = await person();
  const guest = await person();
  const visitor = await person();
  const link = await signUpAndCreateLink(host.page, 'maria', 'Sunday family call');

  // The join page, as a guest sees it before giving a name.
  await visitor.page.goto(link);
  await visitor.page.getByRole('textbox', { name: 'Name' }).waitFor();
  await waitForPlayingVideo(visitor.page, 'video[aria-label="Your camera preview"]');
  await visitor.page.getByRole('textbox', { name: 'Name' }).fill('Jonas');

  // A call: the host, a guest, and someone knocking.
  await hostEnters(host.page, link);
  await guestKnocks(guest.page, link, 'Jonas');
  await host.page.getByRole('button', { name: 'Approve Jonas' }).click();
  await waitForPlayingVideo(guest.page, 'video[aria-label="Video of maria"]');
  await waitForPlayingVideo(host.page, 'video[aria-label="Video of Jonas"]');
  const knocker = await person();
  await guestKnocks(knocker.page, link, 'Aunt Lea');
  await host.page.getByRole('button', { name: 'Approve Aunt Lea' }).waitFor();

  const shots: [string, import('playwright-core').Page][] = [
    ['join', visitor.page],
    ['call', host.page],
  ];
  for (const [what, page] of shots) {
    for (const size of SIZES) {
      await page.setViewportSize({ width: size.width, height: size.height });
      for (const scheme of SCHEMES) {
        await page.emulateMedia({ colorScheme: scheme, reducedMotion: 'reduce' });
        await page.waitForTimeout(600); // the grid re-fits after a resize
        const file = `${out}${what}-${size.name}-${scheme}.png`;
        await page.screenshot({ path: file });
        console.log(`docs/screenshots/${what}-${size.name}-${scheme}.png`);
      }
    }
  }
  for (const p of [host, guest, visitor, knocker]) await p.context.close();
} finally {
  await chromium.close();
  await server.close();
}
