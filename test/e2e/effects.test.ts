/**
 * Background blur and noise suppression, judged where it matters: on the page that receives
 * them through linkcall, in a real call. The guests' camera is a photo of a person and their
 * microphone is speech mixed with noise (scripts/make-effects-fixtures.sh, from Debian packages).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH, newPerson, serverAndChromium, waitForLiveAudio, waitForPlayingVideo } from '../support/browser.js';
import { hostEnters, signUpAndCreateLink } from '../support/flow.js';
import { en } from '../../src/ui/i18n/en.js';

/** tsx keeps function names with a helper the page lacks; the measuring functions below need it there. */
const KEEP_NAMES = 'globalThis.__name ??= (f) => f';
const FIXTURES = join(tmpdir(), 'linkcall-effects-fixtures');

/** Regions of the 640×480 picture (see the fixture script): the person's face and suit; the flag and the shuttle model. */
const PERSON = [
  { x: 160, y: 70, w: 110, h: 110 },
  { x: 180, y: 330, w: 80, h: 60 },
];
const BACKGROUND = [
  { x: 82, y: 10, w: 70, h: 110 },
  { x: 420, y: 20, w: 90, h: 200 },
];

describe('effects in Chromium, as the other side receives them', { timeout: 240_000 }, () => {
  const env = serverAndChromium();
  let guests: Browser | undefined;
  before(() => {
    execFileSync('bash', ['scripts/make-effects-fixtures.sh', FIXTURES], { stdio: 'inherit' });
  });
  before(async () => {
    guests = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: [
        ...CHROMIUM_ARGS,
        `--use-file-for-fake-video-capture=${join(FIXTURES, 'person.y4m')}`,
        `--use-file-for-fake-audio-capture=${join(FIXTURES, 'noisy-speech.wav')}`,
      ],
    });
  });
  after(async () => guests?.close());
  // A test that fails leaves its people in the call: a blurring, encoding page left open took the
  // CPU the next tests' pages needed (their page loads timed out after 30 s). Whatever happens,
  // everyone leaves before the next test.
  afterEach(async () => {
    for (const b of [env.browser, guests]) await Promise.all((b?.contexts() ?? []).map((c) => c.close().catch(() => {})));
  });

  /** Every request a page makes; all must go to linkcall's own origin. */
  function watchOrigins(page: Page): Set<string> {
    const origins = new Set<string>();
    page.on('request', (req) => {
      const url = new URL(req.url());
      if (url.protocol === 'http:' || url.protocol === 'https:' || url.protocol === 'ws:' || url.protocol === 'wss:') origins.add(url.origin.replace(/^ws/, 'http'));
    });
    return origins;
  }

  async function guestJoins(link: string, name: string, switches: { blur: boolean; denoise: boolean }) {
    const guest = await newPerson(guests!, env.server.url);
    // For comparing models (docs/EFFECTS.md): NOISE_MODEL=gtcrn|speex.
    if (process.env.NOISE_MODEL) await guest.context.addInitScript(`localStorage.setItem('linkcall.noiseModel', '${process.env.NOISE_MODEL}')`);
    const origins = watchOrigins(guest.page);
    await guest.page.goto(link);
    const blur = guest.page.getByRole('switch', { name: 'Blur my background' });
    const denoise = guest.page.getByRole('switch', { name: 'Reduce background noise' });
    await blur.setChecked(switches.blur);
    await denoise.setChecked(switches.denoise);
    await guest.page.getByRole('textbox', { name: 'Name' }).fill(name);
    await guest.page.getByRole('button', { name: 'Continue' }).click();
    await guest.page.getByRole('button', { name: 'Join' }).click({ timeout: 30_000 });
    return { ...guest, origins };
  }

  it('with blur on, the background loses at least half its detail and the person keeps theirs (±20 %)', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const hostOrigins = watchOrigins(host.page);
    const link = await signUpAndCreateLink(host.page, 'bea', 'Blur');
    await hostEnters(host.page, link);
    await host.page.evaluate(KEEP_NAMES);
    await host.page.evaluate(`globalThis.detailIn = ${detailIn.toString()}`);
    const regions = { person: PERSON, background: BACKGROUND };
    /**
     * Detail as the host receives it, once the picture is steady: full resolution (a low layer
     * early in the call would blur everything alike), then measured every 2 s until it moves by
     * less than 5 %: while the sender's bitrate still ramps up, coarse quantization adds block
     * edges that count as detail (a new stream measured 30 % "sharper" than what was sent).
     */
    const received = async (who: string) => {
      const sel = `video[aria-label="Video of ${who}"]`;
      await waitForPlayingVideo(host.page, sel, 30_000);
      await host.page.waitForFunction((s) => document.querySelector<HTMLVideoElement>(s)?.videoWidth === 640, sel, { timeout: 30_000 });
      let last = await host.page.evaluate(detailIn, { sel, regions });
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 2000));
        const now = await host.page.evaluate(detailIn, { sel, regions });
        const steady = Math.abs(now.person - last.person) <= 0.05 * last.person && Math.abs(now.background - last.background) <= 0.1 * last.background;
        last = now;
        if (steady) break;
      }
      return last;
    };
    /** What a guest sends, on its own preview (before encoding), for the record. */
    const sent = async (page: Page) => {
      await page.evaluate(KEEP_NAMES);
      return page.evaluate(detailIn, { sel: 'video[aria-label="Your video"]', regions });
    };

    // One guest at a time, each on the same call and machine: two senders and three browsers at
    // once on 2 cores starve the encoders (both pictures lose most of their detail alike).
    const plain = await guestJoins(link, 'Plain', { blur: false, denoise: false });
    await host.page.getByRole('button', { name: 'Approve Plain' }).click();
    const before = await received('Plain');
    const sentPlain = await sent(plain.page);
    await plain.context.close();

    const blurred = await guestJoins(link, 'Blurred', { blur: true, denoise: false });
    await host.page.getByRole('button', { name: 'Approve Blurred' }).click();
    const blurStats = () => blurred.page.evaluate(() => (globalThis as unknown as { linkcallBlurStats?: () => { fps: number; passThrough: boolean } }).linkcallBlurStats?.());
    let after = await received('Blurred');
    if ((await blurStats())?.passThrough) {
      // Blur turned itself off before it could be measured: this shared machine gave it under 15
      // fps for a while (three browsers, their encoders and the SFU on 2 cores; alone it keeps 30,
      // bench/effects). The person switches it on again, once, as they would.
      console.log('blur had turned itself off; switched on again', await blurStats());
      await blurred.page.getByRole('button', { name: 'Devices' }).click();
      await blurred.page.getByRole('switch', { name: 'Blur my background' }).setChecked(true);
      await blurred.page.keyboard.press('Escape');
      after = await received('Blurred');
    }
    const sentBlurred = await sent(blurred.page);
    console.log('high-frequency energy', { plain: before, blurred: after, sentPlain, sentBlurred });
    const stats = await blurStats();
    console.log('blur', stats);
    assert.ok(after.background <= before.background * 0.5, `background detail ${after.background.toFixed(1)} vs ${before.background.toFixed(1)} without blur`);
    assert.ok(Math.abs(after.person - before.person) <= before.person * 0.2, `person detail ${after.person.toFixed(1)} vs ${before.person.toFixed(1)} without blur`);

    // The preview shows what is sent.
    const fps = await blurred.page.evaluate(async () => {
      const v = document.querySelector<HTMLVideoElement>('video[aria-label="Your video"]')!;
      const f0 = v.getVideoPlaybackQuality().totalVideoFrames;
      await new Promise((r) => setTimeout(r, 3000));
      return (v.getVideoPlaybackQuality().totalVideoFrames - f0) / 3;
    });
    console.log('blurred preview fps', fps);
    // Whether blur keeps the camera's pace is a matter of speed, measured alone by bench/effects (and
    // the too-slow rule by the last test here): on this shared machine it may turn itself off after
    // the measurement, but only saying so, and only for the rule's reason.
    // Read again: it may have turned off while the preview was measured (a fresh clone's run did).
    const saidOff = await blurred.page.getByText('Background blur was turned off').count();
    const now = await blurStats();
    assert.ok(saidOff === 0 || (now?.passThrough && now.fps < 15), `blur stayed on, or turned itself off below 15 fps and said so: ${JSON.stringify(now)}`);

    // In the call, Devices switches blur off again, and the others see the background at once.
    await blurred.page.getByRole('button', { name: 'Devices' }).click();
    await blurred.page.getByRole('switch', { name: 'Blur my background' }).setChecked(false);
    await host.page.waitForFunction(
      async ({ sel, regions, least }) => (await (globalThis as unknown as { detailIn: typeof detailIn }).detailIn({ sel, regions })).background >= least,
      { sel: 'video[aria-label="Video of Blurred"]', regions, least: before.background * 0.5 },
      { timeout: 20_000, polling: 1000 },
    );

    for (const origins of [hostOrigins, plain.origins, blurred.origins]) assert.deepEqual([...origins], [env.server.url]);
    for (const p of [host, blurred]) await p.context.close();
  });

  it('with noise reduction on, the noise between sentences drops by ≥ 10 dB and speech stays within 3 dB', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const hostOrigins = watchOrigins(host.page);
    const link = await signUpAndCreateLink(host.page, 'nia', 'Noise');
    await hostEnters(host.page, link);
    const plain = await guestJoins(link, 'Plain', { blur: false, denoise: false });
    await host.page.getByRole('button', { name: 'Approve Plain' }).click();
    const quiet = await guestJoins(link, 'Quiet', { blur: false, denoise: true });
    await host.page.getByRole('button', { name: 'Approve Quiet' }).click();

    await host.page.evaluate(KEEP_NAMES);
    const levels = async (who: string) => {
      // The sound itself, not the tile: the video budget may pause a tile on a busy machine.
      const id = await host.page.locator(`figure[aria-label="${who}"]`).getAttribute('data-participant', { timeout: 30_000 });
      const sel = `audio[data-participant-audio="${id}"]`;
      assert.ok(await waitForLiveAudio(host.page, sel, 30_000), `host hears ${who}`);
      return host.page.evaluate(framesInDb, { sel, ms: 15_000 });
    };
    // Both recorded at once: the same stretch of the looping file, the same load on the machine.
    const [off, on] = await Promise.all([levels('Plain'), levels('Quiet')]);
    console.log('received levels (dBFS)', { off, on });
    assert.ok(off.noise - on.noise >= 10, `noise floor ${on.noise.toFixed(1)} dB with, ${off.noise.toFixed(1)} dB without`);
    assert.ok(Math.abs(off.speech - on.speech) <= 3, `speech ${on.speech.toFixed(1)} dB with, ${off.speech.toFixed(1)} dB without`);

    for (const origins of [hostOrigins, plain.origins, quiet.origins]) assert.deepEqual([...origins], [env.server.url]);
    for (const p of [host, plain, quiet]) await p.context.close();
  });

  it('on a device too slow for 15 fps, blur turns itself off and says so', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const link = await signUpAndCreateLink(host.page, 'sam', 'Slow');
    await host.context.close();
    const guest = await newPerson(guests!, env.server.url);
    await guest.page.goto(link);
    const blur = guest.page.getByRole('switch', { name: 'Blur my background' });
    await blur.setChecked(true);
    await guest.page.waitForFunction(() => !!(globalThis as unknown as { linkcallBlurStats?: unknown }).linkcallBlurStats, undefined, { timeout: 30_000 });
    // A page 20 times slower than this machine: the model and the drawing cannot keep 15 fps.
    const cdp = await guest.context.newCDPSession(guest.page);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 20 });
    await guest.page.getByText(en['effects.tooSlow']).waitFor({ timeout: 30_000 });
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
    assert.equal(await blur.isChecked(), false, 'the switch shows blur off');
    await guest.context.close();
  });
});

/** Mean squared Laplacian of the luma in each kind of region, over a few frames (runs in the page). */
async function detailIn({ sel, regions }: { sel: string; regions: Record<'person' | 'background', { x: number; y: number; w: number; h: number }[]> }) {
  const v = document.querySelector<HTMLVideoElement>(sel)!;
  const canvas = Object.assign(document.createElement('canvas'), { width: 640, height: 480 });
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  const totals = { person: 0, background: 0 };
  const FRAMES = 5;
  for (let f = 0; f < FRAMES; f++) {
    ctx.drawImage(v, 0, 0, 640, 480);
    for (const kind of ['person', 'background'] as const) {
      let sum = 0;
      let n = 0;
      for (const r of regions[kind]) {
        const d = ctx.getImageData(r.x, r.y, r.w, r.h).data;
        const luma = (x: number, y: number) => {
          const i = (y * r.w + x) * 4;
          return 0.299 * d[i]! + 0.587 * d[i + 1]! + 0.114 * d[i + 2]!;
        };
        for (let y = 1; y < r.h - 1; y++) {
          for (let x = 1; x < r.w - 1; x++) {
            const lap = 4 * luma(x, y) - luma(x - 1, y) - luma(x + 1, y) - luma(x, y - 1) - luma(x, y + 1);
            sum += lap * lap;
            n++;
          }
        }
      }
      totals[kind] += sum / n / FRAMES;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return totals;
}

/**
 * The received sound's level in 20 ms frames, in dBFS: `noise` is the 10th percentile (the pauses
 * between sentences), `speech` the 90th (inside sentences). Runs in the page.
 */
async function framesInDb({ sel, ms }: { sel: string; ms: number }) {
  const v = document.querySelector<HTMLMediaElement>(sel)!;
  const track = (v.srcObject as MediaStream).getAudioTracks()[0]!;
  const ctx = new AudioContext({ sampleRate: 48000 });
  await ctx.resume();
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const frame = 960;
  const db: number[] = [];
  // A ScriptProcessor is enough for measuring: it sees every sample, in order.
  const tap = ctx.createScriptProcessor(4096, 1, 1);
  let acc = 0;
  let count = 0;
  tap.onaudioprocess = (e) => {
    const x = e.inputBuffer.getChannelData(0);
    for (let i = 0; i < x.length; i++) {
      acc += x[i]! * x[i]!;
      if (++count === frame) {
        db.push(10 * Math.log10(acc / frame + 1e-12));
        acc = 0;
        count = 0;
      }
    }
  };
  source.connect(tap).connect(ctx.destination);
  await new Promise((r) => setTimeout(r, ms));
  tap.disconnect();
  await ctx.close();
  const sorted = db.filter((d) => d > -100).sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.floor(p * (sorted.length - 1))] ?? -120;
  return { noise: at(0.1), speech: at(0.9), frames: db.length };
}
