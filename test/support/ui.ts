/** Helpers for the UI tests (test/e2e/ui-*.test.ts, a11y.test.ts): custom Chromium flags, QR decoding, keyboard focus. */
import { chromium, type Browser, type Page } from 'playwright-core';
import jsQR from 'jsqr';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './browser.js';

/** Chromium with the shared flags, some replaced or removed (flags compared by name, before "="). */
export async function launchChromiumWith(opts: { replace?: string[]; remove?: string[] }): Promise<Browser> {
  const name = (flag: string) => flag.split('=')[0] ?? flag;
  const replaced = new Set((opts.replace ?? []).map(name));
  const removed = new Set(opts.remove ?? []);
  const args = [...CHROMIUM_ARGS.filter((a) => !replaced.has(name(a)) && !removed.has(name(a))), ...(opts.replace ?? [])];
  return chromium.launch({ executablePath: CHROMIUM_PATH, args });
}

/** Decode a QR code from a PNG screenshot: the picture is drawn on a canvas in a blank page (no CSP there), then read with jsQR. */
export async function decodeQr(page: Page, png: Buffer): Promise<string | undefined> {
  const blank = await page.context().newPage();
  try {
    const { width, height, data } = await blank.evaluate(async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const ctx = canvas.getContext('2d')!;
      ctx.drawImage(img, 0, 0);
      const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      return { width: canvas.width, height: canvas.height, data: Array.from(pixels) };
    }, png.toString('base64'));
    return jsQR(Uint8ClampedArray.from(data), width, height)?.data;
  } finally {
    await blank.close();
  }
}

/** The accessible-ish name of the focused element (aria-label, else its text or its label's). */
export function focusedName(page: Page): Promise<string> {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement | null;
    if (!el || el === document.body) return '';
    const labelled = el.getAttribute('aria-label');
    if (labelled) return labelled;
    const label = (el as HTMLInputElement).labels?.[0]?.textContent;
    return (label ?? el.textContent ?? '').trim();
  });
}

/** Press Tab until the focused element's name matches, as someone using only the keyboard would. */
export async function tabTo(page: Page, name: string | RegExp, max = 40): Promise<void> {
  const matches = (s: string) => (typeof name === 'string' ? s === name : name.test(s));
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (matches(await focusedName(page))) return;
  }
  throw new Error(`${String(name)} not reached with Tab in ${max} presses (focused: ${await focusedName(page)})`);
}
