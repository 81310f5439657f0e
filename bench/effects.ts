/**
 * What background blur and noise suppression cost, on this machine, in Chromium.
 *  - blur: the product's own join page (built app, real server on loopback) with a fake camera
 *    playing a photo of a person (scripts/make-effects-fixtures.sh); blur switched on, then the
 *    page's own numbers (window.linkcallBlurStats) over a measuring window: drawing time per frame,
 *    model time per mask, masks a second, frames a second kept, and whether blur gave up.
 *    The camera's own rate is what the fixture plays (30 fps).
 *  - noise suppression: each processor of @sapphi-red/web-noise-suppressor (RNNoise, Speex, GTCRN)
 *    renders the fixture's noisy speech in an OfflineAudioContext, as fast as it can: render time
 *    per second of sound is the share of one core it takes live. The same run gives the noise
 *    floor in pauses and the speech level before and after (20 ms frames, 10th and 90th
 *    percentiles, as test/e2e/effects.test.ts measures them on the receiving page).
 * Prints the numbers and writes bench/results/effects.json.
 * Usage: npx tsx bench/effects.ts [blurSeconds]   (builds nothing: run `node scripts/start.mjs --build-only --build` first)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH, newPerson } from '../test/support/browser.js';
import { startServer } from '../test/support/server.js';

const blurSeconds = Number(process.argv[2] ?? 15);
const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = join(tmpdir(), 'linkcall-effects-fixtures');
const MIN_FPS = 15;

execFileSync('bash', [join(here, '../scripts/make-effects-fixtures.sh'), FIXTURES], { stdio: 'inherit' });
const loadAverageAtStart = Number(loadavg()[0]!.toFixed(2));
const browser = await chromium.launch({
  executablePath: CHROMIUM_PATH,
  args: [...CHROMIUM_ARGS, `--use-file-for-fake-video-capture=${join(FIXTURES, 'person.y4m')}`, `--use-file-for-fake-audio-capture=${join(FIXTURES, 'noisy-speech.wav')}`],
});
const version = browser.version();

// ---- Blur, on the join page of the built app.
const server = await startServer();
interface BlurStats { frames: number; msPerFrame: number; fps: number; segmentations: number; msPerMask: number; passThrough: boolean }
let blur: Record<string, unknown>;
try {
  const { page, context } = await newPerson(browser, server.url);
  await page.goto('/');
  await page.getByRole('textbox', { name: 'Username' }).fill('bench');
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.getByRole('button', { name: 'Create Link' }).click();
  const link = await page.getByRole('textbox', { name: 'Call link' }).inputValue();
  await page.goto(link);
  await page.getByRole('switch', { name: 'Blur my background' }).setChecked(true);
  const stats = () => page.evaluate(() => (globalThis as unknown as { linkcallBlurStats?: () => BlurStats }).linkcallBlurStats?.());
  await page.waitForFunction(() => !!(globalThis as unknown as { linkcallBlurStats?: unknown }).linkcallBlurStats, undefined, { timeout: 60_000 });
  // Warm-up (model start, first masks), then a window of its own.
  await new Promise((r) => setTimeout(r, 4000));
  const a = (await stats())!;
  const t0 = Date.now();
  // The preview's own presented frames over the same window: what a person sees (and is sent).
  const presented = page.evaluate(async (ms) => {
    const v = document.querySelector<HTMLVideoElement>('video')!;
    const f0 = v.getVideoPlaybackQuality().totalVideoFrames;
    await new Promise((r) => setTimeout(r, ms));
    return (v.getVideoPlaybackQuality().totalVideoFrames - f0) / (ms / 1000);
  }, blurSeconds * 1000);
  const previewFps = await presented;
  const b = (await stats())!;
  const seconds = (Date.now() - t0) / 1000;
  const frames = b.frames - a.frames;
  const masks = b.segmentations - a.segmentations;
  const drawMs = frames ? (b.msPerFrame * b.frames - a.msPerFrame * a.frames) / frames : 0;
  const maskMs = masks ? (b.msPerMask * b.segmentations - a.msPerMask * a.segmentations) / masks : 0;
  const notice = await page.getByText('Background blur was turned off').count();
  blur = {
    seconds: Number(seconds.toFixed(1)),
    fps: Number((frames / seconds).toFixed(1)),
    previewFps: Number(previewFps.toFixed(1)),
    drawMsPerFrame: Number(drawMs.toFixed(2)),
    modelMsPerMask: Number(maskMs.toFixed(1)),
    masksPerSecond: Number((masks / seconds).toFixed(1)),
    // What the page spends on blur per camera frame: drawing, plus its share of the model's work.
    msPerFrame: Number((drawMs + (frames ? (maskMs * masks) / frames : 0)).toFixed(1)),
    keptOn: !b.passThrough && notice === 0,
    minFps: MIN_FPS,
  };
  await context.close();
} finally {
  await server.close();
}

// ---- Noise suppression: each processor, offline, on the fixture.
const PACKAGE = join(here, '../node_modules/@sapphi-red/web-noise-suppressor/dist');
const PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
import * as W from './lib/index.js';
const frameDb = (x) => {
  const db = [];
  for (let i = 0; i + 960 <= x.length; i += 960) {
    let a = 0;
    for (let j = i; j < i + 960; j++) a += x[j] * x[j];
    db.push(10 * Math.log10(a / 960 + 1e-12));
  }
  const s = db.filter((d) => d > -100).sort((a, b) => a - b);
  const at = (p) => s[Math.floor(p * (s.length - 1))] ?? -120;
  return { noise: at(0.1), speech: at(0.9) };
};
window.runNoise = async (model, repeat) => {
  const bytes = await (await fetch('in.wav')).arrayBuffer();
  const input = await new OfflineAudioContext(1, 48000, 48000).decodeAudioData(bytes);
  // The file, repeated: long enough that the render time is well above the timer's grain.
  const ctx = new OfflineAudioContext(1, input.length * repeat, 48000);
  const buffer = ctx.createBuffer(1, input.length * repeat, 48000);
  for (let r = 0; r < repeat; r++) buffer.copyToChannel(input.getChannelData(0), 0, r * input.length);
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  let node;
  if (model === 'rnnoise') {
    const wasmBinary = await W.loadRnnoise({ url: 'lib/rnnoise.wasm', simdUrl: 'lib/rnnoise_simd.wasm' });
    await ctx.audioWorklet.addModule('lib/rnnoise/workletProcessor.js');
    node = new W.RnnoiseWorkletNode(ctx, { maxChannels: 1, wasmBinary });
  } else if (model === 'speex') {
    const wasmBinary = await W.loadSpeex({ url: 'lib/speex.wasm' });
    await ctx.audioWorklet.addModule('lib/speex/workletProcessor.js');
    node = new W.SpeexWorkletNode(ctx, { maxChannels: 1, wasmBinary });
  } else if (model === 'gtcrn') {
    const wasmBinary = await W.loadGtcrn({ url: 'lib/gtcrn.wasm' });
    await ctx.audioWorklet.addModule('lib/gtcrn/workletProcessor.js');
    node = new W.GtcrnWorkletNode(ctx, { maxChannels: 1, wasmBinary });
  }
  if (node) source.connect(node).connect(ctx.destination);
  else source.connect(ctx.destination);
  source.start();
  // The processors compile their WASM in the worklet after they are made: give them a moment
  // before rendering (an offline render would otherwise run past them, silent).
  const WAIT_MS = 1500;
  let started = 0;
  ctx.suspend(256 / 48000).then(() => setTimeout(() => { started = performance.now(); ctx.resume(); }, WAIT_MS));
  const out = await ctx.startRendering();
  const renderMs = performance.now() - started;
  // The first copy of the file is the one judged (the processor has settled after its first 20 ms).
  const first = (b) => b.getChannelData(0).subarray(960, input.length);
  return { renderMs, seconds: buffer.length / 48000, before: frameDb(first(buffer)), after: frameDb(first(out)) };
};
window.ready = true;
</script>`;
const files = createServer((req, res) => {
  const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0]!));
  let body: Buffer | string | undefined;
  if (path === '/') body = PAGE;
  else if (path === '/in.wav') body = readFileSync(join(FIXTURES, 'noisy-speech.wav'));
  else if (path.startsWith('/lib/') && !path.includes('..')) {
    try {
      body = readFileSync(join(PACKAGE, path.slice(5)));
    } catch {
      body = undefined;
    }
  }
  if (body === undefined) return void res.writeHead(404).end();
  const type = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.wav': 'audio/wav' }[extname(path)] ?? 'text/html';
  res.writeHead(200, { 'content-type': type }).end(body);
});
await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
const noise: Record<string, unknown> = {};
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${(files.address() as AddressInfo).port}/`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready);
  for (const model of ['rnnoise', 'speex', 'gtcrn']) {
    const r = await page.evaluate(([m, repeat]) => (window as unknown as { runNoise: (m: string, r: number) => Promise<{ renderMs: number; seconds: number; before: { noise: number; speech: number }; after: { noise: number; speech: number } }> }).runNoise(m as string, repeat as number), [model, 3] as const);
    noise[model] = {
      // Share of one core it takes to keep up live, in %.
      cpuPercentOfOneCore: Number(((r.renderMs / 1000 / r.seconds) * 100).toFixed(2)),
      msPer10msFrame: Number(((r.renderMs / r.seconds) * 0.01).toFixed(3)),
      noiseFloorDropDb: Number((r.before.noise - r.after.noise).toFixed(1)),
      speechChangeDb: Number((r.after.speech - r.before.speech).toFixed(1)),
    };
  }
  await page.close();
} finally {
  files.close();
  await browser.close();
}

const result = {
  date: new Date().toISOString(),
  loadAverage1mAtStart: loadAverageAtStart,
  loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
  cpus: cpus().length,
  browser: `Chromium ${version}`,
  camera: 'fake, 640×480 at 30 fps (a photo of a person)',
  blur,
  noiseSuppression: noise,
};
console.log(JSON.stringify(result, null, 2));
mkdirSync(join(here, 'results'), { recursive: true });
writeFileSync(join(here, 'results/effects.json'), JSON.stringify(result, null, 2) + '\n');
