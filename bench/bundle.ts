/**
 * How much JavaScript the join page loads, measured in Chromium: every script
 * fetched until the page is ready for a name (goal ≤ 120 KB gzip), then what
 * Continue adds (the call view, loaded on demand). Sizes are of the bytes
 * served, gzipped here at the default level, as a compressing proxy would.
 *
 *   npx tsx bench/bundle.ts        (builds the app first with `npx vite build`)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import { launchChromium } from '../test/support/browser.js';
import { createLink, signUp, startServer } from '../test/support/server.js';

const GOAL_KB = 120;

/** Records every script response; await the returned function's result for the bodies read so far. */
function recordScripts(page: Page, into: Map<string, Buffer>): () => Promise<unknown> {
  const reads: Promise<void>[] = [];
  page.on('response', (res) => {
    const type = res.request().resourceType();
    if (type !== 'script' && !res.url().endsWith('.js')) return;
    reads.push(
      res.body().then(
        (body) => void into.set(new URL(res.url()).pathname, body),
        () => {}, // redirects and aborted loads have no body
      ),
    );
  });
  return () => Promise.all(reads);
}

const kb = (bytes: number) => Math.round((bytes / 1024) * 10) / 10;
const total = (files: Map<string, Buffer>) => {
  let raw = 0;
  let gzip = 0;
  const list = [...files].map(([path, body]) => {
    const g = gzipSync(body).length;
    raw += body.length;
    gzip += g;
    return { path, kb: kb(body.length), gzipKb: kb(g) };
  });
  return { files: list, kb: kb(raw), gzipKb: kb(gzip) };
};

const server = await startServer();
const chromium = await launchChromium();
try {
  const cookie = await signUp(server, 'bundle_host');
  const link = await createLink(server, cookie, 'Bundle');
  const context = await chromium.browser.newContext({ permissions: ['camera', 'microphone'] });
  const page = await context.newPage();
  const onLoad = new Map<string, Buffer>();
  const loaded = recordScripts(page, onLoad);
  await page.goto(link.url, { waitUntil: 'networkidle' });
  await page.getByRole('textbox', { name: 'Name' }).waitFor();
  await loaded();
  const joinPage = total(onLoad);

  const afterContinue = new Map<string, Buffer>();
  page.removeAllListeners('response');
  const continued = recordScripts(page, afterContinue);
  await page.getByRole('textbox', { name: 'Name' }).fill('Bea');
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('button', { name: 'Join' }).waitFor();
  await page.waitForTimeout(500);
  await continued();
  const callView = total(afterContinue);
  await context.close();

  const result = { at: new Date().toISOString(), goalGzipKb: GOAL_KB, joinPage, callViewAdded: callView, met: joinPage.gzipKb <= GOAL_KB };
  console.log(`join page JavaScript: ${joinPage.gzipKb} KB gzip (${joinPage.kb} KB raw, ${joinPage.files.length} files) — goal ≤ ${GOAL_KB} KB: ${result.met ? 'met' : 'NOT met'}`);
  for (const f of joinPage.files) console.log(`  ${f.path}  ${f.gzipKb} KB gzip`);
  console.log(`loaded on Continue (call view): ${callView.gzipKb} KB gzip (${callView.kb} KB raw)`);
  for (const f of callView.files) console.log(`  ${f.path}  ${f.gzipKb} KB gzip`);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(new URL('./results/bundle.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await chromium.close();
  await server.close();
}
