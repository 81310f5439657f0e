/**
 * Calls across bad links, asserting what a person would notice, with bounds generous enough for
 * a busy 2-core machine: a bloated uplink does not leave the other person's picture seconds
 * behind, after a bandwidth drop video comes back, and one person's narrow downlink in a group
 * neither stops their video nor blurs everyone else's. `npx tsx bench/network.ts` measures the
 * same scenarios properly, against a direct call. Skips, saying why, where namespaces cannot be
 * made.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { frameRateSeries, largestSent, linkcallCall, linkcallGroupCall, perStream, quality, Recorder, secondsUntil } from '../support/lab-call.js';
import { labUnavailable, NetLab, type LabServer } from '../support/netlab.js';
import { sleep } from '../support/wait.js';

const unavailable = labUnavailable();
if (unavailable) console.log(`# network lab skipped: ${unavailable}`);

describe('calls across bad links', { skip: unavailable }, () => {
  let lab: NetLab;
  let server: LabServer;
  before(async () => {
    lab = await NetLab.create(['server', 'host', 'guest', 'guest2']);
    server = await lab.startServer('server');
  });
  after(async () => {
    await server?.close();
    await lab?.close();
  });

  test("behind the guest's bloated 600 kbit/s uplink, the host sees the guest less than a second late once the call has settled", async () => {
    await lab.clear();
    for (const p of ['host', 'guest']) await lab.impair(p, 'both', { delayMs: 20 });
    await lab.impair('guest', 'up', { rateKbps: 600, queueMs: 1000 });
    const call = await linkcallCall(lab, server);
    try {
      const recorder = new Recorder(call);
      recorder.start();
      await sleep(10_000);
      const from = Date.now();
      await sleep(10_000);
      await recorder.stop();
      const seen = quality(recorder.samples, 'host', from, Date.now());
      assert.ok(seen.framesTimed > 30, `the host saw ${seen.framesTimed} of the guest's frames in 10 s`);
      assert.ok(seen.delayP95Ms < 1000, `glass-to-glass p95 ${seen.delayP95Ms} ms (median ${seen.delayMedianMs} ms)`);
    } finally {
      await call.close();
    }
  });

  test("after the guest's downlink drops from 4 to 0.3 Mbit/s, the host's video comes back to 15 frames a second while the bandwidth stays low", async () => {
    await lab.clear();
    for (const p of ['host', 'guest']) await lab.impair(p, 'both', { delayMs: 20 });
    await lab.impair('guest', 'down', { rateKbps: 4000, queueMs: 200 });
    const call = await linkcallCall(lab, server);
    try {
      const recorder = new Recorder(call);
      recorder.start();
      await sleep(6000);
      await lab.impair('guest', 'down', { rateKbps: 300 });
      const droppedAt = Date.now();
      await sleep(25_000);
      await recorder.stop();
      const series = frameRateSeries(recorder.samples, 'guest');
      // Counted from 8 s after the drop: the first seconds still play what was queued before it.
      const back = secondsUntil(series, droppedAt + 8000, Date.now(), (fps) => fps >= 15);
      const rates = series.filter(([t]) => t > droppedAt).map(([, fps]) => fps.toFixed(0));
      assert.ok(Number.isFinite(back), `the guest's frame rate, second by second after the drop: ${rates.join(' ')}`);
    } finally {
      await call.close();
    }
  });

  // Known failure, cause partly found. On 2026-12-07 this failed 3 of 5 runs (others' video at
  // 0.6-5 fps). Fixed since: two faults of the lab (the pages' own cameras stalled, see
  // linkcallGroupCall; the server's packet stamps came late, LAB_PRIORITY in netlab.ts), and one
  // of the SFU (a layer priced at a momentary dip was given to the narrow guest: LayerRate). It
  // still fails about half its runs: in some, the guest's two videos freeze for 6-10 s of 12 while
  // the clean links get the same senders at 5-10 fps; not found yet. It runs and reports.
  test("with three people and the guest's downlink at 400 kbit/s, the guest sees both others move and the other two see each other sharp", async (t) => {
    await lab.clear();
    for (const p of ['host', 'guest', 'guest2']) await lab.impair(p, 'both', { delayMs: 20 });
    await lab.impair('guest', 'down', { rateKbps: 400, queueMs: 200 });
    const call = await linkcallGroupCall(lab, server, ['guest', 'guest2']);
    try {
      const recorder = new Recorder(call);
      recorder.start();
      await sleep(10_000);
      const from = Date.now();
      await sleep(12_000);
      await recorder.stop();
      const to = Date.now();
      const seen = Object.fromEntries(['host', 'guest', 'guest2'].map((p) => [p, perStream(recorder.samples, p, from, to)]));
      const said = JSON.stringify(seen);
      t.diagnostic(`per stream: ${said}`);
      // Frame rates are CPU-bound here (three browsers on two cores): what one person sends, the
      // others get at 6-16 fps on a busy run, whatever their links. So the guest's narrow link is
      // judged against the clean one beside it: the guest gets each sender's video at least 60 %
      // as smoothly as the other person on a clean link gets it, and it moves (> 4 fps). Before the
      // small layers were thinned and halved for such a viewer, the guest got them at 5-18 fps
      // (lab); in one run of 2026-12-07 the guest got a sender at 5.3 fps and the clean link 6.7,
      // which an absolute bar of 8 counted as the link's fault.
      assert.equal(seen.guest!.length, 2, `the guest's streams: ${said}`);
      for (const s of seen.guest!) {
        const clean = s.from === 'Guest2' ? seen.host!.find((x) => x.from === 'Guest2') : seen.guest2!.find((x) => x.from !== 'Guest');
        assert.ok(clean, `someone on a clean link gets ${s.from}: ${said}`);
        assert.ok(s.fps > 4 && s.fps >= 0.6 * clean.fps, `the guest gets ${s.from} at ${s.fps.toFixed(1)} fps, a clean link ${clean.fps.toFixed(1)}: ${said}`);
      }
      // Sharp: the largest picture the other sends (640x480 from its camera, unless its encoder is
      // short of CPU: in full test runs on a slow day all three sent at most 160x120 or 320x240).
      for (const [p, sender] of [['host', 'guest2'], ['guest2', 'host']] as const) {
        const other = seen[p]!.find((s) => s.from !== 'Guest');
        const sent = largestSent(recorder.samples, sender, from, to);
        assert.ok(other && other.resolution === sent && other.fps > 5, `${p} gets the other sharp person ${JSON.stringify(other)}, who sent ${sent}: ${said}`);
      }
    } finally {
      await call.close();
    }
  });
});
